"""Model files from users (issue 30, part 1): one loader, ``weights_only``, checksums for the shipped models.

A checkpoint whose pickle would create a file is refused by every entry point (the file stays absent and
the message names the checkpoint); empty, text, truncated and bit-flipped files are one clear error; the
shipped model folders carry ``SHA256SUMS`` and a changed shipped model is refused.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from s2s.checkpoint_io import SUMS_FILE, CheckpointError, load_checkpoint, read_sums, verify_sha256
from s2s.cli import main
from s2s.resources import home, resolve

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {
    "model": ROOT / "models" / "s2s_open_v9",
    "model_xtb": ROOT / "models" / "s2s_open_v6",
    "forward": ROOT / "models" / "forward_v1",
}


class _Payload:
    """Pickles as a call that creates ``marker``: what a hostile checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture
def evil(tmp_path):
    """(checkpoint path, marker path): a torch.save zip with valid CRCs whose pickle creates the marker."""
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    state = {"config": {}, "n_max": 8, "step": 3, "weights": {}, "ema": {}, "optimizer": {}, "x": _Payload(marker)}
    torch.save(state, path)
    # the payload is real: an unrestricted load runs it
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path, marker


def _flip(src: Path, dst: Path, n: int = 4096) -> Path:
    b = bytearray(src.read_bytes())
    mid = len(b) // 2
    for i in range(mid, mid + n):
        b[i] ^= 0xFF
    dst.write_bytes(bytes(b))
    return dst


def test_the_loader_refuses_a_payload_and_names_the_file(evil):
    path, marker = evil
    with pytest.raises(CheckpointError, match="refused") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_every_entry_point_goes_through_the_loader(evil, tmp_path, alpha_quartz):
    from s2s.config import get_preset
    from s2s.environment import environments_from_structure
    from s2s.forward.model import ForwardModel
    from s2s.model.train import CHECKPOINT, load_model, train
    from s2s.predict import PredictContext
    from s2s.studies.ablation import load_snapshot, pick_snapshot

    path, marker = evil
    envs = environments_from_structure(alpha_quartz).environments[:2]
    spectra = np.ones((len(envs), 200)) / 19.9
    cfg = get_preset("tiny")
    snaps = tmp_path / "run" / "snapshots"
    snaps.mkdir(parents=True)
    shutil.copy(path, snaps / "step_0000010.pt")
    resume_dir = tmp_path / "resume"
    resume_dir.mkdir()
    shutil.copy(path, resume_dir / CHECKPOINT)
    calls = {
        "load_model": lambda: load_model(path),
        "PredictContext.load": lambda: PredictContext.load(path, tmp_path / "none.h5", None),
        "ForwardModel.load": lambda: ForwardModel.load(path),
        "train(init_from=)": lambda: train(cfg, envs, spectra, tmp_path / "t", init_from=path, progress=False),
        "train(resume)": lambda: train(cfg, envs, spectra, resume_dir, resume=True, progress=False),
        "ablation.load_snapshot": lambda: load_snapshot(path, "ema"),
        "ablation.pick_snapshot": lambda: pick_snapshot(tmp_path / "run", 10.0),
    }
    loaded = {"train(resume)": resume_dir / CHECKPOINT, "ablation.pick_snapshot": snaps / "step_0000010.pt"}
    for name, call in calls.items():
        with pytest.raises(CheckpointError) as err:
            call()
        assert "refused" in str(err.value) and str(loaded.get(name, path)) in str(err.value), name
        assert "'exec'" in str(err.value), name
        assert not marker.exists(), name


def test_the_cli_refuses_a_payload_in_one_line(evil, tmp_path, capsys):
    path, marker = evil
    spec = tmp_path / "s.npy"
    np.save(spec, np.ones(200))
    runs = {
        "sample": ["sample", "--model", str(path), "--spectrum", str(spec), "--n-atoms", "5", "--out", str(tmp_path)],
        "evaluate": ["evaluate", "--model", str(path), "--data", str(tmp_path / "x.h5"), "--out", str(tmp_path)],
        "predict": ["predict", str(spec), "--model", str(path), "--out", str(tmp_path / "o"), "--quiet"],
        "train --init-from": [
            "train",
            "--data",
            str(tmp_path / "x.h5"),
            "--out",
            str(tmp_path / "t"),
            "--init-from",
            str(path),
            "--lr-decay-steps",
            "10",
        ],
    }
    for name, argv in runs.items():
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2, name
        assert len(err.splitlines()) == 1 and str(path) in err and "refused" in err and "Traceback" not in err, name
        assert not marker.exists(), name


