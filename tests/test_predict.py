"""s2s predict: inputs, preparation (onset alignment, background), ensemble summary, atomic
resumable batch output, bad-input messages.  A tiny model is trained in tmp_path."""

import json
import os

import numpy as np
import pytest
import torch
from helpers import random_orthogonal, rotate_permute, toy_dataset_and_model, toy_spectrum

from s2s.cli import main
from s2s.ensembles.describe import cluster, geometry, signature, summarize_ensemble
from s2s.environment import Environment, environments_from_structure
from s2s.io import read_extxyz
from s2s.predict import DEFAULT_SAMPLER, InputSpectrum, PredictInputError, collect_inputs, prepare, training_onset
from s2s.spectrum import GRID, normalize, onset_shift

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A toy dataset (7 strained quartz copies, 1 site each) and a tiny model trained 3 steps."""
    return toy_dataset_and_model(tmp_path_factory.mktemp("predict"), source="test", simulator="toy")


def _write_inputs(d):
    d.mkdir()
    s = toy_spectrum(1.5)
    e_abs = np.arange(505.0, 560.0, 0.05)
    # measured-like: the grid spectrum placed at a 532 eV onset, a power-law background, noise
    y = np.interp(e_abs - 532.0, GRID, s, left=0.0, right=s[-1]) * 100 + 4e7 * e_abs**-3.0
    y += np.random.default_rng(0).normal(0, 0.05, e_abs.size)
    np.savetxt(d / "measured.txt", np.c_[e_abs, y], header="energy_eV counts")
    e_rel = np.linspace(-2, 25, 300)
    msa = [
        "#FORMAT : EMSA/MAS Spectral Data File",
        "#VERSION : 1.0",
        "#XUNITS : eV",
        "#DATATYPE : XY",
        "#SPECTRUM : start",
    ]
    msa += [f"{a:.4f}, {b:.6f}" for a, b in zip(e_rel, np.interp(e_rel, GRID, s, left=0.0, right=s[-1]))]
    (d / "sim.msa").write_text("\n".join(msa + ["#ENDOFDATA : end"]) + "\n")
    np.save(d / "image.npy", np.stack([[toy_spectrum(0.5), toy_spectrum(2.5)]]))  # (1, 2, 200)
    # bad inputs
    (d / "empty.txt").write_text("")
    np.savetxt(d / "kev.csv", np.c_[e_abs / 1000, y], delimiter=",")
    np.savetxt(d / "one_column.txt", y[:50])
    np.savetxt(d / "carbon.txt", np.c_[e_abs - 248.0, y])
    bad = np.c_[e_abs, y]
    bad[100, 1] = np.nan
    np.savetxt(d / "nan.txt", bad)
    np.save(d / "flat.npy", np.ones(200))


def test_predict_batch_end_to_end_and_resume(setup, tmp_path, capsys):
    data, model = setup
    inp = tmp_path / "in"
    _write_inputs(inp)
    out = tmp_path / "out"
    args = [
        "predict",
        str(inp),
        "--model",
        str(model),
        "--data",
        str(data),
        "--n-samples",
        "3",
        "--steps",
        "4",
        "--out",
        str(out),
        "--quiet",
        "--background",
    ]
    rc = main(args + ["--no-png"])
    cap = capsys.readouterr()
    assert rc == 2  # some inputs were bad
    err = cap.err
    for name, problem in [
        ("empty.txt", "empty"),
        ("kev.csv", "keV"),
        ("one_column.txt", "1 column"),
        ("carbon.txt", "not an O K-edge"),
        ("nan.txt", "NaN"),
        ("flat.npy", "flat"),
    ]:
        line = next((ln for ln in err.splitlines() if name in ln), "")
        assert problem in line, (name, err)
    done = sorted(p.relative_to(out).as_posix() for p in out.rglob("summary.json"))
    assert done == [
        "image/y000_x000/summary.json",
        "image/y000_x001/summary.json",
        "measured/summary.json",
        "sim/summary.json",
    ]
    # nothing half-written: no temporary folders, no output for the bad inputs
    assert not [p for p in out.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
    assert not any((out / n).exists() for n in ("empty", "kev", "one_column", "carbon", "nan", "flat"))
    # the XYZ: K frames, excited O first at the origin, shell property
    envs = read_extxyz(out / "measured" / "candidates.xyz")
    assert len(envs) == 3 and all(np.allclose(e.coords[0], 0) and e.symbols()[0] == "O" for e in envs)
    assert "shell:I:1" in (out / "measured" / "candidates.xyz").read_text().splitlines()[1]
    s = json.loads((out / "measured" / "summary.json").read_text())
    assert s["preprocessing"]["shift_mode"] == "onset" and s["preprocessing"]["background"] is True
    assert abs(s["preprocessing"]["onset_eV"] - 532.0) < 1.5
    assert (
        s["sampling"]["sampler"] == DEFAULT_SAMPLER and s["sampling"]["steps"] == 4 and s["sampling"]["n_samples"] == 3
    )
    assert set(s["candidates"]["cn"]) == {"shell1", "shell2", "shell3"}
    assert sum(c["count"] for c in s["candidates"]["clusters"]) == 3
    assert {"d_sio", "d_sio_first", "a_osio", "a_siosi"} <= set(s["candidates"]["geometry"])
    assert len(s["nearest_training"]) >= 1 and "structure_id" in s["nearest_training"][0]
    assert {"percentile", "flag", "warning"} <= set(s["ood"])
    hand = s["handedness"]
    assert "mirror image" in hand["note"] and hand["margin_A"] > 0
    assert all(1 <= i < 3 for i in hand["mirror_of_consensus"])  # candidate numbers, never the consensus (0)
    sim = json.loads((out / "sim" / "summary.json").read_text())
    assert sim["preprocessing"]["shift_mode"].startswith("none") and "skipped" in sim["preprocessing"]["background"]
    maps = np.load(out / "image" / "maps.npz")
    assert maps["cn1_mean"].shape == (1, 2) and np.all(np.isfinite(maps["ood_percentile"]))
    # resume: finished outputs are skipped and left untouched
    stamp = os.stat(out / "measured" / "summary.json").st_mtime_ns
    rc = main(args + ["--no-png"])
    assert "4 already done" in capsys.readouterr().out
    assert os.stat(out / "measured" / "summary.json").st_mtime_ns == stamp


def test_predict_png_and_fixed_atom_count(setup, tmp_path):
    data, model = setup
    f = tmp_path / "one.npy"
    np.save(f, toy_spectrum(1.0))
    out = tmp_path / "o"
    assert (
        main(
            [
                "predict",
                str(f),
                "--model",
                str(model),
                "--data",
                str(data),
                "--n-samples",
                "2",
                "--steps",
                "3",
                "--n-atoms",
                "9",
                "--sampler",
                "ancestral",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    png = (out / "one" / "overview.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    envs = read_extxyz(out / "one" / "candidates.xyz")
    assert [e.n_atoms for e in envs] == [9, 9]


def test_generate_in_size_buckets_keeps_order_and_counts(setup):
    from s2s.model.sample import generate
    from s2s.model.train import load_model

    data, model_path = setup
    model = load_model(model_path)
    spectra = np.stack([toy_spectrum(0), toy_spectrum(2), toy_spectrum(4)])
    out = generate(model, spectra, [5, 9, 5], n_samples=2, seed=1, n_steps=2, buckets=True)
    assert [[e.n_atoms for e in row] for row in out] == [[5, 5], [9, 9], [5, 5]]
    again = generate(model, spectra, [5, 9, 5], n_samples=2, seed=1, n_steps=2, buckets=True)
    assert np.array_equal(out[1][1].coords, again[1][1].coords)
    drawn = generate(model, spectra, None, n_samples=3, seed=0, n_steps=2, sampler="ddim", buckets=True)
    assert [len(r) for r in drawn] == [3, 3, 3] and all(isinstance(e, Environment) for r in drawn for e in r)


def test_failed_write_leaves_nothing(setup, tmp_path, monkeypatch, capsys):
    import s2s.files

    data, model = setup
    f = tmp_path / "one.npy"
    np.save(f, toy_spectrum(1.0))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(s2s.files, "write_json", boom)
    out = tmp_path / "o"
    assert (
        main(
            [
                "predict",
                str(f),
                "--model",
                str(model),
                "--data",
                str(data),
                "--n-samples",
                "2",
                "--steps",
                "2",
                "--out",
                str(out),
                "--quiet",
                "--no-png",
            ]
        )
        == 2
    )
    assert "disk full" in capsys.readouterr().err  # one line for that input, no traceback
    assert not out.exists() or not any(out.iterdir())


def test_onset_alignment_recovers_the_grid_spectrum():
    s = toy_spectrum(2.0)
    o = onset_shift(GRID, s)
    item = InputSpectrum("x", "x.txt", GRID + 531.7, s * 1000.0)
    p = prepare(item, train_onset=o)
    assert abs(p.info["shift_eV"] - 531.7) < 1e-6
    assert np.allclose(
        p.spectrum[:-1], s[:-1], rtol=1e-3, atol=1e-6
    )  # the last point may fall 1e-13 eV outside the data
    # a manual shift and the relative-energy default
    assert prepare(item, o, shift=531.0).info["shift_mode"] == "manual"
    rel = prepare(InputSpectrum("r", "r.txt", GRID.copy(), s), o)
    assert rel.info["shift_eV"] == 0.0 and np.allclose(rel.spectrum, s, atol=1e-9)
    # power-law background removed: close to the clean spectrum
    e = np.arange(500.0, 560.0, 0.1)
    clean = np.interp(e - 531.7, GRID, s, left=0.0, right=s[-1]) * 1000
    noisy = clean + 5e8 * e**-3.0
    q = prepare(InputSpectrum("b", "b.txt", e, noisy), o, background=True)
    assert np.corrcoef(q.spectrum, s)[0, 1] > 0.98
    assert training_onset(np.stack([s, s])) == pytest.approx(o)


def test_prepare_renormalize_false_keeps_a_recorded_grid_spectrum(tmp_path):
    from s2s.predict.foreign import load_input_spectrum

    s = np.round(toy_spectrum(1.0), 6)  # recorded with 6 digits: unit area only to ~1e-6
    item = InputSpectrum("g", "g.npy", None, s)
    assert np.array_equal(prepare(item, -0.5, renormalize=False).spectrum, s)
    assert np.array_equal(prepare(item, -0.5).spectrum, normalize(s))  # the default: scaled to unit area
    assert not np.array_equal(prepare(item, -0.5).spectrum, s)
    # shifted or far from unit area: normalised all the same
    assert np.array_equal(
        prepare(InputSpectrum("h", "h.npy", None, 3 * s), -0.5, renormalize=False).spectrum, normalize(3 * s)
    )
    # one spectrum per file for load_input_spectrum (notebook 07), a clear error otherwise
    np.save(tmp_path / "two.npy", np.stack([s, s]))
    with pytest.raises(PredictInputError, match="two.npy: holds 2 spectra, expected one"):
        load_input_spectrum(tmp_path / "two.npy")


@pytest.mark.parametrize(
    "energy,intensity,match",
    [
        (GRID + 531.0, np.where(GRID > 0, 1.0, 0.0) * np.nan, "NaN"),
        (GRID / 1000 + 0.53, toy_spectrum(1), "keV"),
        (GRID + 282.0, toy_spectrum(1), "not an O K-edge"),
        (
            np.linspace(520, 535, 100),
            1 / (1 + np.exp(-(np.linspace(520, 535, 100) - 531) / 0.3)),
            "above the edge onset",
        ),
        (GRID.copy(), np.random.default_rng(0).random(200), "noise-like"),
    ],
)
def test_prepare_refuses_bad_spectra(energy, intensity, match):
    with pytest.raises(PredictInputError, match=match) as exc:
        prepare(InputSpectrum("bad", "bad.txt", energy, intensity), train_onset=-0.5)
    assert "bad.txt" in str(exc.value)


def test_collect_inputs_names_and_errors(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    np.save(a / "s.npy", toy_spectrum(0))
    np.save(b / "s.npy", toy_spectrum(1))
    np.save(b / "wrong.npy", np.ones((3, 150)))
    items, errors = collect_inputs([a, b])
    assert sorted(i.name for i in items) == ["b__s", "s"]
    assert len(errors) == 1 and "wrong.npy" in errors[0].message and "energy axis" in errors[0].message
    np.savez(tmp_path / "img.npz", energy=np.linspace(-1, 25, 150), spectra=np.ones((2, 2, 150)))
    items, errors = collect_inputs([tmp_path / "img.npz"])
    assert [i.name for i in items] == [
        "img/y000_x000",
        "img/y000_x001",
        "img/y001_x000",
        "img/y001_x001",
    ] and not errors


def test_ensemble_summary_on_quartz(alpha_quartz):
    env = environments_from_structure(alpha_quartz).environments[0]
    g = geometry(env)
    assert np.allclose(g["d_sio_first"], [1.604, 1.613], atol=0.01)
    assert 105 < g["a_osio"].mean() < 114 and 140 < g["a_siosi_excited"][0] < 150
    copies = [env, rotate_permute(env, random_orthogonal(0))]
    first = Environment(env.species[env.shell <= 1], env.coords[env.shell <= 1], env.shell[env.shell <= 1])
    s = summarize_ensemble(copies + [first])
    assert s["clusters"][0]["count"] == 2 and s["clusters"][0]["signature"] == signature(env)
    assert s["clusters"][1]["signature"] == "Si2|-|-"
    assert s["pairwise_rmsd"][0, 1] < 1e-6  # radial distance: rotation-free
    assert s["cn"]["shell1"]["mean"] == 2.0 and s["cn"]["shell1"]["std"] == 0.0
    assert len(cluster(copies)) == 1
    # equal composition, different geometry: split by the distance cut
    from s2s.ensembles.describe import pairwise_radial

    stretched = Environment(env.species, env.coords * 1.1, env.shell)
    assert signature(stretched) == signature(env)
    group = [env, copies[1], stretched]
    cl = cluster(group, pairwise_radial(group))
    assert [c["count"] for c in cl] == [2, 1] and cl[1]["label"].endswith("#2")
    assert len(cluster(group, pairwise_radial(group), split_distance=None)) == 1


def test_predict_help_lists_every_option(capsys):
    from s2s.cli import build_parser

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    sub = build_parser()._subparsers._group_actions[0].choices["predict"]
    for action in sub._actions:
        if action.option_strings:
            assert action.option_strings[0] in text
    assert "--sampler" in text and "ddim" in text and "onset" in text


def test_predict_refuses_guidance_with_a_model_without_spectrum_dropout(setup, tmp_path, capsys):
    data, model = setup
    spec = tmp_path / "s.npy"
    np.save(spec, toy_spectrum(1.0))
    args = ["predict", str(spec), "--model", str(model), "--data", str(data), "--guidance", "1", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--guidance 1: " in err and "cond_drop = 0" in err


def test_the_other_hand_of_a_chiral_environment_is_recognised():
    """A chiral bridge, a rotated copy and a rotated mirror image: only the mirror image is listed."""
    from s2s.ensembles.describe import closer_as_mirror_images
    from s2s.environment import SI, Environment, O

    c = np.array([[0, 0, 0], [1.52, 0.49, 0], [-1.52, 0.49, 0], [2.5, 2.6, 1.0], [-2.3, 2.2, -1.4], [0.3, 3.2, 2.2]])
    ref = Environment(species=[O, SI, SI, O, O, O], coords=c, shell=[0, 1, 1, 2, 2, 2])
    a = np.deg2rad(65.0)
    r = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    copy = Environment(ref.species, c @ r.T, ref.shell)
    mirror = Environment(ref.species, (c * [-1, 1, 1]) @ r.T, ref.shell)
    assert closer_as_mirror_images(ref, [copy, mirror, copy]) == [1]
    assert closer_as_mirror_images(ref, [mirror], margin=100.0) == []


def _toy_map(path, target="xtb"):
    """A fidelity map fitted on toy pairs: the 'reference' spectrum of label k is the xTB one moved 1 eV up."""
    import dataclasses

    from s2s.forward.fidelity_map import FidelityMap, domain_threshold, principal_basis

    ks = np.linspace(0.0, 3.0, 60)
    y = np.stack([toy_spectrum(k) for k in ks])
    x = normalize(np.roll(y, 10, axis=1) + 1e-6)
    fmap = FidelityMap.fit(x, y, 1e-3, target=target, meta={"source_onset_eV": 0.8})
    groups = [f"s{i // 3}" for i in range(len(ks))]
    fmap = dataclasses.replace(fmap, basis=principal_basis(x, 10), domain_threshold=domain_threshold(x, groups, 10))
    return fmap.save(path), x


def test_predict_through_a_fidelity_map_records_it_and_flags_input_outside_its_domain(
    setup, tmp_path, capsys, monkeypatch
):
    data, model = setup
    path, x = _toy_map(tmp_path / "map.npz")
    inp = tmp_path / "in"
    inp.mkdir()
    np.save(inp / "gpaw_like.npy", x[20])
    rng = np.random.default_rng(0)
    # a spike passes the O K-edge checks of prepare, but no first-principles spectrum looks like it
    np.save(inp / "spike.npy", normalize(np.exp(-0.5 * ((GRID - 6.0) / 0.3) ** 2) + 0.02 * rng.uniform(0, 1, 200)))
    out = tmp_path / "out"
    args = ["predict", str(inp), "--model", str(model), "--data", str(data), "--n-samples", "2", "--steps", "3"]
    rc = main(args + ["--out", str(out), "--quiet", "--no-png", "--input-map", str(path)])
    assert rc == 0, capsys.readouterr().err
    good = json.loads((out / "gpaw_like" / "summary.json").read_text())
    m = good["sampling"]["input_map"]
    assert m["file"] == str(path) and len(m["sha256"]) == 64 and (m["source"], m["target"]) == ("reference", "xtb")
    assert m["in_domain"] and m["domain_error"] <= m["domain_threshold"]
    assert not good["ood"].get("outside_map_domain")
    bad = json.loads((out / "spike" / "summary.json").read_text())
    assert not bad["sampling"]["input_map"]["in_domain"]
    assert bad["ood"]["flag"] and bad["ood"]["outside_map_domain"]
    assert "outside the fidelity map's domain" in bad["ood"]["warning"]
    assert any("outside the fidelity map's domain" in w for w in bad["warnings"])
    # the generator read the mapped spectrum: what the context gives the model is the map's output
    from s2s.forward.fidelity_map import FidelityMap
    from s2s.predict.context import PredictContext
    from s2s.predict.run import map_input

    ctx = PredictContext.load(model, data, None, input_map=path)
    spec, info = map_input(ctx, x[20])
    np.testing.assert_allclose(spec, FidelityMap.from_file(path)(x[20]))
    assert ctx.train_onset == 0.8 and info["in_domain"]
    assert map_input(PredictContext.load(model, data, None), x[20])[1] is None
    # without --model and --fidelity, the map picks its target's generator: the xTB one (resource model_xtb)
    monkeypatch.setenv("S2S_MODEL_XTB", str(model))
    monkeypatch.setenv("S2S_MODEL", str(tmp_path / "no_such_default.pt"))
    args2 = ["predict", str(inp / "gpaw_like.npy"), "--data", str(data), "--n-samples", "2", "--steps", "3"]
    assert main(args2 + ["--out", str(tmp_path / "out2"), "--quiet", "--no-png", "--input-map", str(path)]) == 0
    routed = json.loads((tmp_path / "out2" / "gpaw_like" / "summary.json").read_text())["sampling"]
    assert routed["model"] == str(model) and routed["reference_fidelity"] == "xtb"
    # a map into another fidelity than the training reference is refused, naming both
    other, _ = _toy_map(tmp_path / "other.npz", target="reference")
    with pytest.raises(ValueError, match="maps reference spectra to reference, but the training reference is xtb"):
        PredictContext.load(model, data, None, input_map=other)
