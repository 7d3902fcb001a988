"""Tests of the spectrum readers on small files the tests write, and of their error messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.io import FortranFile

from s2s.io.readers import (
    HARTREE_EV,
    RawSpectrum,
    SpectrumFileError,
    castep_elnes_spectrum,
    detect_format,
    read_castep_bands,
    read_castep_eels_mat,
    read_castep_elnes,
    read_gpaw_json,
    read_msa,
    read_spectrum,
    read_text,
)
from s2s.spectrum import SpectrumError

E = np.round(np.arange(525.0, 545.0, 0.5), 3)
Y = np.exp(-0.5 * ((E - 537.0) / 2.0) ** 2) + 0.01


def _write(path, text):
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- text / CSV
def test_text_whitespace_with_header_and_comments(tmp_path):
    body = "\n".join(f"{e:.2f}\t{y:.6f}" for e, y in zip(E, Y))
    p = _write(tmp_path / "s.txt", "# O K-edge, quartz\n# beam 200 keV\nEnergy(eV) Intensity\n\n" + body + "\n# end\n")
    raw = read_text(p)
    assert isinstance(raw, RawSpectrum)
    e, y, meta = raw
    np.testing.assert_allclose(e, E)
    np.testing.assert_allclose(y, Y, atol=1e-6)
    assert meta["format"] == "text" and meta["path"] == str(p) and len(meta["header"]) == 3


def test_text_inline_comments_and_tabs(tmp_path):
    body = "\n".join(f"  {e:.2f}\t {y:.6f}   # point {i}" for i, (e, y) in enumerate(zip(E, Y)))
    e, y, meta = read_text(_write(tmp_path / "s.dat", "% exported\n" + body))
    np.testing.assert_allclose(e, E)
    assert meta["delimiter"] == "whitespace"


def test_csv_named_columns_and_descending(tmp_path):
    rows = "\n".join(f"{i},{y:.6f},{e:.2f}" for i, (e, y) in enumerate(zip(E[::-1], Y[::-1])))
    p = _write(tmp_path / "s.csv", "index,counts,energy_eV\n" + rows + "\n")
    e, y, _ = read_text(p, energy_col="energy_eV", intensity_col="counts")
    np.testing.assert_allclose(e, E)  # sorted to increasing energy
    np.testing.assert_allclose(y, Y, atol=1e-6)
    e2, _, _ = read_text(p, energy_col=2, intensity_col=1)
    np.testing.assert_array_equal(e, e2)


def test_semicolon_decimal_comma(tmp_path):
    rows = "\n".join(f"{e:.2f};{y:.6f}".replace(".", ",") for e, y in zip(E, Y))
    e, y, meta = read_text(_write(tmp_path / "s.csv", "E;I\n" + rows))
    np.testing.assert_allclose(e, E)
    assert meta["delimiter"] == ";"


def test_whitespace_decimal_comma(tmp_path):
    rows = "\n".join(f"{e:.2f}  {y:.6f}".replace(".", ",") for e, y in zip(E, Y))
    e, y, meta = read_text(_write(tmp_path / "s.txt", rows))
    np.testing.assert_allclose(e, E)
    np.testing.assert_allclose(y, Y, atol=1e-6)
    assert meta["delimiter"] == "whitespace"


def test_text_kev_option(tmp_path):
    rows = "\n".join(f"{e / 1000:.5f} {y:.6f}" for e, y in zip(E, Y))
    e, _, _ = read_text(_write(tmp_path / "k.txt", rows), energy_unit="keV")
    np.testing.assert_allclose(e, E, atol=1e-6)


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("", "file is empty"),
        ("   \n\n", "file is empty"),
        ("# only a comment\nEnergy Intensity\n", "no numeric data lines"),
        ("530\n531\n532\n533\n534\n", r"line 1: found 1 column, expected at least 2"),
        ("530 1\n531 2\n532 3 4\n533 1\n534 1\n", r"line 3: 3 columns, expected 2"),
        ("530 1\n531 2\n532 abc\n533 1\n534 1\n", r"line 3: non-numeric intensity value 'abc'"),
        ("E I\n530 1\n531 nan\n532 1\n533 1\n534 1\n", r"line 3: intensity value is 'nan'"),
        ("530 1\n531 2\n", "only 2 data points"),
        ("530 1\n531 2\n531 3\n532 1\n533 1\n", "not strictly increasing"),
        ("Energy (keV), I\n0.530,1\n0.531,2\n0.532,3\n0.533,1\n0.534,1\n", r"line 1\) says the energies are in keV"),
        ("0.530 1\n0.531 2\n0.532 3\n0.533 1\n0.534 1\n", "span only 0.004.*keV"),
        ("530 0\n531 0\n532 0\n533 0\n534 0\n", "zero everywhere"),
    ],
)
def test_text_bad_files(tmp_path, content, pattern):
    p = _write(tmp_path / "bad.txt", content)
    with pytest.raises(SpectrumFileError, match=pattern) as err:
        read_text(p)
    assert str(p) in str(err.value)  # the message names the file


def test_text_missing_file_and_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text(tmp_path / "missing.txt")
    p = _write(tmp_path / "s.txt", "E I\n" + "\n".join(f"{e} {y}" for e, y in zip(E, Y)))
    with pytest.raises(SpectrumFileError, match="column 'counts' not found"):
        read_text(p, intensity_col="counts")
    with pytest.raises(SpectrumFileError, match="column 4"):
        read_text(p, intensity_col=4)


# --------------------------------------------------------------------------- EMSA / MAS
def _msa(datatype="Y", xunits="eV", npoints=None, end=True, data=None, offset=525.0, step=0.5):
    head = [
        "#FORMAT      : EMSA/MAS Spectral Data File",
        "#VERSION     : 1.0",
        "#TITLE       : O K-edge alpha-quartz",
        f"#NPOINTS     : {len(E) if npoints is None else npoints}",
        "#NCOLUMNS    : 1",
        f"#XUNITS      : {xunits}",
        "#YUNITS      : counts",
        f"#DATATYPE    : {datatype}",
        f"#XPERCHAN    : {step}",
        f"#OFFSET      : {offset}",
        "#SIGNALTYPE  : ELS",
        "#BEAMKV   -kV: 200.0",
        "#SPECTRUM    : Spectral Data Starts Here",
    ]
    if data is None:
        if datatype == "XY":
            data = [f"{e:.3f}, {y:.6f}" for e, y in zip(E, Y)]
        else:  # several values per line, comma separated with trailing comma
            data = [", ".join(f"{y:.6f}" for y in Y[i : i + 5]) + "," for i in range(0, len(Y), 5)]
    tail = ["#ENDOFDATA   : End Of Data and File"] if end else []
    return "\n".join(head + data + tail) + "\n"


@pytest.mark.parametrize("datatype", ["Y", "XY"])
def test_msa(tmp_path, datatype):
    p = _write(tmp_path / "s.msa", _msa(datatype))
    e, y, meta = read_msa(p)
    np.testing.assert_allclose(e, E)
    np.testing.assert_allclose(y, Y, atol=1e-6)
    assert meta["header"]["SIGNALTYPE"] == "ELS" and meta["header_units"]["BEAMKV"] == "kV"


def test_msa_kev_units_converted(tmp_path):
    e, _, meta = read_msa(_write(tmp_path / "k.msa", _msa(xunits="keV", offset=0.525, step=0.0005)))
    np.testing.assert_allclose(e, E, atol=1e-9)
    assert meta["xunits_in_file"] == "keV"


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"end": False}, "no #ENDOFDATA line: the file is truncated"),
        ({"npoints": 100}, r"#NPOINTS says 100 points, the data block has 40"),
        ({"data": ["0.1, 0.2, x3"]}, r"line 14: non-numeric value 'x3'"),
        ({"data": ["0.1, nan, 0.3, 0.4, 0.5"], "npoints": 5}, r"line 14: value 'nan'"),
        ({"data": []}, "data block is empty"),
        ({"xunits": "nm"}, "#XUNITS is 'nm'"),
        ({"datatype": "XY", "data": ["530, 1", "531"]}, "odd number of values"),
        ({"offset": 0.525, "step": 0.0005}, "span only .*keV"),
    ],
)
def test_msa_bad_files(tmp_path, kwargs, pattern):
    p = _write(tmp_path / "bad.msa", _msa(**kwargs))
    with pytest.raises(SpectrumFileError, match=pattern) as err:
        read_msa(p)
    assert str(p) in str(err.value)


def test_msa_not_emsa(tmp_path):
    with pytest.raises(SpectrumFileError, match="no #FORMAT line"):
        read_msa(_write(tmp_path / "x.msa", "530 1\n531 2\n"))
    with pytest.raises(SpectrumFileError, match="empty"):
        read_msa(_write(tmp_path / "e.msa", ""))
    text = _msa().replace("#XPERCHAN    : 0.5\n", "")
    with pytest.raises(SpectrumFileError, match="needs #XPERCHAN"):
        read_msa(_write(tmp_path / "n.msa", text))


# --------------------------------------------------------------------------- CASTEP
NK, NB = 2, 6
EF_HA = 0.10
# eigenvalues (Hartree): 3 occupied below E_F, 3 empty above at E_F + 2, 5, 9 eV (k1) and +2.5, 5, 12 eV (k2)
EMPTY_EV = np.array([[2.0, 5.0, 9.0], [2.5, 5.0, 12.0]])
EIG_HA = np.round(
    np.concatenate([np.full((NK, 3), -0.3) + np.arange(3) * 0.05, EF_HA + EMPTY_EV / HARTREE_EV], axis=1), 8
)  # as written to the .bands file (8 decimals)
WEIGHTS = np.array([0.25, 0.75])
# core orbitals: O 1s of ion 1 and ion 2 of species 2, and a Si 2p (n = 2, lm = 2) of species 1
ORBITALS = {"species": [2, 2, 1], "ion": [1, 2, 1], "n": [1, 1, 2], "lm": [1, 1, 2]}
NORB = 3


def _matrix(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(NK, 1, NORB, NB, 3)) + 1j * rng.normal(size=(NK, 1, NORB, NB, 3))


def _bands_text(nk=NK, truncate_at=None, bad_line=None):
    lines = [
        f"Number of k-points {nk:6d}",
        "Number of spin components 1",
        "Number of electrons      6.000",
        f"Number of eigenvalues {NB:6d}",
        f"Fermi energy (in atomic units)     {EF_HA:.6f}",
        "Unit cell vectors",
        "    9.285814    0.000000    0.000000",
        "   -4.642907    8.041751    0.000000",
        "    0.000000    0.000000   10.213378",
    ]
    for k in range(nk):
        lines.append(f"K-point {k + 1:5d} {0.0:12.8f} {0.0:12.8f} {0.25 * k:12.8f} {WEIGHTS[k]:12.8f}")
        lines.append("Spin component    1")
        lines += [f"{v:16.8f}" for v in EIG_HA[k]]
    if bad_line is not None:
        lines[bad_line] = "   0.1234x"
    if truncate_at is not None:
        lines = lines[:truncate_at]
    return "\n".join(lines) + "\n"


def _write_eels_mat(path, mat, endian=">", nk=NK):
    """CASTEP layout: 4 int records, 4 int-array records, then one record of 3 complex per (k, spin, orb, band)."""
    with FortranFile(path, "w", header_dtype=np.dtype(f"{endian}u4")) as f:
        for v in (NORB, NB, nk, 1):
            f.write_record(np.array([v], dtype=f"{endian}i4"))
        for key in ("species", "ion", "n", "lm"):
            f.write_record(np.array(ORBITALS[key], dtype=f"{endian}i4"))
        for k in range(nk):
            for o in range(NORB):
                for b in range(NB):
                    f.write_record(np.asarray(mat[k, 0, o, b], dtype=f"{endian}c16"))
    return path


def _write_elnes_bin(path, mat):
    """OptaDOS layout: version, header, the same 8 header records, one record per (k, spin), Fortran order."""
    with FortranFile(path, "w") as f:
        f.write_record(np.array([1.0], dtype="<f8"))
        f.write_record(np.frombuffer(b"written by a test".ljust(80), dtype="u1"))
        for v in (NORB, NB, NK, 1):
            f.write_record(np.array([v], dtype="<i4"))
        for key in ("species", "ion", "n", "lm"):
            f.write_record(np.array(ORBITALS[key], dtype="<i4"))
        for k in range(NK):
            f.write_record(np.asarray(mat[k, 0], dtype="<c16").ravel(order="F"))  # (orb, band, xyz)
    return path


def _expected(mat, orb, energies, sigma=0.3):
    """Direct loop over the formula in castep_elnes_spectrum's docstring."""
    out = np.zeros_like(energies)
    for k in range(NK):
        for b in range(NB):
            e = EIG_HA[k, b] * HARTREE_EV - EF_HA * HARTREE_EV
            if e <= 0:
                continue
            m2 = np.mean(np.abs(mat[k, 0, orb, b]) ** 2)
            w = 2.0 * WEIGHTS[k] / WEIGHTS.sum()
            out += w * m2 * np.exp(-0.5 * ((energies - e) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return out


def test_castep_bands(tmp_path):
    b = read_castep_bands(_write(tmp_path / "c.bands", _bands_text()))
    assert (b.n_kpoints, b.n_spins) == (NK, 1)
    np.testing.assert_allclose(b.fermi_eV, [EF_HA * HARTREE_EV])
    np.testing.assert_allclose(b.eigenvalues_eV[:, 0, :], EIG_HA * HARTREE_EV, rtol=1e-7)
    np.testing.assert_allclose(b.weights, WEIGHTS)
    assert b.cell_bohr.shape == (3, 3)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_castep_eels_mat_layouts(tmp_path, endian):
    mat = _matrix()
    m = read_castep_eels_mat(_write_eels_mat(tmp_path / "c.eels_mat", mat, endian))
    assert (m.n_orbitals, m.n_bands, m.n_kpoints, m.n_spins) == (NORB, NB, NK, 1)
    assert m.layout == "eels_mat" and m.endian == endian
    np.testing.assert_array_equal(m.matrix, mat)
    np.testing.assert_array_equal(m.species, ORBITALS["species"])
    m2 = read_castep_eels_mat(_write_elnes_bin(tmp_path / "c.elnes_bin", mat))
    assert m2.layout == "elnes_bin" and m2.extra["header"] == "written by a test"
    np.testing.assert_array_equal(m2.matrix, mat)


def test_castep_spectrum(tmp_path):
    mat = _matrix(1)
    _write(tmp_path / "quartz.bands", _bands_text())
    _write_eels_mat(tmp_path / "quartz.eels_mat", mat)
    raw = read_castep_elnes(tmp_path / "quartz", ion=2, sigma_eV=0.3)
    expected = _expected(mat, 1, raw.energy)
    np.testing.assert_allclose(raw.intensity, expected, rtol=1e-10, atol=1e-14)
    assert raw.meta["orbital"] == {"species": 2, "ion": 2, "n": 1, "lm": 1}
    assert raw.meta["origin"] == "fermi" and raw.energy[0] == -5.0
    # the first peak sits at the lowest empty state, E_F + 2 eV; nothing from occupied bands
    assert raw.intensity[raw.energy < -1].max() < 1e-6 * raw.intensity.max()
    # the other O site gives a different spectrum; the same call via the .bands name and dispatcher
    other = read_spectrum(tmp_path / "quartz.bands", species=2, ion=1)
    np.testing.assert_allclose(other.intensity, _expected(mat, 0, other.energy), rtol=1e-10, atol=1e-14)
    # origin at the lowest empty level (E_F + 2 eV, to the .bands file's precision) moves everything
    d = (EIG_HA[:, 3].min() - EF_HA) * HARTREE_EV
    assert d == pytest.approx(2.0, abs=1e-6)
    cbm = read_castep_elnes(tmp_path / "quartz.eels_mat", ion=2, origin="cbm", energies=raw.energy - d)
    np.testing.assert_allclose(cbm.intensity, raw.intensity, rtol=1e-9, atol=1e-14)


def test_castep_many_states_chunked():
    """More than one chunk of states (4096) gives the same as one dense evaluation."""
    from s2s.io.readers import CastepBands, CastepEelsMat

    rng = np.random.default_rng(5)
    nk, nb = 900, 8
    eig = np.sort(rng.uniform(-10, 25, size=(nk, 1, nb)), axis=2)
    bands = CastepBands(
        nk,
        1,
        np.array([8.0]),
        np.array([nb]),
        np.array([0.0]),
        np.eye(3),
        np.arange(1, nk + 1),
        np.zeros((nk, 3)),
        rng.uniform(0.5, 1.5, nk),
        eig,
    )
    m = rng.normal(size=(nk, 1, 1, nb, 3)) + 0j
    mat = CastepEelsMat(1, nb, nk, 1, np.array([1]), np.array([1]), np.array([1]), np.array([1]), m, "eels_mat", "<")
    raw = castep_elnes_spectrum(bands, mat, sigma_eV=0.5)
    unocc = eig > 0
    c = eig[unocc]
    a = (2 * bands.weights[:, None, None] / bands.weights.sum() * np.mean(np.abs(m[:, :, 0]) ** 2, -1))[unocc]
    assert c.size > 4096
    dense = np.exp(-0.5 * ((raw.energy[:, None] - c) / 0.5) ** 2) @ a / (0.5 * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(raw.intensity, dense, rtol=1e-10)


def test_castep_orbital_choice_errors(tmp_path):
    _write(tmp_path / "c.bands", _bands_text())
    _write_eels_mat(tmp_path / "c.eels_mat", _matrix())
    with pytest.raises(SpectrumFileError, match=r"2 1s core orbitals match; choose one .* \[\(2, 1\), \(2, 2\)\]"):
        read_castep_elnes(tmp_path / "c")
    with pytest.raises(SpectrumFileError, match="no 1s core orbital for species=1"):
        read_castep_elnes(tmp_path / "c", species=1)


def test_castep_bad_files(tmp_path):
    good = _write_eels_mat(tmp_path / "good.eels_mat", _matrix())
    data = good.read_bytes()
    trunc = tmp_path / "t.eels_mat"
    trunc.write_bytes(data[: len(data) - 100])
    with pytest.raises(SpectrumFileError, match=r"t.eels_mat: truncated binary: expected 36 matrix-element records"):
        read_castep_eels_mat(trunc)
    head_only = tmp_path / "h.eels_mat"
    head_only.write_bytes(data[:30])
    with pytest.raises(SpectrumFileError, match="h.eels_mat: .*truncated binary"):
        read_castep_eels_mat(head_only)
    empty = tmp_path / "e.eels_mat"
    empty.write_bytes(b"")
    with pytest.raises(SpectrumFileError, match="e.eels_mat: file is empty"):
        read_castep_eels_mat(empty)
    text = tmp_path / "x.eels_mat"
    text.write_text("this is not binary at all")
    with pytest.raises(SpectrumFileError, match="not a Fortran unformatted"):
        read_castep_eels_mat(text)
    # .bands problems: truncated, non-numeric, mismatch with the matrix elements
    with pytest.raises(SpectrumFileError, match=r"b1.bands: file ends early \(truncated\?\)"):
        read_castep_bands(_write(tmp_path / "b1.bands", _bands_text(truncate_at=14)))
    with pytest.raises(SpectrumFileError, match=r"b2.bands: line 13: non-numeric eigenvalue"):
        read_castep_bands(_write(tmp_path / "b2.bands", _bands_text(bad_line=12)))
    with pytest.raises(SpectrumFileError, match=r"b3.bands: line 1: expected 'Number of k-points"):
        read_castep_bands(_write(tmp_path / "b3.bands", "hello\n"))
    b = read_castep_bands(_write(tmp_path / "one.bands", _bands_text(nk=1)))
    with pytest.raises(SpectrumFileError, match="2 k-points x 1 spins, .bands has 1 x 1"):
        castep_elnes_spectrum(b, read_castep_eels_mat(good), ion=1, path=good)
    with pytest.raises(FileNotFoundError, match="lonely"):
        read_castep_elnes(tmp_path / "lonely")


# --------------------------------------------------------------------------- GPAW JSON
def _gpaw(tmp_path, **over):
    obj = {
        "structure_id": "alpha-quartz",
        "site_index": 3,
        "energies_eV": (E - 530).tolist(),
        "intensity": Y.tolist(),
        "grid_spectrum": np.linspace(0, 1, 200).tolist(),
        "settings": {"mode": "lcao"},
    }
    obj.update(over)
    p = tmp_path / "ref.json"
    p.write_text(json.dumps(obj))
    return p


def test_gpaw_json(tmp_path):
    e, y, meta = read_gpaw_json(_gpaw(tmp_path))
    np.testing.assert_allclose(e, E - 530)
    assert meta["structure_id"] == "alpha-quartz" and meta["site_index"] == 3
    assert meta["grid_spectrum"].shape == (200,) and meta["settings"] == {"mode": "lcao"}


def test_gpaw_degenerate_sticks_are_summed(tmp_path):
    e = [0.0, 0.5, 0.5, 0.5, 1.0, 1.5, 2.0, 2.0, 2.5]
    y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    e2, y2, meta = read_gpaw_json(_gpaw(tmp_path, energies_eV=e, intensity=y))
    np.testing.assert_allclose(e2, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(y2, [1.0, 9.0, 5.0, 6.0, 15.0, 9.0])
    assert meta["merged_sticks"] == 3
    with pytest.raises(SpectrumFileError, match="not strictly increasing"):  # unsorted is still an error
        read_gpaw_json(_gpaw(tmp_path, energies_eV=[0.0, 1.0, 0.5, 2.0, 3.0, 4.0], intensity=[1.0] * 6))


def test_gpaw_bad(tmp_path):
    with pytest.raises(SpectrumFileError, match=r"missing field\(s\) \['intensity'\]"):
        read_gpaw_json(_gpaw_without(tmp_path, "intensity"))
    with pytest.raises(SpectrumFileError, match="'energies_eV' has 40 values, 'intensity' 3"):
        read_gpaw_json(_gpaw(tmp_path, intensity=[1, 2, 3]))
    with pytest.raises(SpectrumFileError, match="'grid_spectrum' must be 200 finite values"):
        read_gpaw_json(_gpaw(tmp_path, grid_spectrum=[1.0] * 10))
    with pytest.raises(SpectrumFileError, match="intensity has NaN"):
        read_gpaw_json(_gpaw(tmp_path, intensity=[math.nan] * len(E)))
    bad = tmp_path / "broken.json"
    bad.write_text('{"structure_id": "a", ')
    with pytest.raises(SpectrumFileError, match="broken.json: not valid JSON"):
        read_gpaw_json(bad)


def _gpaw_without(tmp_path, key):
    p = _gpaw(tmp_path)
    obj = json.loads(p.read_text())
    del obj[key]
    p.write_text(json.dumps(obj))
    return p


# --------------------------------------------------------------------------- dispatcher
def test_dispatch(tmp_path):
    rows = "\n".join(f"{e} {y}" for e, y in zip(E, Y))
    _write(tmp_path / "a.dat", rows)
    _write(tmp_path / "b.txt", _msa())  # EMSA content in a .txt file: sniffed
    _write(tmp_path / "c.msa", _msa("XY"))
    assert detect_format(tmp_path / "a.dat") == "text"
    assert detect_format(tmp_path / "b.txt") == "msa"
    assert detect_format(_gpaw(tmp_path)) == "gpaw"
    for name in ("a.dat", "b.txt", "c.msa"):
        e, y, _ = read_spectrum(tmp_path / name)
        np.testing.assert_allclose(e, E)
    assert read_spectrum(tmp_path / "ref.json").meta["format"] == "gpaw"
    assert read_spectrum(tmp_path / "c.msa", format="msa").meta["format"] == "msa"
    with pytest.raises(ValueError, match="format must be one of"):
        read_spectrum(tmp_path / "a.dat", format="xlsx")
    with pytest.raises(FileNotFoundError):
        read_spectrum(tmp_path / "nothing.dat")


def test_one_suffix_table_arrays_and_folders(tmp_path):
    from s2s.io import SUFFIXES, read_array, spectrum_files

    # NumPy files: format "array", read by read_array (many spectra), refused by read_spectrum naming the file
    np.save(tmp_path / "img.npy", np.ones((2, 3, 200)))
    assert detect_format(tmp_path / "img.npy") == "array" and SUFFIXES[".npz"] == "array"
    with pytest.raises(SpectrumFileError, match="img.npy: a NumPy file holds arrays of spectra"):
        read_spectrum(tmp_path / "img.npy")
    arr = read_array(tmp_path / "img.npy")
    assert arr.energy is None and arr.spectra.shape == (2, 3, 200)
    np.savez(tmp_path / "e.npz", energy=np.linspace(525, 560, 50), spectra=np.ones((4, 50)))
    assert read_array(tmp_path / "e.npz").energy.shape == (50,)
    np.save(tmp_path / "short.npy", np.ones(150))
    with pytest.raises(SpectrumFileError, match=r"short.npy: last axis has 150 points.*energy axis"):
        read_array(tmp_path / "short.npy")
    assert read_array(tmp_path / "short.npy", energy_axis=np.linspace(-1, 25, 150)).spectra.shape == (150,)
    np.savez(tmp_path / "bad.npz", energy=np.linspace(525, 560, 3), spectra=np.ones((4, 50)))
    with pytest.raises(SpectrumFileError, match=r"bad.npz: energy axis has shape \(3,\), spectra have 50 points"):
        read_array(tmp_path / "bad.npz")
    # a folder: every known suffix, no hidden files, a CASTEP pair once (through its .bands)
    d = tmp_path / "folder"
    d.mkdir()
    for name in ("a.txt", "b.msa", "seed.bands", "seed.eels_mat", "lone.eels_mat", "x.npy", ".hidden.txt", "notes.md"):
        (d / name).write_text("")
    assert [f.name for f in spectrum_files(d)] == ["a.txt", "b.msa", "lone.eels_mat", "seed.bands", "x.npy"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty: folder has no spectrum files"):
        spectrum_files(empty)


def test_dispatch_dataset_entry(tmp_path):
    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import Environment
    from s2s.spectrum import GRID

    spec = np.exp(-0.5 * ((GRID - 5) / 1.5) ** 2)
    env = Environment([1, 0, 0], [[0, 0, 0], [1.6, 0, 0], [-0.5, 1.5, 0]], [0, 1, 1])
    ds = Dataset.from_records([SiteRecord(spec, env, "q", 0), SiteRecord(spec * 2, env, "q", 1)])
    path = ds.save(tmp_path / "d.h5")
    e, y, meta = read_spectrum(path, index=1)
    np.testing.assert_array_equal(e, GRID)
    np.testing.assert_array_equal(y, spec * 2)
    assert meta["site_index"] == 1
    with pytest.raises(SpectrumFileError, match="entry 5 requested, the dataset has 2"):
        read_spectrum(path, index=5)


def test_on_grid(tmp_path):
    from s2s.spectrum import GRID

    # relative energies (e.g. CASTEP/GPAW): used as they are
    rel = read_text(_write(tmp_path / "r.txt", "\n".join(f"{e - 530} {y}" for e, y in zip(E, Y))))
    g = rel.on_grid()
    assert g.shape == (200,)
    assert np.trapezoid(g, GRID) == pytest.approx(1.0, rel=1e-9)
    assert GRID[np.argmax(g)] == pytest.approx(7.0, abs=0.06)  # the peak at 537 eV - 530 eV
    # absolute energy loss (measured): refused as is, fine with an onset shift
    absolute = read_text(_write(tmp_path / "a.txt", "\n".join(f"{e} {y}" for e, y in zip(E, Y))))
    with pytest.raises(SpectrumError, match="a.txt.*absolute energy losses"):
        absolute.on_grid()
    np.testing.assert_allclose(absolute.on_grid(shift_eV=530.0), g, atol=1e-12)
    auto = absolute.on_grid(shift_eV="onset")
    assert np.trapezoid(auto, GRID) == pytest.approx(1.0, rel=1e-9)