def test_s2s_model_variable_goes_through_the_loader(evil, tmp_path):
    """``S2S_MODEL=evil.pt s2s predict``: the default model path (resources.py) is loaded safely too."""
    path, marker = evil
    spec = tmp_path / "s.npy"
    np.save(spec, np.ones(200))
    env = {**os.environ, "S2S_MODEL": str(path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "s2s.cli", "predict", str(spec), "--out", str(tmp_path / "o"), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and str(path) in proc.stderr and "refused" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("which", ["model", "forward"])
def test_damaged_files_fail_loudly(which, tmp_path):
    """Empty, text, truncated and 4 KB bit-flipped copies (no checksum beside them): one line naming the file."""
    from s2s.forward.model import ForwardModel
    from s2s.model.train import load_model

    load = load_model if which == "model" else ForwardModel.load
    src = SHIPPED[which] / "model.pt"
    cases = {
        "empty.pt": (b"", "empty"),
        "text.pt": (b"this is not a model\n", "text file"),
        "truncated.pt": (src.read_bytes()[: src.stat().st_size // 2], "torch.save"),
    }
    for name, (data, problem) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(CheckpointError, match=problem) as err:
            load(p)
        assert str(p) in str(err.value) and "expected" in str(err.value) and "\n" not in str(err.value)
    flipped = _flip(src, tmp_path / "flipped.pt")
    with pytest.raises(CheckpointError, match="CRC-32") as err:
        load(flipped)
    assert str(flipped) in str(err.value)
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path)


def test_shipped_models_carry_and_pass_their_checksums():
    from s2s.forward.model import ForwardModel
    from s2s.model.train import load_model

    for folder in SHIPPED.values():
        sums = read_sums(folder)
        assert {"model.pt", "checkpoint.pt"} <= set(sums), folder
        for name in sums:
            assert verify_sha256(folder / name) == sums[name]
            assert isinstance(load_checkpoint(folder / name), dict)
    assert load_model(resolve("model")) is not None and load_model(resolve("model_xtb")) is not None
    assert ForwardModel.load(resolve("forward")) is not None
    # the defaults resolve into the checked folders
    for name, var in (("model", "S2S_MODEL"), ("model_xtb", "S2S_MODEL_XTB")):
        if home() is not None and not os.environ.get(var):
            assert resolve(name).parent == SHIPPED[name]


@pytest.mark.parametrize("which", ["model", "forward"])
def test_a_flipped_shipped_model_is_refused_as_the_shipped_one(which, tmp_path, monkeypatch):
    """A copy of the project home whose shipped model has 4 KB flipped: the default resolved through
    resources.py is refused by its SHA-256 (before any unpickling)."""
    from s2s.forward.model import ForwardModel
    from s2s.model.train import load_model

    folder = SHIPPED[which]
    dst = tmp_path / "home" / "models" / folder.name
    dst.mkdir(parents=True)
    shutil.copy(folder / SUMS_FILE, dst / SUMS_FILE)
    _flip(folder / "model.pt", dst / "model.pt")
    monkeypatch.setenv("S2S_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("S2S_MODEL", raising=False)
    monkeypatch.delenv("S2S_FORWARD", raising=False)
    path = resolve(which)
    assert path == dst / "model.pt"
    with pytest.raises(CheckpointError, match="SHA-256") as err:
        (load_model if which == "model" else ForwardModel.load)(path)
    assert str(path) in str(err.value) and SUMS_FILE in str(err.value)


def test_a_malformed_sums_file_is_an_error(tmp_path):
    (tmp_path / SUMS_FILE).write_text("not a checksum line\n")
    torch.save({"a": 1}, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="line 1"):
        load_checkpoint(tmp_path / "m.pt")


def test_plain_data_and_tensors_load(tmp_path):
    state = {"config": {"a": [1, 2.5, "x", None]}, "t": torch.arange(3), "nested": {"b": (1, 2)}}
    torch.save(state, tmp_path / "ok.pt")
    got = load_checkpoint(tmp_path / "ok.pt")
    assert got["config"] == state["config"] and torch.equal(got["t"], state["t"])
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_s2s_train_init_from_and_resume_refuse_a_payload(evil, tmp_path, alpha_quartz):
    """The CLI train paths on a real dataset: ``--init-from evil.pt`` and a resumed run whose
    ``checkpoint.pt`` is hostile stop with one line naming the file; the payload never runs."""
    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import environments_from_structure
    from s2s.splits import make_split

    path, marker = evil
    recs, structs = [], {}
    for k, scale in enumerate([1.0, 1.03, 0.97]):
        s = alpha_quartz.copy()
        s.scale_lattice(s.volume * scale**3)
        env = environments_from_structure(s, structure_id=f"q{k}").environments[0]
        spec = np.exp(-0.5 * ((np.linspace(-1, 18.9, 200) - 3 - k) / 1.5) ** 2)
        recs.append(SiteRecord(spec / spec.sum() / 0.1, env, f"q{k}", env.meta["site_index"], formula="SiO2"))
        structs[f"q{k}"] = s
    data = tmp_path / "toy.h5"
    make_split(Dataset.from_records(recs, structs), test_fraction=0.34, seed=0).save(data)
    base = ["train", "--data", str(data), "--preset", "tiny", "--max-steps", "1", "--quiet"]
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(path, resumed / "checkpoint.pt")
    for argv, named in (
        (base + ["--out", str(tmp_path / "a"), "--init-from", str(path)], path),
        (base + ["--out", str(resumed)], resumed / "checkpoint.pt"),
    ):
        with pytest.raises(SystemExit) as stop:  # cmd_train stops with its message (exit status 1)
            main(argv)
        err = str(stop.value.code)
        assert err.count("\n") == 0 and str(named) in err and "refused" in err, err
        assert not marker.exists()
