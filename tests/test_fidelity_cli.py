"""``--fidelity`` routes the CLI to the right spectra: xTB records, the reference store's, or both."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s2s.cli import main
from s2s.cli.data import load_dataset
from s2s.dataset import Dataset
from s2s.simulate import reference_sites as rs
from s2s.simulate.gpaw_ref import broaden_to_grid
from s2s.simulate.xtb_settings import structure_hash
from tests.helpers import toy_dataset_and_model


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """(dataset path, model path, store folder, the reference spectra by site key): of 7 sites,
    three training sites and the test site get a reference spectrum that is not their xTB spectrum (a peak at 12 eV)."""
    root = tmp_path_factory.mktemp("fid")
    data, model = toy_dataset_and_model(root, simulator="xtb-gfn1")
    ds = Dataset.load(data)
    st = rs.BUILD_SETTINGS
    store = rs.ReferenceStore(root / "store")
    chosen = list(ds.train)[:3] + list(ds.test)[:1]
    spectra = {}
    for i, r in enumerate(chosen):
        e = np.array([0.0, 3.0 + 0.5 * i, 12.0])
        w = np.array([0.2, 1.0, 2.0])
        rec = {
            "structure_id": r.structure_id,
            "site_index": r.site_index,
            "energies_eV": e.tolist(),
            "intensity": w.tolist(),
            "grid_spectrum": broaden_to_grid(e, w, st.fwhm).tolist(),
            "sanity": {"passed": True, "gap_eV": 5.0, "message": "ok"},
            "settings": {"supercell_atoms": 72, "calc_key": st.calc_key()},
            "wall_time_s": {"total": 1.0},
            "cpu_time_s": 1.0,
        }
        site = rs.site_from_record(rec, structure_hash(ds.structure(r.structure_id)))
        store.add(site, st)
        spectra[r.key] = site.grid_spectrum
    return data, model, root / "store", spectra


def test_load_dataset_gives_each_fidelity_its_own_spectra_on_the_same_splits(toy):
    data, _, store, spectra = toy
    xtb = load_dataset(data, "xtb")
    ref = load_dataset(data, "reference", store)
    both = load_dataset(data, "both", store)
    assert {r.fidelity for r in xtb} == {"xtb"} and {r.fidelity for r in ref} == {"reference"}
    assert len(ref) == len(spectra) and len(both) == len(xtb) + len(ref)
    by_key = {r.key: r for r in xtb}
    for r in ref:  # the store's spectrum, everything else (split, environment) from the xTB record
        np.testing.assert_allclose(r.spectrum, spectra[r.key], rtol=1e-6)
        assert r.split == by_key[r.key].split
        np.testing.assert_array_equal(r.environment.coords, by_key[r.key].environment.coords)
        assert not np.allclose(r.spectrum, by_key[r.key].spectrum)
    assert len(ref.test) == 1 and len(ref.train) == 3 < len(xtb.train)


def test_load_dataset_errors_name_the_store_or_file(toy, tmp_path):
    data, _, _, _ = toy
    with pytest.raises(SystemExit, match="is not a folder"):
        load_dataset(data, "reference", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no site of this dataset"):
        load_dataset(data, "reference", tmp_path / "empty")
    with pytest.raises(SystemExit, match="dataset file not found"):
        load_dataset(tmp_path / "missing.h5", "xtb")
    with pytest.raises(ValueError, match="fidelity must be one of"):
        rs.dataset_of_fidelity(Dataset.load(data), "castep", None)


def test_train_and_sample_read_the_fidelity_they_are_given(toy, tmp_path):
    data, model, store, spectra = toy
    run = tmp_path / "ref_run"
    argv = ["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--max-steps", "2", "--quiet"]
    assert main(argv + ["--fidelity", "reference", "--reference-store", str(store)]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["fidelity"] == "reference"
    assert info["n_reference_records"] == len(spectra) - 1  # the training sites, not the test one
    out = tmp_path / "samples"
    argv = ["sample", "--model", str(model), "--data", str(data), "--out", str(out), "--split", "all"]
    assert main(argv + ["--fidelity", "reference", "--reference-store", str(store), "--steps", "2"]) == 0
    assert sorted(p.stem for p in out.glob("*.xyz")) == sorted(f"{s}__site{k}" for s, k in spectra)
    ev = tmp_path / "ev"
    argv = ["evaluate", "--model", str(model), "--data", str(data), "--out", str(ev), "--steps", "2"]
    assert main(argv + ["--fidelity", "both", "--reference-store", str(store)]) == 0
    m = json.loads((ev / "metrics.json").read_text())
    n_test_xtb = len(Dataset.load(data).test)
    assert m["fidelity"] == "both" and m["summary"]["paper"]["n"] == n_test_xtb + 1


def test_train_says_what_ended_the_run_and_warns_when_the_epochs_end_it_before_the_cpu_budget(toy, tmp_path, capsys):
    """A preset's epoch limit once ended a ``--cpu-minutes`` run silently (cpu_v3: 300 epochs); run.json and the
    console now name what ended it."""
    data, _, _, _ = toy
    base = ["train", "--data", str(data), "--preset", "tiny", "--quiet"]
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "e"), "--epochs", "2", "--cpu-minutes", "60"]) == 0
    out = capsys.readouterr()
    info = json.loads((tmp_path / "e" / "run.json").read_text())
    assert info["stop_reason"] == "epochs" and info["epochs"] == 2
    assert "ended by the epoch limit (2 epochs, --epochs)" in out.out
    assert "before --cpu-minutes 60 was spent" in out.err
    assert main(base + ["--out", str(tmp_path / "s"), "--max-steps", "2"]) == 0
    out = capsys.readouterr()
    assert json.loads((tmp_path / "s" / "run.json").read_text())["stop_reason"] == "max_steps"
    assert "ended by the step limit (--max-steps)" in out.out and "--cpu-minutes" not in out.err
    assert main(base + ["--out", str(tmp_path / "c"), "--epochs", "1000000", "--cpu-minutes", "0.002"]) == 0
    out = capsys.readouterr()
    assert json.loads((tmp_path / "c" / "run.json").read_text())["stop_reason"] == "cpu_budget"
    assert "ended by the CPU budget (--cpu-minutes 0.002)" in out.out and "note:" not in out.err


def test_fidelity_recipes_benchmark_trains_evaluates_and_reports_on_a_toy(toy, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    data, model, store, spectra = toy
    common = ["--data", str(data), "--reference-store", str(store)]
    run = tmp_path / "joint"
    argv = [
        "train",
        "joint",
        "--cpu-minutes",
        "0.02",
        "--preset",
        "tiny",
        "--init-from",
        str(model.parent / "checkpoint.pt"),
    ]
    assert fr.main(argv + ["--out", str(run)] + common) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["fidelity"] == "both" and info["n_reference_records"] >= 1
    assert info["config"]["train"]["epochs"] == fr.UNBOUNDED_EPOCHS  # the CPU budget, not the epochs, ends it
    assert fr.main(["evaluate", str(run), "--fidelity", "reference", "--seeds", "0", "1"] + common) == 0
    evals = sorted(run.glob("eval_reference_s*.json"))
    assert [p.name for p in evals] == ["eval_reference_s0.json", "eval_reference_s1.json"]
    e0 = json.loads(evals[0].read_text())
    val_keys = {s for s in e0["sites"]}
    assert val_keys <= {f"{s}:{k}" for s, k in spectra}  # only sites with a reference spectrum
    assert e0["fidelity"] == "reference" and 0.0 <= e0["validity"] <= 1.0 and e0["rmsd_shell1"] > 0
    capsys.readouterr()
    assert fr.main(["report", str(run)]) == 0
    table = capsys.readouterr().out
    assert f" | reference | {e0['n']} | 2 |" in table and table.startswith("| run | extra CPU")
    assert fr.main(["counts", str(run)] + common) == 0
    counts = capsys.readouterr().out
    row = next(line for line in counts.splitlines() if line.startswith(f"| {run} |"))
    top1, mae, loglik = (float(x) for x in row.split("|")[2:5])
    assert 0.0 <= top1 <= 1.0 and mae >= 0.0 and loglik <= 0.0
    # N drawn from the atom-count head (what s2s predict does): its own rows, never pooled with the target's N
    ev = ["evaluate", str(run), "--fidelity", "reference", "--seeds", "0", "--atom-count", "head"]
    assert fr.main(ev + common) == 0
    h0 = json.loads((run / "eval_reference+headN_s0.json").read_text())
    assert h0["fidelity"] == "reference+headN" and h0["atom_count"] == "head"
    assert h0["sites"] == e0["sites"] and e0.get("atom_count") == "target"
    capsys.readouterr()
    assert fr.main(["report", str(run), "--paired-to", str(run)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {run} |")]
    assert [r.split("|")[3].strip() for r in rows] == ["reference", "reference+headN"]
    assert all(r.rstrip().endswith("+0.000 [+0.00, +0.00] |") for r in rows)  # species paired with itself: 0
    assert " | 2 | " in rows[0] and " | 1 | " in rows[1]  # two seeds with the target's N, one with the head's
    # each sample's drawn N is kept beside its target's, and by-count splits the head's evaluations by them
    assert len(h0["n_atoms_per_site"]) == len(h0["sites"]) == len(h0["n_target_per_site"])
    assert e0["n_atoms_per_site"] == e0["n_target_per_site"]  # the paper's protocol: the target's N
    assert fr.main(["by-count", str(run)]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {run} |")]
    assert [r.split("|")[3].strip() for r in table] == ["below", "right", "above", "all"]
    share = {r.split("|")[3].strip(): float(r.split("|")[4]) for r in table}
    sign = np.sign(np.subtract(h0["n_atoms_per_site"], h0["n_target_per_site"]))
    assert share["right"] == pytest.approx(np.mean(sign == 0), abs=1e-3) and share["all"] == 1.0


def test_evaluate_model_draws_the_atom_count_from_the_head_only_when_asked(toy, monkeypatch):
    import importlib.util
    from pathlib import Path

    import s2s.model.sample as sample

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    data, model, store, _ = toy
    from s2s.cli.data import load_dataset

    records = list(load_dataset(data, "xtb", None).train)[:3]
    seen = []
    real = sample.generate

    def spy(m, spectra, n_atoms=None, **kw):
        seen.append(None if n_atoms is None else [int(n) for n in n_atoms])
        return real(m, spectra, n_atoms, **{**kw, "n_steps": 2})

    monkeypatch.setattr(sample, "generate", spy)
    fr.evaluate_model(model, records, 0, "xtb", "target")
    fr.evaluate_model(model, records, 0, "xtb", "head")
    assert seen == [[r.environment.n_atoms for r in records], None]
    with pytest.raises(ValueError, match="atom_count"):
        fr.evaluate_model(model, records, 0, "xtb", "mode")


def test_fidelity_recipes_joint_flag_tells_the_model_each_spectrums_fidelity(toy, tmp_path, monkeypatch):
    """Recipe ``joint_flag``: both fidelities with ``--fidelity-input`` from a checkpoint without the channel;
    each training batch carries its records' flags (1 for a reference spectrum), ``evaluate`` and ``s2s predict``
    give the model the evaluated fidelity's flag."""
    import importlib.util
    from pathlib import Path

    from s2s.model import S2SModel, sample
    from s2s.model.train import load_model
    from s2s.predict import PredictContext
    from s2s.predict.run import input_fidelity_flag

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    data, model, store, spectra = toy
    reference = np.stack(list(spectra.values()))
    seen = []
    loss = S2SModel.loss

    def spy(self, batch, generator=None):
        is_ref = [bool(np.any(np.all(np.isclose(s, reference, rtol=1e-5, atol=1e-7), axis=1))) for s in batch.spectrum]
        seen.append((is_ref, batch.fidelity.tolist()))
        return loss(self, batch, generator)

    monkeypatch.setattr(S2SModel, "loss", spy)
    common = ["--data", str(data), "--reference-store", str(store)]
    run = tmp_path / "joint_flag"
    argv = ["train", "joint_flag", "--cpu-minutes", "0.01", "--preset", "tiny", "--out", str(run)]
    assert fr.main(argv + ["--init-from", str(model.parent / "checkpoint.pt")] + common) == 0
    monkeypatch.setattr(S2SModel, "loss", loss)
    assert seen and any(any(r) for r, _ in seen) and any(not all(r) for r, _ in seen)
    for is_ref, flags in seen:
        assert flags == [1.0 if r else 0.0 for r in is_ref]
    info = json.loads((run / "run.json").read_text())
    assert info["fidelity"] == "both" and info["config"]["model"]["fidelity_input"] is True
    assert info["continued_from"]["fidelity_input_added"] is True
    assert load_model(run / "model.pt").cfg.model.fidelity_input
    assert not load_model(model).cfg.model.fidelity_input  # the toy model it continued

    given = []
    generate = sample.generate

    def spy_generate(*args, **kw):
        given.append(kw.get("fidelity"))
        return generate(*args, **kw)

    monkeypatch.setattr(sample, "generate", spy_generate)
    for fid, flag in (("reference", 1.0), ("xtb", 0.0)):
        given.clear()
        assert fr.main(["evaluate", str(run), "--fidelity", fid, "--seeds", "0"] + common) == 0
        assert given == [flag]
        given.clear()
        assert fr.main(["evaluate", "v6", "--fidelity", fid, "--seeds", "0", "--runs-dir", str(tmp_path)] + common) == 0
        assert given == [None]  # a model without the input is sampled as before
    given.clear()  # s2s evaluate: each record's own flag
    ev = ["evaluate", "--model", str(run / "model.pt"), "--data", str(data), "--out", str(tmp_path / "ev")]
    assert main(ev + ["--steps", "2", "--fidelity", "both", "--reference-store", str(store)]) == 0
    n_test_xtb = len(Dataset.load(data).test)
    assert len(given) == 1 and sorted(given[0].tolist()) == [0.0] * n_test_xtb + [1.0]
    for fid, flag in (("xtb", 0.0), ("reference", 1.0), ("both", 1.0)):
        assert input_fidelity_flag(PredictContext.load(run / "model.pt", data, None, fid, store)) == flag
    assert input_fidelity_flag(PredictContext.load(model, data, None, "reference", store)) is None


