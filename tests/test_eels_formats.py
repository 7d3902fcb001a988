"""Instrument formats through rosettasciio (issue 33, part 1): DigitalMicrograph .dm3/.dm4 and HyperSpy .hspy
spectra and spectrum images read back through ``s2s predict`` (every pixel, ``--pixel``, ``--roi``), EMSA
written by rosettasciio read by the own parser, and one line for a non-eV or missing energy calibration, a
damaged file and a missing rosettasciio.  DM files are written by ``tests/dm_writer.py`` (rosettasciio
reads DM but does not write it), HSPY and EMSA files by rosettasciio itself."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import toy_dataset_and_model, toy_spectrum

from s2s.cli import main
from s2s.io.raw import SpectrumFileError
from s2s.spectrum import GRID, onset_shift

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dm_writer import write_dm

torch.set_num_threads(1)
#: Energy-loss axis of the test files (eV): O K-edge onset near 532 eV.
E0, DE, NE = 520.0, 0.25, 160
ENERGY = E0 + DE * np.arange(NE)


def _measured(k: float, onset: float = 532.0) -> np.ndarray:
    """A toy O K-edge on :data:`ENERGY` (absolute energy loss), onset near ``onset`` eV, counts-like scale."""
    s = toy_spectrum(k)
    return 1000.0 * np.interp(ENERGY - onset, GRID, s, left=0.0, right=s[-1]) + 5.0


def _image(ny: int = 2, nx: int = 3) -> np.ndarray:
    """(ny, nx, NE): pixel (y, x) has its onset at 530 + x + 2 y eV, so a summary tells which pixel it is."""
    return np.stack([np.stack([_measured(1.0, 530.0 + x + 2 * y) for x in range(nx)]) for y in range(ny)])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(dataset, model.pt): a toy dataset and a tiny model trained 3 steps."""
    return toy_dataset_and_model(tmp_path_factory.mktemp("eels"))


def _predict(tiny, *inputs, out, extra=()):
    data, model = tiny
    argv = ["predict", *map(str, inputs), "--model", str(model), "--data", str(data), "--no-rank"]
    return main(argv + ["--n-samples", "2", "--steps", "2", "--out", str(out), "--quiet", "--no-png", *extra])


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "error:" in ln]


def _write_hspy(path: Path, data: np.ndarray, units: str = "eV", offset: float = E0, scale: float = DE) -> Path:
    """A HyperSpy file written by rosettasciio: navigation axes (y, x) first, the energy axis last."""
    from rsciio.hspy import file_writer

    nav = [("y", "nm"), ("x", "nm")][-(data.ndim - 1) :] if data.ndim > 1 else []
    axes = [
        {"name": n, "size": data.shape[i], "offset": 0.0, "scale": 1.0, "units": u, "navigate": True}
        for i, (n, u) in enumerate(nav)
    ]
    axes.append(
        {
            "name": "Energy loss",
            "size": data.shape[-1],
            "offset": offset,
            "scale": scale,
            "units": units,
            "navigate": False,
        }
    )
    signal = {
        "data": data,
        "axes": axes,
        "metadata": {"General": {"title": "O K"}, "Signal": {"signal_type": "EELS"}},
        "original_metadata": {},
        "attributes": {"_lazy": False},
        "tmp_parameters": {},
        "package_info": {"name": "s2s-tests", "version": "0"},
        "learning_results": {},
        "models": {},
    }
    file_writer(str(path), signal, show_progressbar=False)
    return path


def _write_dm_image(path: Path, image: np.ndarray, version: int = 4) -> Path:
    """A DigitalMicrograph spectrum image, energy-first as DigitalMicrograph stores it."""
    return write_dm(
        path, np.moveaxis(image, -1, 0), [E0, 0.0, 0.0], [DE, 1.0, 1.0], ["eV", "nm", "nm"], version=version
    )


# ----------------------------------------------------------------------------- reading
@pytest.mark.parametrize("version", [3, 4])
def test_dm_spectrum_through_predict(tiny, tmp_path, version):
    pytest.importorskip("rsciio")
    (tmp_path / "in").mkdir()
    src = write_dm(tmp_path / "in" / f"ok.dm{version}", _measured(1.0), [E0], [DE], ["eV"], version=version)
    assert _predict(tiny, src, out=tmp_path / "out") == 0
    pre = _summary(tmp_path / "out" / "ok")["preprocessing"]
    assert pre["format"] == "dm" and pre["energy_units_in_file"] == "eV" and pre["signal_type"] == "EELS"
    assert pre["energy_offset"] == pytest.approx(E0) and pre["energy_scale"] == pytest.approx(DE)
    assert 530.0 < pre["onset_eV"] < 534.0 and pre["shift_mode"] == "onset"


