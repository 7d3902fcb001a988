"""The s2s command line end to end on a small dataset file the test writes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from s2s.cli import build_parser, main
from s2s.dataset import Dataset, SiteRecord
from s2s.environment import environments_from_structure
from s2s.io import read_extxyz
from s2s.splits import make_split

torch.set_num_threads(1)
GRID = -1.0 + 0.1 * np.arange(200)


@pytest.fixture
def dataset_file(tmp_path, alpha_quartz):
    """Quartz and two strained copies, one site each, with made-up Gaussian spectra."""
    recs, structs = [], {}
    for k, scale in enumerate([1.0, 1.03, 0.97]):
        s = alpha_quartz.copy()
        s.scale_lattice(s.volume * scale**3)
        sid = f"quartz-{k}"
        env = environments_from_structure(s, structure_id=sid).environments[0]
        spec = np.exp(-0.5 * ((GRID - 3 - 2 * k) / 1.5) ** 2)
        spec /= np.trapezoid(spec, GRID)
        recs.append(SiteRecord(spec, env, sid, env.meta["site_index"], formula="SiO2", source="test", simulator="toy"))
        structs[sid] = s
    ds = make_split(Dataset.from_records(recs, structs), test_fraction=0.34, seed=0)
    path = tmp_path / "toy.h5"
    ds.save(path)
    return path


def test_help_explains_every_option(capsys):
    for cmd in ("train", "sample", "evaluate"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        sub = build_parser()._subparsers._group_actions[0].choices[cmd]
        for action in sub._actions:
            if action.help and action.option_strings:
                assert action.help in " ".join(text.split()) or action.option_strings[0] in text


def test_train_sample_evaluate(tmp_path, dataset_file, capsys):
    run = tmp_path / "run"
    assert (
        main(
            ["train", "--data", str(dataset_file), "--out", str(run), "--preset", "tiny", "--max-steps", "5", "--quiet"]
        )
        == 0
    )
    assert (run / "model.pt").exists() and (run / "checkpoint.pt").exists()
    import hashlib

    info = json.loads((run / "run.json").read_text())
    assert info["steps"] == 5 and info["n_train"] >= 1 and info["preset"] == "tiny"
    assert info["dataset_sha256"] == hashlib.sha256(Path(dataset_file).read_bytes()).hexdigest()
    more = tmp_path / "more"  # continue that run (e.g. on a grown dataset or one's own spectra)
    assert (
        main(
            [
                "train",
                "--data",
                str(dataset_file),
                "--out",
                str(more),
                "--preset",
                "tiny",
                "--max-steps",
                "7",
                "--quiet",
                "--init-from",
                str(run / "checkpoint.pt"),
            ]
        )
        == 0
    )
    cont = json.loads((more / "run.json").read_text())
    assert cont["steps"] == 7 and cont["continued_from"]["step"] == 5
    assert cont["continued_from"]["dataset_sha256"] == info["dataset_sha256"]
    with pytest.raises(SystemExit, match="not a training checkpoint"):
        main(
            [
                "train",
                "--data",
                str(dataset_file),
                "--out",
                str(tmp_path / "x"),
                "--preset",
                "tiny",
                "--quiet",
                "--init-from",
                str(run / "model.pt"),
            ]
        )
    out = tmp_path / "samples"
    assert (
        main(
            [
                "sample",
                "--model",
                str(run / "model.pt"),
                "--data",
                str(dataset_file),
                "--split",
                "all",
                "--n-samples",
                "2",
                "--steps",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    files = sorted(out.glob("*.xyz"))
    assert len(files) == 3
    envs = read_extxyz(files[0])
    assert len(envs) == 2 and envs[0].n_atoms == 15 and np.allclose(envs[0].coords[0], 0)
    ev = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(run / "model.pt"),
                "--data",
                str(dataset_file),
                "--split",
                "all",
                "--steps",
                "5",
                "--out",
                str(ev),
            ]
        )
        == 0
    )
    summary = json.loads((ev / "metrics.json").read_text())["summary"]
    assert set(summary) == {"paper", "best"}
    assert summary["best"]["rmsd_all"] <= summary["paper"]["rmsd_all"] + 1e-9
    assert summary["paper"]["n"] == 3
    assert (ev / "per_site.csv").read_text().count("\n") == 7  # header + 3 sites x 2 methods
    assert "species accuracy" in capsys.readouterr().out


def test_sample_from_spectrum_file(tmp_path, dataset_file):
    run = tmp_path / "run"
    main(["train", "--data", str(dataset_file), "--out", str(run), "--preset", "tiny", "--max-steps", "3", "--quiet"])
    spec = tmp_path / "measured.txt"
    e = np.linspace(525, 560, 300)
    i = 1 / (1 + np.exp(-(e - 532) / 0.8)) + np.exp(-0.5 * ((e - 538) / 2) ** 2)
    np.savetxt(spec, np.c_[e, i], header="energy_eV intensity")
    out = tmp_path / "s"
    assert (
        main(
            [
                "sample",
                "--model",
                str(run / "model.pt"),
                "--spectrum",
                str(spec),
                "--shift",
                "onset",
                "--n-samples",
                "3",
                "--n-atoms",
                "mode",
                "--steps",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert len(read_extxyz(out / "measured.xyz")) == 3
    # absolute energies without a shift: a clear error naming the file, non-zero exit
    assert (
        main(["sample", "--model", str(run / "model.pt"), "--spectrum", str(spec), "--steps", "2", "--out", str(out)])
        == 2
    )
    # the checks of s2s predict apply (one road, s2s.predict.prepare): noise is refused, naming the file
    noise = tmp_path / "noise.txt"
    np.savetxt(noise, np.c_[e, np.random.default_rng(0).random(e.size)])
    assert (
        main(
            [
                "sample",
                "--model",
                str(run / "model.pt"),
                "--spectrum",
                str(noise),
                "--shift",
                "onset",
                "--steps",
                "2",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert not (out / "noise.xyz").exists()


def test_clear_errors(tmp_path, capsys):
    assert main(["sample", "--model", str(tmp_path / "missing.pt"), "--spectrum", "x.txt", "--out", str(tmp_path)]) == 2
    assert "missing.pt" in capsys.readouterr().err