def test_translated_fidelity_takes_the_reference_spectrum_where_one_exists_and_the_translation_elsewhere(toy, tmp_path):
    from s2s.forward.model import ForwardConfig, ForwardModel, build_net
    from s2s.forward.translate import translate

    data, _, store, spectra = toy
    cfg = ForwardConfig(kind="soap", hidden=8, input_spectrum=True)
    translator = ForwardModel(cfg, build_net(cfg))  # untrained: this test is about which record goes where
    path = tmp_path / "translated.h5"
    translate(Dataset.load(data), translator).save(path)
    mixed = load_dataset(path, "translated", store)
    xtb = load_dataset(path, "xtb")
    assert {r.fidelity for r in xtb} == {"xtb"}  # translated records are not read as xTB ones
    train = mixed.train
    assert len(train) == len(xtb.train)  # one record per training site
    for r in train:
        if r.key in spectra:
            assert r.fidelity == "reference" and np.allclose(r.spectrum, spectra[r.key], rtol=1e-6)
        else:
            assert r.fidelity == "translated"
    assert {r.fidelity for r in mixed.test} == {"reference"}  # test sites are never translated
    with pytest.raises(SystemExit, match="no translated records"):
        load_dataset(data, "translated", store)
    # 'all': every site's xTB record, and its reference record where one exists, else its translated one
    everything = load_dataset(path, "all", store)
    both = load_dataset(path, "both", store)
    assert sorted(r.key + (r.fidelity,) for r in everything) == sorted(
        [r.key + (r.fidelity,) for r in both] + [r.key + ("translated",) for r in mixed if r.fidelity == "translated"]
    )
    assert {r.fidelity for r in everything.test} == {"xtb", "reference"}
    with pytest.raises(SystemExit, match="'all': the dataset file holds no translated records"):
        load_dataset(data, "all", store)


