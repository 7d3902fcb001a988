"""Property-based checks of every spectrum reader and of ``prepare`` (issue 30, part 6).

Hypothesis throws generated junk (random bytes, random text) and near-valid files (a good O K-edge
spectrum written with mutations: other delimiters, decimal commas, other units, NaN, repeated or
reversed energies, missing columns, broken headers) at :func:`s2s.predict.inputs.load_inputs` (which
dispatches to every reader: text/CSV, EMSA, GPAW JSON, CASTEP, NumPy, s2s datasets) and at
:func:`s2s.predict.prepare.prepare`.  Each either returns a valid result - a reader: finite, strictly
increasing energies (eV) within :data:`s2s.io.raw.ENERGY_RANGE_EV` and finite intensities; ``prepare``:
a finite, non-negative (200,) spectrum of unit area - or raises the project's input error
(:class:`s2s.spectrum.SpectrumError`, which :class:`PredictInputError` and :class:`SpectrumFileError`
are).  Never another exception, never NaN.
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from s2s.io.raw import ENERGY_RANGE_EV  # noqa: E402
from s2s.io.readers import SUFFIXES  # noqa: E402
from s2s.predict.inputs import InputSpectrum, load_inputs
from s2s.predict.prepare import prepare  # noqa: E402
from s2s.spectrum import GRID, N_GRID, SpectrumError  # noqa: E402

FAST = settings(
    max_examples=int(os.environ.get("S2S_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=not os.environ.get("S2S_FUZZ_EXAMPLES"),
)
TRAIN_ONSET = -0.54  # eV, the shipped training set's median onset (docs/predict.md)


def _check_item(item: InputSpectrum) -> None:
    """The contract for one read spectrum and its preparation (module docstring)."""
    y = np.asarray(item.intensity, dtype=np.float64)
    if item.energy is None:
        assert y.shape == (N_GRID,)
    else:
        e = np.asarray(item.energy, dtype=np.float64)
        assert e.ndim == 1 and e.shape == y.shape[-1:] and np.all(np.isfinite(e))
        if item.meta.get("format") != "array" and "index" not in item.meta:  # readers sort and check
            assert np.all(np.diff(e) > 0) and ENERGY_RANGE_EV[0] <= e[0] and e[-1] <= ENERGY_RANGE_EV[1]
            assert np.all(np.isfinite(y))
    for force in (False, True):
        try:
            p = prepare(item, TRAIN_ONSET, force=force)
        except SpectrumError:
            continue
        s = p.spectrum
        assert s.shape == (N_GRID,) and np.all(np.isfinite(s)) and s.min() >= 0
        assert abs(np.trapezoid(s, GRID) - 1.0) < 1e-6


def _read_and_prepare(name: str, data: bytes | str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        if isinstance(data, str):
            p.write_text(data, encoding="utf-8", errors="surrogatepass")
        else:
            p.write_bytes(data)
        try:
            items = load_inputs(p)
        except SpectrumError:
            return
        for it in items:
            _check_item(it)


# ----------------------------------------------------------------------------- junk
NAMES = st.sampled_from(["x" + s for s in SUFFIXES] + ["noext", "x.TXT", "x.bands"])


@FAST
@given(name=NAMES, data=st.binary(max_size=3000))
def test_random_bytes_under_any_name(name, data):
    _read_and_prepare(name, data)


TEXT = st.text(alphabet=st.sampled_from(list('0123456789.,;:-+eE \t\n#%!/{}[]"nainfkeVXYZ')), max_size=600)


@FAST
@given(name=st.sampled_from(["x.txt", "x.csv", "x.msa", "x.json", "noext"]), text=TEXT)
def test_random_text_under_text_names(name, text):
    _read_and_prepare(name, text)


# ----------------------------------------------------------------------------- near-valid files
def _edge(e: np.ndarray, onset: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(e - onset) / 0.3)) * (1 + np.exp(-0.5 * ((e - onset - 5) / 1.5) ** 2)) + 0.05


@st.composite
def near_valid_columns(draw):
    """A good spectrum (absolute near 532 eV or relative to the onset) written with random mutations."""
    absolute = draw(st.booleans())
    n = draw(st.integers(0, 300))
    start = 520.0 if absolute else -3.0
    step = draw(st.sampled_from([0.05, 0.1, 0.25, 1.0]))
    e = start + step * np.arange(n)
    y = 100 * _edge(e, 532.0 if absolute else 0.0)
    e = e * draw(st.sampled_from([1.0, 1.0, 1e-3, 1e3, 1e8, -1.0]))
    if n and draw(st.booleans()):
        i = draw(st.integers(0, n - 1))
        kind = draw(st.sampled_from(["nan", "inf", "dup", "neg", "zero_all", "huge"]))
        if kind == "nan":
            y[i] = np.nan
        elif kind == "inf":
            e[i] = np.inf
        elif kind == "dup" and i:
            e[i] = e[i - 1]
        elif kind == "neg":
            y[i] = -1e6
        elif kind == "zero_all":
            y[:] = 0
        else:
            y[i] = 1e300
    if draw(st.booleans()):
        e, y = e[::-1], y[::-1]
    delim = draw(st.sampled_from([",", ";", "\t", " ", ", "]))
    comma = draw(st.booleans())
    fmt = draw(st.sampled_from(["{:.3f}", "{:g}", "{:.6e}", "{:.0f}"]))

    def num(v):
        s = fmt.format(v)
        return s.replace(".", ",") if comma else s

    rows = [f"{num(a)}{delim}{num(b)}" for a, b in zip(e, y)]
    if rows and draw(st.booleans()):
        i = draw(st.integers(0, len(rows) - 1))
        rows[i] = draw(st.sampled_from(["", rows[i].split(delim)[0], rows[i] + delim + "7", "abc", "# c"]))
    header = draw(st.sampled_from(["", "energy,intensity\n", "# energy (keV) counts\n", "E;I\n", "a b c d\n"]))
    return header + "\n".join(rows) + draw(st.sampled_from(["", "\n", "\n\n# end\n"]))


@FAST
@given(name=st.sampled_from(["x.txt", "x.csv", "x.dat"]), text=near_valid_columns())
def test_near_valid_text_files(name, text):
    _read_and_prepare(name, text)


@st.composite
def near_valid_msa(draw):
    n = draw(st.integers(0, 200))
    xy = draw(st.booleans())
    step = draw(st.sampled_from(["0.1", "0", "-0.1", "1e9", "abc"]))
    e = 525.0 + 0.2 * np.arange(n)
    y = _edge(e, 532.0)
    head = ["#FORMAT : EMSA/MAS Spectral Data File", "#VERSION : 1.0"]
    head += [draw(st.sampled_from(["#XUNITS : eV", "#XUNITS : keV", "#XUNITS : nm", ""]))]
    head += [f"#DATATYPE : {'XY' if xy else 'Y'}", f"#XPERCHAN : {step}", "#OFFSET : 525"]
    head += [draw(st.sampled_from([f"#NPOINTS : {n}", f"#NPOINTS : {n + 1}", ""])), "#SPECTRUM : start"]
    body = [f"{a:.3f}, {b:.5f}" if xy else f"{b:.5f}" for a, b in zip(e, y)]
    tail = draw(st.sampled_from([["#ENDOFDATA : end"], [], ["#CHECKSUM : 1", "#ENDOFDATA : end"]]))
    return "\n".join(head + body + tail) + "\n"


@FAST
@given(text=near_valid_msa())
def test_near_valid_msa_files(text):
    _read_and_prepare("x.msa", text)


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6), st.text(max_size=3))


@st.composite
def near_valid_gpaw(draw):
    n = draw(st.integers(0, 60))
    e = list(np.sort(draw(st.lists(st.floats(-20, 60), min_size=n, max_size=n))))
    y = draw(st.lists(st.floats(0, 10), min_size=n, max_size=n))
    obj = {"structure_id": "q", "site_index": draw(st.sampled_from([0, "0", "x", None])), "energies_eV": e}
    obj["intensity"] = y if draw(st.booleans()) else draw(st.lists(NUMBERS, max_size=n + 1))
    if draw(st.booleans()):
        obj["grid_spectrum"] = draw(st.sampled_from([list(_edge(GRID, 0.0)), [1.0] * 199, None, "x"]))
    if draw(st.booleans()):
        del obj[draw(st.sampled_from(sorted(obj)))]
    return json.dumps(obj, allow_nan=True)


@FAST
@given(text=near_valid_gpaw())
def test_near_valid_gpaw_json(text):
    _read_and_prepare("x.json", text)


@FAST
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.float64, np.float32, np.int16, np.bool_, np.complex64]),
        shape=st.sampled_from([(200,), (2, 200), (1, 2, 200), (199,), (), (3,), (1, 1, 1, 200)]),
        elements=None,
    ),
    npz=st.booleans(),
    energy=st.sampled_from([None, "grid", "abs", "huge", "short"]),
)
def test_near_valid_arrays(arr, npz, energy):
    with tempfile.TemporaryDirectory() as d:
        L = arr.shape[-1] if arr.ndim else 0
        axes = {"grid": GRID, "abs": 525.0 + 0.1 * np.arange(L), "huge": np.linspace(0, 1e9, L), "short": GRID[:5]}
        ax = None if energy is None else axes[energy]
        if npz:
            p = Path(d) / "x.npz"
            np.savez(p, spectra=arr, **({} if ax is None else {"energy": ax}))
            args = ()
        else:
            p = Path(d) / "x.npy"
            np.save(p, arr)
            args = (ax,)
        try:
            items = load_inputs(p, *args)
        except SpectrumError:
            return
        for it in items[:4]:
            _check_item(it)


@FAST
@given(
    energy=hnp.arrays(np.float64, st.integers(0, 60), elements=st.floats(allow_nan=True, allow_infinity=True)),
    intensity=hnp.arrays(np.float64, st.integers(0, 60), elements=st.floats(allow_nan=True, allow_infinity=True)),
    shift=st.sampled_from(["auto", "onset", 0.0, 531.0, "bad"]),
    smooth=st.sampled_from([0.0, 0.3]),
    background=st.booleans(),
)
def test_prepare_on_raw_arrays(energy, intensity, shift, smooth, background):
    """``prepare`` on an InputSpectrum built by hand (the notebooks' road), any floats at all."""
    item = InputSpectrum("x", "hand-made", energy, intensity)
    try:
        p = prepare(item, TRAIN_ONSET, shift=shift, smooth_eV=smooth, background=background)
    except SpectrumError:
        return
    except ValueError as exc:  # only for the invalid shift argument (a programming error, not input)
        assert shift == "bad", exc
        return
    assert p.spectrum.shape == (N_GRID,) and np.all(np.isfinite(p.spectrum)) and p.spectrum.min() >= 0


@FAST
@given(
    energy=st.lists(st.floats(-250, 4000), min_size=5, max_size=80, unique=True).map(sorted),
    noise=st.floats(0, 2),
    seed=st.integers(0, 2**16),
)
def test_prepare_on_plausible_sorted_energies(energy, noise, seed):
    """Sorted energies anywhere in (and just beyond) the accepted range with an edge-like intensity."""
    e = np.asarray(energy)
    y = _edge(e, 532.0) + noise * np.random.default_rng(seed).random(e.size)
    item = InputSpectrum("x", "hand-made", e, y)
    for force in (False, True):
        try:
            p = prepare(item, TRAIN_ONSET, force=force)
        except SpectrumError:
            continue
        assert np.all(np.isfinite(p.spectrum)) and abs(np.trapezoid(p.spectrum, GRID) - 1) < 1e-6


# ----------------------------------------------------------------------------- CASTEP pairs (text + binary)
def _castep_pair(d: Path) -> tuple[bytes, bytes]:
    """A valid SEED.bands (text) and SEED.eels_mat (Fortran records, big-endian) with one O 1s orbital."""
    from scipy.io import FortranFile

    from s2s.io.castep import HARTREE_EV

    ef, nb = 0.1, 6
    eig = np.r_[-0.3, -0.25, -0.2, ef + np.array([2.0, 5.0, 9.0]) / HARTREE_EV]
    lines = ["Number of k-points      1", "Number of spin components 1", "Number of electrons      6.000"]
    lines += [f"Number of eigenvalues {nb:6d}", f"Fermi energy (in atomic units)     {ef:.6f}", "Unit cell vectors"]
    lines += ["    9.0 0.0 0.0", "    0.0 9.0 0.0", "    0.0 0.0 9.0", "K-point     1 0.0 0.0 0.0 1.0"]
    lines += ["Spin component    1"] + [f"{v:16.8f}" for v in eig]
    mat_path = d / "m.eels_mat"
    with FortranFile(mat_path, "w", header_dtype=np.dtype(">u4")) as f:
        for v in (1, nb, 1, 1):
            f.write_record(np.array([v], dtype=">i4"))
        for v in (1, 1, 1, 1):  # species, ion, n, lm of the one orbital
            f.write_record(np.array([v], dtype=">i4"))
        for b in range(nb):
            f.write_record(np.full(3, 0.5 + 0.1j * b, dtype=">c16"))
    return ("\n".join(lines) + "\n").encode(), mat_path.read_bytes()


@FAST
@given(
    part=st.sampled_from(["bands", "eels_mat"]),
    op=st.sampled_from(["flip", "truncate", "overwrite", "none"]),
    at=st.floats(0, 1),
    junk=st.binary(min_size=1, max_size=64),
)
def test_near_valid_castep_pairs(part, op, at, junk):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        files = dict(zip(("bands", "eels_mat"), _castep_pair(d)))
        b = bytearray(files[part])
        i = int(at * (len(b) - 1))
        if op == "flip":
            b[i] ^= 0xFF
        elif op == "truncate":
            b = b[:i]
        elif op == "overwrite":
            b[i : i + len(junk)] = junk
        files[part] = bytes(b)
        for k, v in files.items():
            (d / f"seed.{k}").write_bytes(v)
        try:
            items = load_inputs(d / "seed.bands")
        except SpectrumError:
            assert op != "none"
            return
        for it in items:
            _check_item(it)
