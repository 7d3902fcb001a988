"""``s2s predict`` against hostile or unlucky use (issue 30, parts 2-5): it never deletes what it did not
write, checks the output folder and the models before any work, is safe with two runs on one folder,
cleans what killed runs left, writes files with the umask's modes and always prints a summary line;
readers refuse ambiguous numbers and absurd energies with one line."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import toy_dataset_and_model, toy_spectrum

from s2s.cli import main
from s2s.environment import environments_from_structure
from s2s.files import FileLock, atomic_write_text, clean_stale
from s2s.spectrum import GRID

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent


def _msa(path: Path, k: float = 1.5) -> Path:
    """A relative-energy EMSA spectrum (a valid input)."""
    s = toy_spectrum(k)
    e = np.linspace(-2, 25, 300)
    lines = ["#FORMAT : EMSA/MAS Spectral Data File", "#VERSION : 1.0", "#XUNITS : eV", "#DATATYPE : XY"]
    lines += ["#SPECTRUM : start"] + [f"{a:.4f}, {b:.6f}" for a, b in zip(e, np.interp(e, GRID, s, right=s[-1]))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines + ["#ENDOFDATA : end"]) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(dataset, model.pt): a toy dataset and a tiny model trained 3 steps."""
    return toy_dataset_and_model(tmp_path_factory.mktemp("hostile"))


def _predict(tiny, *inputs, out, extra=()):
    data, model = tiny
    argv = ["predict", *map(str, inputs), "--model", str(model), "--data", str(data), "--no-rank"]
    return main(argv + ["--n-samples", "2", "--steps", "2", "--out", str(out), "--quiet", "--no-png", *extra])