def test_the_clis_fidelity_choices_are_the_loaders():
    from s2s.cli.data import FIDELITIES

    assert tuple(FIDELITIES) == rs.FIDELITY_CHOICES


def test_a_model_trained_on_translated_spectra_is_read_with_the_real_spectra_of_its_kind(tmp_path):
    from s2s.predict import trained_fidelity

    for trained, read in (("translated", "reference"), ("all", "both"), ("both", "both"), ("xtb", "xtb")):
        (tmp_path / "run.json").write_text(json.dumps({"fidelity": trained}))
        assert trained_fidelity(tmp_path / "model.pt") == read
    (tmp_path / "run.json").write_text(json.dumps({"fidelity": "cheap"}))
    with pytest.raises(ValueError, match="fidelity 'cheap', expected one of"):
        trained_fidelity(tmp_path / "model.pt")


def test_fidelity_recipes_translated_recipe_runs_on_a_toy(toy, tmp_path):
    import importlib.util
    from pathlib import Path

    import torch

    from s2s.forward.model import ForwardConfig, ForwardModel, build_net

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    data, model, store, spectra = toy
    cfg = ForwardConfig(kind="soap", hidden=8, input_spectrum=True)
    (tmp_path / "translator").mkdir()
    torch.save(ForwardModel(cfg, build_net(cfg)).state(), tmp_path / "translator" / "model.pt")
    common = ["--data", str(data), "--reference-store", str(store), "--runs-dir", str(tmp_path)]
    assert fr.main(["translate"] + common) == 0
    assert (tmp_path / "translated.h5").exists()
    run = tmp_path / "tr_run"
    argv = ["train", "translated", "--cpu-minutes", "0.02", "--preset", "tiny", "--out", str(run)]
    assert fr.main(argv + ["--init-from", str(model.parent / "checkpoint.pt")] + common) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["fidelity"] == "translated" and info["dataset"].endswith("translated.h5")
    assert info["n_reference_records"] == len(spectra) - 1  # the real ones kept beside the translations