def test_read_eels_file_moves_the_energy_axis_last_and_converts_kev(tmp_path):
    pytest.importorskip("rsciio")
    from s2s.io.eels import read_eels_file
    from s2s.io.readers import read_spectrum

    img = _image()
    d = read_eels_file(_write_dm_image(tmp_path / "si.dm4", img))
    assert d.data.shape == (2, 3, NE) and d.meta["navigation_shape"] == [2, 3]
    np.testing.assert_allclose(d.data, img, rtol=1e-6)  # float32 in the file
    np.testing.assert_allclose(d.energy, ENERGY, rtol=1e-6)
    k = read_spectrum(write_dm(tmp_path / "k.dm3", _measured(1.0), [E0 / 1000], [DE / 1000], ["keV"], version=3))
    np.testing.assert_allclose(k.energy, ENERGY, rtol=1e-5)
    assert k.meta["energy_units_in_file"] == "keV"
    with pytest.raises(SpectrumFileError, match=r"holds \(2, 3\) spectra"):
        read_spectrum(tmp_path / "si.dm4")  # one spectrum asked for, an image given


def test_hspy_spectrum_image_every_pixel_is_resumable_and_mapped(tiny, tmp_path, capsys):
    pytest.importorskip("rsciio")
    img = _image()
    src = _write_hspy(tmp_path / "map.hspy", img)
    out = tmp_path / "out"
    assert _predict(tiny, src, out=out) == 0
    names = sorted(p.name for p in (out / "map").iterdir() if p.is_dir())
    assert names == [f"y{y:03d}_x{x:03d}" for y in range(2) for x in range(3)]
    s = _summary(out / "map" / "y001_x002")
    assert s["preprocessing"]["si_selection"] == "every pixel" and s["preprocessing"]["index"] == [1, 2]
    assert s["preprocessing"]["format"] == "hspy"
    # pixel (y=1, x=2) has its onset at 530 + 2 + 2 = 534 eV, pixel (0, 0) at 530 eV
    on = {n: _summary(out / "map" / n)["preprocessing"]["onset_eV"] for n in ("y000_x000", "y001_x002")}
    assert on["y001_x002"] - on["y000_x000"] == pytest.approx(4.0, abs=0.3)
    with np.load(out / "map" / "maps.npz") as z:
        assert z["cn1_mean"].shape == (2, 3) and np.all(np.isfinite(z["cn1_mean"]))
        cons = z["consensus_cn1"]
    from s2s.io import read_extxyz

    for y in range(2):
        for x in range(3):  # the consensus CN map holds candidate 0's first-shell count of each pixel
            first = read_extxyz(out / "map" / f"y{y:03d}_x{x:03d}" / "candidates.xyz")[0]
            assert cons[y, x] == np.sum(first.shell == 1)
    capsys.readouterr()
    shutil.rmtree(out / "map" / "y000_x001")  # as if killed before this pixel: only it is redone
    assert _predict(tiny, src, out=out) == 0
    assert "1 written, 5 already done" in capsys.readouterr().out


def test_hyperspy_file_saved_as_hdf5_is_read_as_hyperspy(tiny, tmp_path):
    """.hdf5 is also an s2s dataset suffix: a HyperSpy file under it is recognised by its file_format."""
    pytest.importorskip("rsciio")
    src = _write_hspy(tmp_path / "old.hspy", _measured(1.0)).rename(tmp_path / "old.hdf5")
    assert _predict(tiny, src, out=tmp_path / "out") == 0
    assert _summary(tmp_path / "out" / "old")["preprocessing"]["format"] == "hspy"


def test_dm_spectrum_image_pixel_and_roi(tiny, tmp_path, capsys):
    pytest.importorskip("rsciio")
    img = _image()
    src = _write_dm_image(tmp_path / "si.dm4", img)
    out = tmp_path / "out"
    assert _predict(tiny, src, out=out, extra=("--pixel", "2,1")) == 0
    assert sorted(p.name for p in (out / "si").iterdir()) == ["y001_x002"]  # one output, no maps.npz
    pre = _summary(out / "si" / "y001_x002")["preprocessing"]
    assert pre["si_selection"] == "pixel" and pre["si_pixel"] == [2, 1] and pre["array_shape"] == [2, 3, NE]
    assert pre["onset_eV"] == pytest.approx(onset_shift(ENERGY, img[1, 2], fraction=0.1), abs=0.05)  # x 2, y 1
    assert _predict(tiny, src, out=out, extra=("--roi", "0:2,0:1")) == 0
    pre = _summary(out / "si" / "roi_x0-2_y0-1")["preprocessing"]
    assert pre["si_selection"] == "roi (sum)" and pre["si_roi"] == [0, 2, 0, 1] and pre["si_roi_pixels"] == 2
    summed = img[0, 0] + img[0, 1]  # columns 0-1 of row 0
    assert pre["onset_eV"] == pytest.approx(onset_shift(ENERGY, summed, fraction=0.1), abs=0.05)
    capsys.readouterr()
    assert _predict(tiny, src, out=out, extra=("--pixel", "3,0")) == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "outside the spectrum image: 3 x 2 pixels" in err[0], err
    for bad in (("--pixel", "1"), ("--roi", "2:1,0:1"), ("--roi", "a:b")):
        assert _predict(tiny, src, out=out, extra=bad) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and bad[0] in err[0], err