# ----------------------------------------------------------------------------- part 2: never delete user data
def test_a_user_folder_with_an_inputs_name_is_left_alone(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    mine = out / "quartz"
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work")
    (out / "notes").write_text("a file named like an input")
    rc = _predict(tiny, _msa(tmp_path / "in" / "quartz.msa"), _msa(tmp_path / "in" / "notes.msa"), out=out)
    cap = capsys.readouterr()
    assert rc == 2
    assert (mine / "thesis.tex").read_text() == "years of work" and sorted(os.listdir(mine)) == ["thesis.tex"]
    assert (out / "notes").read_text() == "a file named like an input"
    lines = [ln for ln in cap.err.splitlines() if "left alone" in ln]
    assert len(lines) == 2 and any(str(mine) in ln for ln in lines), cap.err
    assert "0 written" in cap.out and "2 left alone" in cap.out


def test_predict_into_the_input_folder_does_not_delete_it(tiny, tmp_path, monkeypatch, capsys):
    """``cd data; s2s predict quartz --out .`` with data/quartz/quartz.msa: the output name is the input
    folder's name; the input folder survives and the input is reported as skipped."""
    data = tmp_path / "data"
    src = _msa(data / "quartz" / "quartz.msa")
    before = src.read_bytes()
    monkeypatch.chdir(data)
    rc = _predict(tiny, "quartz", out=".")
    cap = capsys.readouterr()
    assert rc == 2 and src.read_bytes() == before
    assert "left alone" in cap.err and "quartz" in cap.err
    # --no-resume replaces finished s2s outputs only, never the input folder
    rc = _predict(tiny, "quartz", out=".", extra=("--no-resume",))
    assert rc == 2 and src.read_bytes() == before


def test_finished_outputs_are_skipped_and_replaced_only_with_no_resume(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    src = _msa(tmp_path / "in" / "glass.msa")
    assert _predict(tiny, src, out=out) == 0
    summary = json.loads((out / "glass" / "summary.json").read_text())
    assert summary["written_by"] == "s2s predict"
    extra = out / "glass" / "mine.txt"  # a file the user put into a finished output
    extra.write_text("x")
    capsys.readouterr()
    assert _predict(tiny, src, out=out) == 0
    assert "1 already done" in capsys.readouterr().out and extra.exists()
    assert _predict(tiny, src, out=out, extra=("--no-resume",)) == 0
    assert "1 written" in capsys.readouterr().out and not extra.exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folder or lock left


def test_write_prediction_alone_refuses_a_foreign_folder(tmp_path):
    from s2s.predict.report import OutputConflict, output_state, write_prediction

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "summary.json").write_text('{"not": "ours"}')
    assert output_state(tmp_path, "x") == "foreign" and output_state(tmp_path, "y") == "absent"

    class P:  # write_prediction looks at the name before anything else
        name = "x"

    with pytest.raises(OutputConflict, match="not written by s2s predict"):
        write_prediction(tmp_path, P(), None)
    assert (tmp_path / "x" / "summary.json").read_text() == '{"not": "ours"}'


# ----------------------------------------------------------------------------- part 4: checks before work
def test_out_that_is_a_file_or_unwritable_is_one_line_before_any_work(tiny, tmp_path, capsys, monkeypatch):
    import s2s.model.sample

    def no_generation(*a, **k):
        raise AssertionError("generation started before the checks")

    monkeypatch.setattr(s2s.model.sample, "generate", no_generation)
    src = _msa(tmp_path / "in" / "a.msa")
    afile = tmp_path / "afile"
    afile.write_text("")
    assert _predict(tiny, src, out=afile) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a file" in err and str(afile) in err
    assert _predict(tiny, src, out=afile / "sub") == 2
    assert "cannot write" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            assert _predict(tiny, src, out=ro) == 2
            assert "cannot write" in capsys.readouterr().err
        finally:
            ro.chmod(0o755)


def test_unloadable_models_fail_before_any_work(tiny, tmp_path, capsys, monkeypatch):
    import s2s.model.sample

    monkeypatch.setattr(s2s.model.sample, "generate", lambda *a, **k: pytest.fail("generation started"))
    data, model = tiny
    src = _msa(tmp_path / "in" / "a.msa")
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(model.read_bytes()[:1000])
    argv = ["predict", str(src), "--data", str(data), "--out", str(tmp_path / "o"), "--quiet", "--no-png"]
    for extra, name in (
        (["--model", str(bad), "--no-rank"], bad),
        (["--model", str(model), "--forward-model", str(bad)], bad),
    ):
        assert main(argv + extra) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and str(name) in err and "expected" in err, err


def test_a_name_held_by_another_run_is_left_to_it(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    held = FileLock.acquire(out / ".a.s2s-lock")  # as another s2s predict writing OUT/a would
    try:
        rc = _predict(tiny, _msa(tmp_path / "in" / "a.msa"), _msa(tmp_path / "in" / "b.msa"), out=out)
    finally:
        held.release()
    cap = capsys.readouterr()
    assert rc == 0 and (out / "b" / "summary.json").exists() and not (out / "a").exists()
    assert "left to another s2s predict" in cap.err and "1 left to another run" in cap.out


def test_two_runs_on_one_out_share_the_work(tiny, tmp_path):
    """Two ``s2s predict`` processes on one --out: every output written once, none fails."""
    data, model = tiny
    inp = tmp_path / "in"
    for k in range(6):
        _msa(inp / f"s{k}.msa", k * 0.3)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "s2s.cli", "predict", str(inp), "--model", str(model), "--data", str(data)]
    argv += ["--no-rank", "--n-samples", "2", "--steps", "2", "--out", str(out), "--quiet", "--no-png"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    res = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], res
    assert all("Traceback" not in err and "0 failed" in o for o, err in res), res
    assert sorted(p.parent.name for p in out.glob("*/summary.json")) == [f"s{k}" for k in range(6)]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- part 5: litter, modes, summary
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_leftovers_of_dead_processes_are_cleaned_and_live_ones_kept(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    (tmp_path / f".quartz.partial-{dead}").mkdir()
    (tmp_path / f".quartz.partial-{dead}" / "candidates.xyz").write_text("half")
    (tmp_path / f".quartz.replaced-{dead}").mkdir()
    (tmp_path / f".checkpoint.pt.{dead}.0badc0de.tmp").write_bytes(b"x")
    (tmp_path / f".maps.npz.{dead}.0badc0de.tmp.npz").write_bytes(b"x")
    (tmp_path / ".glass.s2s-lock").write_text("")
    keep = [
        tmp_path / f".other.partial-{live}",
        tmp_path / f".checkpoint.pt.{live}.0badc0de.tmp",
        tmp_path / ".my.partial-notapid",
        tmp_path / ".hidden_user_file",
        tmp_path / ".checkpoint.pt.abcdefgh.tmp",  # an old mkstemp name: no PID, so not ours to judge
        tmp_path / "quartz.partial-1",
    ]
    keep[0].mkdir()
    for k in keep[1:]:
        k.write_text("keep")
    held = FileLock.acquire(tmp_path / ".busy.s2s-lock")
    # a dead PID whose name's lock is held: a run on another host sharing the folder (PIDs are per host)
    (tmp_path / f".busy.partial-{dead}").mkdir()
    removed = clean_stale(tmp_path)
    assert len(removed) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [k.name for k in keep] + [".busy.s2s-lock", f".busy.partial-{dead}"]
    )
    held.release()
    assert clean_stale(tmp_path) == [tmp_path / f".busy.partial-{dead}"]


def test_training_cleans_its_dead_temporaries(tmp_path, alpha_quartz):
    from s2s.config import get_preset
    from s2s.model.train import train

    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".checkpoint.pt.{_dead_pid()}.0badc0de.tmp"
    stale.write_bytes(b"half a checkpoint")
    envs = environments_from_structure(alpha_quartz).environments[:1]
    train(get_preset("tiny"), envs, np.stack([toy_spectrum(0)]), out, max_steps=1, progress=False)
    assert not stale.exists() and (out / "model.pt").exists()


def test_files_get_the_umask_modes(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.umask(0o027)
        q = atomic_write_text(tmp_path / "b.txt", "x")
        assert stat.S_IMODE(q.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_outputs_get_the_umask_modes(tiny, tmp_path):
    old = os.umask(0o022)
    try:
        assert _predict(tiny, _msa(tmp_path / "in" / "a.msa"), out=tmp_path / "out") == 0
    finally:
        os.umask(old)
    for f in (tmp_path / "out" / "a").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_a_summary_line_even_when_every_input_fails(tiny, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    assert _predict(tiny, tmp_path / "empty.txt", out=tmp_path / "out") == 2
    cap = capsys.readouterr()
    assert "0 written" in cap.out and "1 failed" in cap.out and "empty" in cap.err


# ----------------------------------------------------------------------------- part 3: ambiguous numbers
def _edge(e: np.ndarray) -> np.ndarray:
    """An O K-edge-like intensity at absolute energies e (eV): a rise at 532 eV and two peaks."""
    return 1 / (1 + np.exp(-(e - 532.0) / 0.3)) * (1 + np.exp(-0.5 * ((e - 537) / 1.5) ** 2)) + 0.05


def test_decimal_commas_in_a_comma_separated_file_are_refused_naming_the_line(tmp_path):
    from s2s.io.raw import SpectrumFileError
    from s2s.io.readers import read_spectrum

    e = np.arange(525.0, 560.0, 0.2)
    y = 100 * _edge(e)
    rows = [f"{a:.1f},{b:.3f}".replace(".", ",") for a, b in zip(e, y)]  # 532,2,283,123
    with_header = tmp_path / "with_header.csv"
    with_header.write_text("energy,intensity\n" + "\n".join(rows) + "\n")
    with pytest.raises(SpectrumFileError, match=r"line 2: 4 comma-separated fields.*header \(line 1\) names 2"):
        read_spectrum(with_header)
    no_header = tmp_path / "no_header.csv"
    no_header.write_text("\n".join(f"{a:.1f},{int(b)}".replace(".", ",") for a, b in zip(e, y)) + "\n")
    with pytest.raises(SpectrumFileError, match="line 1: 3 comma-separated whole numbers"):
        read_spectrum(no_header)
    # the same numbers are fine where the delimiter is not a comma, or the header names every column
    semi = tmp_path / "semi.csv"
    semi.write_text("energy;intensity\n" + "\n".join(f"{a:.1f};{b:.3f}".replace(".", ",") for a, b in zip(e, y)))
    raw = read_spectrum(semi)
    assert np.allclose(raw.energy, e) and np.allclose(raw.intensity, y, atol=1e-3)
    three = tmp_path / "three.csv"
    three.write_text("energy,counts,error\n" + "\n".join(f"{int(a)},{int(b)},3" for a, b in zip(e[::5], y[::5])))
    assert np.allclose(read_spectrum(three).energy, np.unique(e[::5].astype(int)))


def test_absurd_energies_are_refused_before_any_large_allocation(tmp_path):
    import time
    import tracemalloc

    from s2s.io.raw import ENERGY_RANGE_EV
    from s2s.predict import InputSpectrum, PredictInputError, collect_inputs, prepare

    folder = tmp_path / "folder"
    folder.mkdir()
    e = np.arange(525.0, 560.0, 0.1)
    huge = np.r_[e, 1e8]
    np.savetxt(folder / "a_huge.txt", np.c_[huge, _edge(huge)])
    np.savetxt(folder / "b_good.txt", np.c_[e, _edge(e)])
    np.savez(folder / "c_huge.npz", energy=huge, spectra=_edge(huge)[None])
    np.savetxt(folder / "d_mev.txt", np.c_[e * 1000, _edge(e)])
    tracemalloc.start()
    t0 = time.perf_counter()
    items, errors = collect_inputs([folder])
    for it in items:
        prepare(it, -0.5)
    elapsed, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [it.name for it in items] == ["b_good"]  # one bad file never stops the folder
    msgs = {Path(er.source).name: er.message for er in errors}
    lo, hi = ENERGY_RANGE_EV
    assert f"outside {lo:g}..{hi:g} eV" in msgs["a_huge.txt"] and "1e+08" in msgs["a_huge.txt"]
    assert "outside" in msgs["c_huge.npz"] and "meV" in msgs["d_mev.txt"]
    assert elapsed < 10 and peak < 50e6, (elapsed, peak)
    # the same energies handed to prepare directly
    with pytest.raises(PredictInputError, match="outside"):
        prepare(InputSpectrum("x", "direct", huge, _edge(huge)), -0.5)


def test_energy_unit_kev_reads_kev_files(tiny, tmp_path, capsys):
    from s2s.predict import collect_inputs

    e = np.arange(0.525, 0.560, 0.0001)
    np.savetxt(tmp_path / "kev.csv", np.c_[e, _edge(e * 1000)], delimiter=",", header="energy_keV,counts")
    items, errors = collect_inputs([tmp_path / "kev.csv"])
    assert not items and "--energy-unit keV" in errors[0].message
    items, errors = collect_inputs([tmp_path / "kev.csv"], energy_unit="keV")
    assert not errors and np.allclose(items[0].energy, e * 1000)
    rc = _predict(tiny, tmp_path / "kev.csv", out=tmp_path / "out", extra=("--energy-unit", "keV"))
    assert rc == 0 and (tmp_path / "out" / "kev" / "summary.json").exists(), capsys.readouterr().err


def test_a_summary_line_when_a_folder_has_no_spectra(tiny, tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    rc = _predict(tiny, tmp_path / "nothing", _msa(tmp_path / "in" / "a.msa"), out=tmp_path / "out")
    cap = capsys.readouterr()
    assert rc == 2 and "no spectrum files" in cap.err and "1 written" in cap.out and "1 failed" in cap.out


def test_failed_array_inputs_leave_no_empty_folder(tiny, tmp_path, capsys):
    np.save(tmp_path / "flat.npy", np.ones((2, 200)))  # two flat spectra: both refused
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "image").write_text("a user's file where an array's folder would go")
    np.save(tmp_path / "image.npy", np.stack([toy_spectrum(0.5), toy_spectrum(2.5)]))
    assert _predict(tiny, tmp_path / "flat.npy", tmp_path / "image.npy", out=tmp_path / "out") == 2
    cap = capsys.readouterr()
    assert sorted(os.listdir(tmp_path / "out")) == ["image"] and "4 failed" in cap.out
    assert (tmp_path / "out" / "image").read_text().startswith("a user's file")
    assert cap.err.count("cannot write") == 2 and cap.err.count("flat.npy[") == 2


def test_sample_and_evaluate_check_out_before_generating(tiny, tmp_path, capsys, monkeypatch):
    import s2s.model.sample

    monkeypatch.setattr(s2s.model.sample, "generate", lambda *a, **k: pytest.fail("generation started"))
    data, model = tiny
    afile = tmp_path / "afile"
    afile.write_text("")
    spec = _msa(tmp_path / "in" / "a.msa")
    for argv in (
        ["sample", "--model", str(model), "--spectrum", str(spec), "--n-atoms", "5", "--out", str(afile)],
        ["evaluate", "--model", str(model), "--data", str(data), "--out", str(afile)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "is a file" in err and str(afile) in err