def test_predict_reference_fidelity_uses_the_reference_training_spectra_as_its_reference(toy, tmp_path):
    from s2s.predict import PredictContext
    from tests.helpers import toy_spectrum

    data, model, store, spectra = toy
    xtb = PredictContext.load(model, data, None)
    ref = PredictContext.load(model, data, None, "reference", store)
    train_ref = {k: v for k, v in spectra.items() if k in {r.key for r in Dataset.load(data).train}}
    assert ref.fidelity == "reference" and len(ref.train_spectra) == len(train_ref) == 3
    for got in ref.train_spectra:  # the template, OOD and onset reference: the reference spectra, each once
        assert sum(np.allclose(got, v, rtol=1e-5, atol=1e-9) for v in train_ref.values()) == 1
    assert len(xtb.train_spectra) == len(Dataset.load(data).train) and xtb.fidelity == "xtb"
    spec = tmp_path / "s.npy"
    np.save(spec, toy_spectrum(1.0))
    out = tmp_path / "out"
    args = ["predict", str(spec), "--model", str(model), "--data", str(data), "--no-rank", "--no-png"]
    args += ["--n-samples", "2", "--steps", "2", "--out", str(out), "--quiet"]
    assert main(args + ["--fidelity", "reference", "--reference-store", str(store)]) == 0
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    assert summary["sampling"]["reference_fidelity"] == "reference"
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        PredictContext.load(model, data, None, "reference", tmp_path / "nowhere")