def test_emsa_written_by_rosettasciio_is_read_by_predict(tiny, tmp_path):
    """rosettasciio's EMSA writer and the own parser agree (the own parser stays: s2s/io/eels.py says why)."""
    pytest.importorskip("rsciio")
    from rsciio.msa import file_reader, file_writer

    from s2s.io.readers import read_msa

    y = _measured(1.0)
    sig = {
        "data": y,
        "axes": [{"name": "Energy loss", "size": NE, "offset": E0, "scale": DE, "units": "eV", "navigate": False}],
        "metadata": {"General": {"title": "O K"}, "Signal": {"signal_type": "EELS"}},
        "original_metadata": {},
    }
    p = tmp_path / "in" / "rs.msa"
    p.parent.mkdir()
    file_writer(str(p), sig)
    e, yy, meta = read_msa(p)
    np.testing.assert_allclose(e, ENERGY, rtol=1e-9)
    np.testing.assert_allclose(yy, y, rtol=1e-5)
    back = file_reader(str(p))[0]
    np.testing.assert_allclose(back["data"], yy, rtol=1e-9)
    assert _predict(tiny, p, out=tmp_path / "out") == 0
    assert _summary(tmp_path / "out" / "rs")["preprocessing"]["format"] == "msa"


# ----------------------------------------------------------------------------- one line for bad files
def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    y = _measured(1.0)
    return {
        "dm_nm": (write_dm(tmp_path / "nm.dm4", y, [E0], [DE], ["nm"]), "is in 'nm', expected eV"),
        "dm_uncalibrated": (
            write_dm(tmp_path / "raw.dm3", y, [0.0], [1.0], [""], version=3),
            "has no calibration: no units (offset 0, scale 1)",
        ),
        "hspy_nm": (_write_hspy(tmp_path / "nm.hspy", y, units="nm"), "is in 'nm', expected eV"),
        "hspy_uncalibrated": (
            _write_hspy(tmp_path / "raw.hspy", y, units="", offset=0.0, scale=1.0),
            "has no calibration",
        ),
    }


def test_non_ev_or_missing_calibration_is_one_line(tiny, tmp_path, capsys):
    pytest.importorskip("rsciio")
    inp = tmp_path / "in"
    inp.mkdir()
    bad = _bad_files(inp)
    trunc = inp / "cut.dm4"
    trunc.write_bytes(write_dm(tmp_path / "whole.dm4", _measured(1.0), [E0], [DE], ["eV"]).read_bytes()[:300])
    bad["truncated"] = (trunc, "not a readable DM file (rosettasciio:")
    out = tmp_path / "out"
    capsys.readouterr()
    assert _predict(tiny, *[p for p, _ in bad.values()], out=out) == 2
    cap = capsys.readouterr()
    err = _error_lines(cap.err)
    assert len(err) == len(bad), cap.err
    for p, msg in bad.values():
        assert sum(str(p) in ln and msg in ln for ln in err) == 1, (p, msg, err)
    assert "Traceback" not in cap.err
    assert not out.exists() or not any(out.iterdir())
    assert f"{len(bad)} failed" in cap.out


def test_missing_rosettasciio_is_one_line(tiny, tmp_path, monkeypatch, capsys):
    src = write_dm(tmp_path / "a.dm4", _measured(1.0), [E0], [DE], ["eV"])
    for mod in ("rsciio.digitalmicrograph", "rsciio.hspy"):
        monkeypatch.setitem(sys.modules, mod, None)  # import fails as when rosettasciio is not installed
    assert _predict(tiny, src, out=tmp_path / "out") == 2
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "needs rosettasciio" in err[0] and "s2s[eels]" in err[0], err


# ----------------------------------------------------------------------------- predict_signal (part 2)
class _Axis:
    def __init__(self, axis, units="eV", name="Energy loss"):
        self.axis, self.units, self.name = np.asarray(axis), units, name