def test_fidelity_gap_benchmark_measures_each_site_against_its_own_other_fidelity(toy):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fidelity_gap", Path("benchmarks/fidelity_gap.py"))
    fg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fg)
    data, _, store, spectra = toy
    both = load_dataset(data, "both", store)
    g = fg.fidelity_gap(both, n_pairs=200)
    assert g["n_sites"] == len(spectra)
    xtb = {r.key: r.spectrum for r in both if r.fidelity == "xtb"}
    want = sorted(float(fg.rms(xtb[k], spectra[k])) for k in spectra)
    assert g["rms_same_site_q10_median_q90"][1] == pytest.approx(float(np.quantile(want, 0.5)), rel=1e-5)
    lo, mid, hi = g["pearson_q10_median_q90"]
    assert -1.0 <= lo <= mid <= hi <= 1.0
    assert g["ratio_same_site_to_typical_median"] > 0


def test_fidelity_recipes_paired_difference_by_hand():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    sites = ["a:0", "a:1", "b:0", "c:2"]

    def ev(seed, vals, order=sites):
        return {"seed": seed, "sites": list(order), "rmsd_shell1_per_site": list(vals)}

    run = [ev(0, [1.0, 2.0, 3.0, 4.0]), ev(1, [2.0, 2.0, 2.0, 2.0]), ev(7, [9.0] * 4)]
    # the baseline lists its sites in another order; seed 7 is the run's alone and is left out
    base = [ev(0, [0.5, 2.0, 2.0, 1.0], order=sites[::-1]), ev(1, [1.0, 1.0, 1.0, 1.0])]
    p = fr.paired_difference(run, base)
    # seed 0, by site: a:0 1-1, a:1 2-2, b:0 3-2, c:2 4-0.5; seed 1: +1 each -> means 0.5, 0.5, 1.0, 2.25
    assert p["seeds"] == [0, 1] and p["n"] == 4
    assert p["mean"] == pytest.approx((0.5 + 0.5 + 1.0 + 2.25) / 4)
    assert p["ci95"][0] <= p["mean"] <= p["ci95"][1] and p["ci95"][0] >= 0.5 - 1e-12
    assert np.isnan(fr.paired_difference(run, [ev(3, [0.0] * 4)])["mean"])
    with pytest.raises(ValueError, match="different sites"):
        fr.paired_difference(run, [ev(0, [0.0] * 3, order=sites[:3])])
    # species pairs the same way, by its own per-site values; evaluations from before the key pair as NaN
    sp = [dict(ev(0, [0.0] * 4), species_accuracy_per_site=[1.0, 0.0, 1.0, 1.0])]
    sp_base = [dict(ev(0, [0.0] * 4, order=sites[::-1]), species_accuracy_per_site=[0.0, 0.0, 1.0, 1.0])]
    # base by site (reversed order): c:2 0, b:0 0, a:1 1, a:0 1 -> differences a:0 0, a:1 -1, b:0 +1, c:2 +1
    s = fr.paired_difference(sp, sp_base, "species_accuracy")
    assert s["n"] == 4 and s["mean"] == pytest.approx(0.25)
    assert np.isnan(fr.paired_difference(run, base, "species_accuracy")["mean"])
    with pytest.raises(ValueError, match="key must be one of"):
        fr.paired_difference(run, base, "rmsd_all")


def test_predict_fidelity_defaults_to_what_the_model_was_trained_on_and_xtb_routes_to_the_xtb_model(
    toy, tmp_path, monkeypatch
):
    import shutil

    from s2s.predict import PredictContext, choose_model, trained_fidelity

    data, model, store, _ = toy
    joint = tmp_path / "joint"  # a copy of the toy model whose run record says it read both fidelities
    joint.mkdir()
    for f in model.parent.iterdir():
        if f.is_file():
            shutil.copy(f, joint / f.name)
    info = json.loads((joint / "run.json").read_text()) if (joint / "run.json").exists() else {}
    (joint / "run.json").write_text(json.dumps({**info, "fidelity": "both"}))
    bare = tmp_path / "bare"  # no run.json: a model from before the key, trained on xTB
    bare.mkdir()
    shutil.copy(model, bare / "model.pt")
    assert trained_fidelity(joint / "model.pt") == "both" and trained_fidelity(bare / "model.pt") == "xtb"

    monkeypatch.setenv("S2S_MODEL", str(joint / "model.pt"))
    monkeypatch.setenv("S2S_MODEL_XTB", str(bare / "model.pt"))
    assert choose_model() == (joint / "model.pt", "both")  # the default model, with what it read
    assert choose_model(None, "xtb") == (bare / "model.pt", "xtb")  # --fidelity xtb: the xTB model
    assert choose_model(None, "reference") == (joint / "model.pt", "reference")
    assert choose_model(bare / "model.pt", "both") == (bare / "model.pt", "both")  # explicit wins
    assert choose_model(joint / "model.pt") == (joint / "model.pt", "both")
    with pytest.raises(ValueError, match="expected one of"):
        choose_model(None, "gpaw")
    (bare / "run.json").write_text(json.dumps({"fidelity": "casteP"}))
    with pytest.raises(ValueError, match="run.json: fidelity 'casteP'"):
        trained_fidelity(bare / "model.pt")

    ctx = PredictContext.load(joint / "model.pt", data, None, reference_store=store)
    assert ctx.fidelity == "both" and len(ctx.train_spectra) == len(load_dataset(data, "both", store).train)
    from s2s.retrieval.ood import OODScorer, PerFidelityOODScorer

    # both fidelities: the OOD score calibrates each on its own (docs/fidelity.md, "The OOD score per fidelity")
    assert isinstance(ctx.ood, PerFidelityOODScorer) and set(ctx.ood.parts) == {"xtb", "reference"}
    xtb_only = PredictContext.load(model, data, None)
    assert type(xtb_only.ood) is OODScorer
    from s2s.predict.prepare import training_onset

    ref_train = load_dataset(data, "reference", store).train.spectra()
    assert ctx.train_onset == training_onset(ref_train)  # the onset convention of the first-principles spectra
    assert ctx.train_onset != training_onset(load_dataset(data, "xtb").train.spectra())
    spec = tmp_path / "s.npy"
    np.save(spec, np.asarray(next(iter(Dataset.load(data).test)).spectrum))
    out = tmp_path / "out"
    args = ["predict", str(spec), "--data", str(data), "--no-rank", "--no-png", "--reference-store", str(store)]
    assert main(args + ["--n-samples", "2", "--steps", "2", "--out", str(out), "--quiet"]) == 0
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    assert summary["sampling"]["reference_fidelity"] == "both"
    assert summary["sampling"]["model"] == str(joint / "model.pt")
    assert summary["ood"]["nearest_fidelity"] in {"xtb", "reference"}
    assert summary["ood"]["n_reference"] == len(ctx.train_spectra)
    html_out = tmp_path / "html"
    assert main(args + ["--n-samples", "2", "--steps", "2", "--out", str(html_out), "--quiet", "--html"]) == 0
    page = next(html_out.glob("*/overview.html")).read_text()
    assert f"among the {summary['ood']['nearest_fidelity']} training spectra" in page