class _Signal:
    """What predict_signal uses of a HyperSpy Signal1D: ``data`` (navigation axes first) and
    ``axes_manager.signal_axes``."""

    def __init__(self, data, axis, units="eV"):
        self.data = data
        self.axes_manager = type("AM", (), {"signal_axes": (_Axis(axis, units),)})()


def test_predict_signal_returns_what_the_cli_writes(tiny, tmp_path):
    from s2s.predict import PredictContext, predict_signal, read_prediction

    data, model = tiny
    y = _measured(1.0)
    np.savez(tmp_path / "x.npz", energy=ENERGY, spectra=y)
    assert _predict(tiny, tmp_path / "x.npz", out=tmp_path / "out", extra=("--seed", "3")) == 0
    cands, summary = read_prediction(tmp_path / "out" / "x")
    ctx = PredictContext.load(model, data, None)
    kw = {"ctx": ctx, "n_samples": 2, "steps": 2, "seed": 3}
    for pred in (predict_signal(_Signal(y, ENERGY), **kw), predict_signal(y, ENERGY, **kw)):
        assert len(pred.candidates) == len(cands)
        for a, b in zip(pred.candidates, cands):
            assert list(a.species) == list(b.species)
            np.testing.assert_allclose(a.coords, b.coords, atol=1e-4)
        assert pred.summary["candidates"]["signatures"] == summary["candidates"]["signatures"]
        assert pred.summary["preprocessing"]["onset_eV"] == pytest.approx(summary["preprocessing"]["onset_eV"])
    # a spectrum image: one pixel (x, y) or the sum of a region
    img = _image()
    pred = predict_signal(_Signal(img, ENERGY), pixel=(2, 1), **kw)
    assert pred.summary["preprocessing"]["si_pixel"] == [2, 1] and pred.name == "signal/y001_x002"
    assert pred.summary["preprocessing"]["onset_eV"] == pytest.approx(onset_shift(ENERGY, img[1, 2], fraction=0.1))
    pred = predict_signal(img, ENERGY, roi=(0, 3, 0, 2), **kw)
    assert pred.summary["preprocessing"]["si_roi_pixels"] == 6


def test_predict_signal_refuses_with_one_line(tiny):
    from s2s.predict import PredictContext, predict_signal
    from s2s.predict.inputs import PredictInputError

    data, model = tiny
    ctx = PredictContext.load(model, data, None)
    y = _measured(1.0)
    cases = [
        (_Signal(y, ENERGY, units="nm"), {}, "is in 'nm', expected eV"),
        (_Signal(y, np.arange(NE, dtype=float), units=""), {}, "has no calibration"),
        (_Signal(_image(), ENERGY), {}, r"a spectrum image \(2, 3\): choose pixel"),
        (y, {}, "without energy_eV"),
        (y[:-1], {"energy_eV": ENERGY}, "energy_eV of shape"),
        (_image(), {"energy_eV": ENERGY, "pixel": (5, 0)}, "outside the spectrum image"),
    ]
    for obj, kw, msg in cases:
        with pytest.raises(PredictInputError, match=msg) as err:
            predict_signal(obj, ctx=ctx, n_samples=2, steps=2, **kw)
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- damaged DM files
def test_damaged_dm_files_give_the_input_error_or_a_valid_spectrum(tmp_path):
    """Bytes of a valid DM4 spectrum image overwritten at random places (tag structure, calibration, data):
    reading gives the project's input error (one line) or spectra with finite increasing energies, never
    another exception (tests/test_input_fuzz.py sends random bytes under .dm3/.dm4/.hspy names)."""
    pytest.importorskip("rsciio")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from s2s.predict.inputs import load_inputs
    from s2s.spectrum import SpectrumError

    good = _write_dm_image(tmp_path / "good.dm4", _image(1, 2)).read_bytes()

    @settings(
        max_examples=int(os.environ.get("S2S_FUZZ_EXAMPLES", "40")),
        deadline=None,
        derandomize=not os.environ.get("S2S_FUZZ_EXAMPLES"),
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(edits=st.lists(st.tuples(st.integers(0, len(good) - 1), st.binary(min_size=1, max_size=8)), max_size=4))
    def check(edits):
        b = bytearray(good)
        for at, new in edits:
            b[at : at + len(new)] = new
        p = tmp_path / "x.dm4"
        p.write_bytes(bytes(b[: len(good)]))
        try:
            items = load_inputs(p)
        except SpectrumError as exc:
            assert "\n" not in str(exc) and str(p) in str(exc)
            return
        for it in items:
            assert np.all(np.isfinite(it.energy)) and np.all(np.diff(it.energy) > 0)
            assert it.intensity.shape == it.energy.shape

    check()