def test_the_forward_model_that_ranks_predicts_the_inputs_fidelity(toy, tmp_path, monkeypatch):
    from s2s.forward.model import ForwardConfig
    from s2s.forward.train import train_forward
    from s2s.predict import choose_forward

    data, model, store, _ = toy
    cfg = ForwardConfig(kind="distance", hidden=8, n_rbf=4, batch_size=4, max_steps=1, eval_every=1)
    paths = {}
    for fid in ("xtb", "reference"):
        train = load_dataset(data, fid, store).train
        ids = [r.structure_id for r in train]
        train_forward(cfg, train.environments(), train.spectra(), ids, tmp_path / fid, progress=False)
        paths[fid] = tmp_path / fid / "model.pt"
    monkeypatch.setenv("S2S_FORWARD", str(paths["xtb"]))
    monkeypatch.setenv("S2S_FORWARD_REFERENCE", str(paths["reference"]))
    assert choose_forward("auto", "xtb") == paths["xtb"]
    assert choose_forward("auto", "both") == choose_forward("auto", "reference") == paths["reference"]
    assert choose_forward(paths["xtb"], "both") == paths["xtb"] and choose_forward(None, "both") is None
    spec = tmp_path / "s.npy"
    np.save(spec, np.asarray(next(iter(Dataset.load(data).test)).spectrum))
    base = ["predict", str(spec), "--data", str(data), "--model", str(model), "--reference-store", str(store)]
    base += ["--no-png", "--n-samples", "2", "--steps", "2", "--quiet"]
    for fid, expect in (("xtb", "xtb"), ("both", "reference"), ("reference", "reference")):
        out = tmp_path / f"out_{fid}"
        assert main(base + ["--fidelity", fid, "--out", str(out)]) == 0
        ranking = json.loads(next(out.glob("*/summary.json")).read_text())["ranking"]
        assert ranking["forward_model"] == str(paths[expect]), fid
    out = tmp_path / "explicit"
    assert main(base + ["--fidelity", "both", "--forward-model", str(paths["xtb"]), "--out", str(out)]) == 0
    assert json.loads(next(out.glob("*/summary.json")).read_text())["ranking"]["forward_model"] == str(paths["xtb"])


def test_train_reference_repeat_repeats_the_first_principles_records_only(toy, tmp_path, monkeypatch):
    import s2s.model.train as mt

    data, _, store, spectra = toy
    seen = {}

    def fake_train(cfg, envs, spectra_, out, **kw):  # what s2s train hands the trainer
        seen["n"], seen["spectra"], seen["info"] = len(envs), np.asarray(spectra_), kw["info"]
        raise ValueError("stop here")

    monkeypatch.setattr(mt, "train", fake_train)
    base = ["train", "--data", str(data), "--reference-store", str(store), "--preset", "tiny", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="stop here"):
        main(base + ["--fidelity", "both"])
    n_both = seen["n"]
    n_ref = sum(1 for k in spectra if k in {r.key for r in load_dataset(data, "reference", store).train})
    with pytest.raises(SystemExit, match="stop here"):
        main(base + ["--fidelity", "both", "--reference-repeat", "3"])
    assert seen["n"] == n_both + 2 * n_ref  # each reference record twice more, the xTB ones once
    assert seen["info"]["n_reference_records"] == n_ref and seen["info"]["reference_repeat"] == 3
    ref_spectra = [v for k, v in spectra.items() if k in {r.key for r in load_dataset(data, "reference", store).train}]
    for v in ref_spectra:
        assert sum(np.allclose(s, v, rtol=1e-5, atol=1e-9) for s in seen["spectra"]) == 3
    with pytest.raises(SystemExit, match="needs --fidelity both"):
        main(base + ["--fidelity", "xtb", "--reference-repeat", "2"])


def test_fidelity_recipes_head_refits_only_the_atom_count_head(toy, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    import torch

    from s2s.model.train import load_model

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    data, model, store, _ = toy
    common = ["--data", str(data), "--reference-store", str(store), "--fidelity", "both", "--base", str(model)]
    common += ["--sources", "reference", "xtb", "--epochs", "3"]
    out = tmp_path / "head"
    assert fr.main(["head", "--out", str(out)] + common) == 0
    base, new = load_model(model), load_model(out / "model.pt")
    pairs = zip(base.denoiser.state_dict().values(), new.denoiser.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not all(torch.equal(a, b) for a, b in zip(base.natoms.parameters(), new.natoms.parameters()))
    info = json.loads((out / "run.json").read_text())
    assert info["recipe"] == "head" and info["sources"] == ["reference", "xtb"] and info["split"] == "fit"
    assert info["n_records"]["reference"] >= 1 and info["n_records"]["xtb"] > info["n_records"]["reference"]
    capsys.readouterr()
    assert fr.main(["head", "--cv"] + common) == 0
    row = capsys.readouterr().out.strip()
    assert row.startswith("| reference+xtb | 3 | 0.01 | reference ") and " | xtb " in row
    with pytest.raises(SystemExit, match="--out is required"):
        fr.main(["head"] + common)


def test_evaluate_new_since_scores_only_the_sites_an_older_store_lacks(toy, tmp_path):
    import importlib.util
    import shutil
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    data, model, store, _ = toy
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(model, run / "model.pt")
    common = ["--data", str(data), "--reference-store", str(store), "--seeds", "0"]
    assert fr.main(["evaluate", str(run)] + common) == 0
    every = json.loads((run / "eval_reference_s0.json").read_text())["sites"]
    old = tmp_path / "old"
    shutil.copytree(store, old)
    with pytest.raises(SystemExit, match="lacks"):  # the same store: nothing new
        fr.main(["evaluate", str(run), "--new-since", str(old)] + common)
    gone = every[0].rsplit(":", 1)[0]
    (old / f"{gone}.npz").unlink()  # the older snapshot did not have this structure yet
    assert fr.main(["evaluate", str(run), "--new-since", str(old)] + common) == 0
    res = json.loads((run / "eval_reference_s0.json").read_text())
    assert res["sites"] == [k for k in every if k.rsplit(":", 1)[0] == gone] and res["new_since"] == str(old)


def test_fidelity_recipes_trains_a_new_network_of_the_preset_on_the_device_it_is_given(toy, tmp_path, monkeypatch):
    """The prepared GPU run (scripts/device_fidelity.sh): ``--init-from none`` starts no checkpoint, and
    ``--device`` reaches the trainer; without them a recipe continues the shipped model on the CPU."""
    import importlib.util
    from pathlib import Path

    import s2s.model.train as mt

    spec = importlib.util.spec_from_file_location("fidelity_recipes", Path("benchmarks/fidelity_recipes.py"))
    fr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fr)
    data, model, store, _ = toy
    seen = {}

    def fake_train(cfg, envs, spectra_, out, **kw):  # what s2s train hands the trainer
        seen.update(cfg=cfg, **kw)
        raise ValueError("stop here")

    monkeypatch.setattr(mt, "train", fake_train)
    common = ["--data", str(data), "--reference-store", str(store), "--out", str(tmp_path / "run")]
    argv = ["train", "joint", "--cpu-minutes", "1", "--preset", "gpu_v3", "--init-from", "none", "--device", "cuda"]
    with pytest.raises(SystemExit, match="stop here"):
        fr.main(argv + common)
    assert seen["init_from"] is None and seen["device"] == "cuda"
    assert (seen["cfg"].model.hidden_dim, seen["cfg"].model.n_layers, seen["cfg"].train.batch_size) == (512, 5, 128)
    argv = [
        "train",
        "joint",
        "--cpu-minutes",
        "1",
        "--preset",
        "tiny",
        "--init-from",
        str(model.parent / "checkpoint.pt"),
    ]
    with pytest.raises(SystemExit, match="stop here"):
        fr.main(argv + common)
    assert seen["init_from"] is not None and seen["device"] == "cpu"
