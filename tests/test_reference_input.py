"""The test split read from reference-method spectra (s2s.studies.reference_input) on a toy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from s2s.cli.data import load_dataset
from s2s.forward.model import ForwardConfig, ForwardModel, build_net
from s2s.model.cache import BestOfKSettings
from s2s.studies.reference_input import (
    evaluate_reference_input,
    paired_by_site,
    single_sample_table,
    template_comparison,
)
from tests.test_fidelity_cli import toy  # noqa: F401  (the module-scoped toy dataset, model and store)


def _forward() -> ForwardModel:
    cfg = ForwardConfig(kind="soap", hidden=16, dropout=0.0)
    torch.manual_seed(0)
    return ForwardModel(cfg, build_net(cfg))


def test_paired_by_site_keeps_the_reference_order_and_only_shared_sites(toy):  # noqa: F811
    data, _, store, spectra = toy
    ref = list(load_dataset(data, "reference", store))
    xtb = list(load_dataset(data, "xtb"))[::-1]  # another order, and sites without a reference spectrum
    r, x = paired_by_site(ref, xtb)
    assert [a.key for a in r] == [a.key for a in ref] == [b.key for b in x]
    assert {a.fidelity for a in r} == {"reference"} and {b.fidelity for b in x} == {"xtb"}
    with pytest.raises(ValueError, match="no site has both"):
        paired_by_site(ref, [b for b in xtb if b.key not in spectra])


def test_reference_input_scores_the_same_sites_from_both_fidelities_and_a_reference_library(toy, tmp_path):  # noqa: F811
    data, model, store, spectra = toy
    ref = load_dataset(data, "reference", store)
    xtb = load_dataset(data, "xtb")
    out = evaluate_reference_input(
        model,
        _forward(),
        list(ref.test),
        list(xtb.test),
        list(ref.train),
        n_steps=2,
        consensus=BestOfKSettings(k=2, n_steps=2),
        cache_dir=tmp_path / "cache",
    )
    test_keys = [f"{r.structure_id}:{r.site_index}" for r in ref.test]
    assert out["sites"] == test_keys and out["n_test"] == len(test_keys) == 1
    assert out["xtb_input"]["n_test"] == out["n_test"]
    assert out["template"]["library_size"] == len(ref.train) == 3  # the reference-fidelity library
    for table in (out, out["xtb_input"], out["composition_medoid_of_k"], out["template"]):
        lo, hi = table["ci95"]["rmsd_shell1"]
        assert lo <= table["rmsd_shell1"] <= hi
        assert 0.0 <= table["validity"] <= 1.0
    assert "template_win_rate" in out["composition_medoid_of_k"] and "first_shell" in out
    # the oracle of k is a lower bound of every pick among the same k samples
    for pick in ("composition_medoid_of_k", "forward_pick_of_k"):
        assert out["oracle_of_k"]["rmsd_shell1"] <= out[pick]["rmsd_shell1"] and out[pick]["k"] == 2
    win, (wlo, whi) = out["template"]["model_win_rate"], out["template"]["model_win_rate_ci95"]
    assert 0.0 <= wlo <= win <= whi <= 1.0
    # same sites, same seed: the single-sample row of the xTB input is the one single_sample_table gives it
    again = single_sample_table(model, list(xtb.test), n_steps=2, cache_dir=tmp_path / "cache")
    assert again["rmsd_shell1"] == out["xtb_input"]["rmsd_shell1"]
    with pytest.raises(ValueError, match="empty template library"):
        evaluate_reference_input(model, _forward(), list(ref.test), list(xtb.test), [], n_steps=2)


def test_template_comparison_scores_the_template_and_counts_the_samples_that_beat_it(toy):  # noqa: F811
    from s2s.retrieval.template import template_match

    data, _, store, _ = toy
    xtb = load_dataset(data, "xtb")
    records, library = list(xtb.test), list(xtb.train)
    tm = template_match(
        np.stack([r.spectrum for r in records]),
        [r.structure_id for r in records],
        np.stack([r.spectrum for r in library]),
        [r.structure_id for r in library],
        [r.environment for r in library],
    )
    exact = template_comparison(records, [r.environment for r in records], library)  # the targets themselves
    assert exact["model_win_rate"] == 1.0 or exact["n_ties"] > 0  # nothing is nearer than the target itself
    assert exact["library_size"] == len(library) and exact["n_test"] == len(records)
    same = template_comparison(records, tm.environments, library)  # the template against itself: all ties
    assert same["n_wins"] == 0 and same["model_win_rate"] == 0.0 and same["n_ties"] == len(records)
    assert same["rmsd_shell1"] == exact["rmsd_shell1"]  # the template's own row does not depend on the samples


def test_mapped_input_reads_the_mapped_spectra_and_says_which_map(toy, tmp_path):  # noqa: F811
    from s2s.forward.fidelity_map import FidelityMap, with_mapped_spectra
    from s2s.studies.reference_input import mapped_input_table

    data, model, store, _ = toy
    ref = list(load_dataset(data, "reference", store).test)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.0, (30, 200))
    fmap = FidelityMap.fit(x, x[:, ::-1], 0.1, meta={"n_structures": 7, "trained_on": "toy"})  # reverses a spectrum
    fmap = dataclasses.replace(fmap, basis=np.zeros((1, 200)), domain_threshold=1e9)
    out = mapped_input_table(model, ref, fmap, n_steps=2, cache_dir=tmp_path / "cache")
    # the same numbers as one sample of the mapped records
    same = single_sample_table(model, with_mapped_spectra(ref, fmap), n_steps=2, cache_dir=tmp_path / "cache")
    assert out["rmsd_shell1"] == same["rmsd_shell1"] and out["n_test"] == len(ref)
    assert out["input_map"] == {
        "source": "reference",
        "target": "xtb",
        "alpha": 0.1,
        "domain_threshold": 1e9,
        "n_pairs": 30,
        "n_structures": 7,
        "trained_on": "toy",
    }
    assert out["in_domain"] == 1.0

    def study(model_path, **kw):  # the study of these sites through the map, on the toy's settings
        return evaluate_reference_input(
            model_path,
            _forward(),
            ref,
            list(load_dataset(data, "xtb").test),
            list(load_dataset(data, "reference", store).train),
            n_steps=2,
            consensus=BestOfKSettings(k=2, n_steps=2),
            cache_dir=tmp_path / "cache",
            input_map=fmap,
            **kw,
        )

    full = study(model)
    assert full["mapped_input"]["rmsd_shell1"] == out["rmsd_shell1"]
    assert "xtb_model_input" not in full  # one model reads everything

    # a second generator (another toy model file): the map's input and xtb_model_input are read by it
    import shutil

    other = tmp_path / "other_model" / "model.pt"
    other.parent.mkdir()
    shutil.copy(model, other)
    two = study(other, xtb_model_path=model)
    assert two["model"] == "other_model" and two["mapped_input"]["model"] == two["xtb_model_input"]["model"]
    assert two["mapped_input"]["model"] == model.parent.name
    assert two["mapped_input"]["rmsd_shell1"] == out["rmsd_shell1"]  # the xTB model read the map's output
    by_xtb_model = single_sample_table(model, ref, n_steps=2, cache_dir=tmp_path / "cache")
    assert two["xtb_model_input"]["rmsd_shell1"] == by_xtb_model["rmsd_shell1"]


def test_held_out_site_gives_the_stored_spectrum_the_xtb_one_and_the_environment(toy, monkeypatch):  # noqa: F811
    from s2s.predict.foreign import held_out_site
    from s2s.simulate import reference_sites as rs

    data, _, store, spectra = toy
    key = sorted(spectra)[0]
    xtb = {r.key: r for r in load_dataset(data, "xtb")}[key]
    with pytest.raises(ValueError, match="is not held out"):
        held_out_site(data, key, store)
    monkeypatch.setitem(rs.HELD_OUT, key, "a toy site")
    h = held_out_site(data, key, store)
    np.testing.assert_allclose(h["reference"], spectra[key], rtol=1e-6)
    np.testing.assert_array_equal(h["xtb"], xtb.spectrum)
    np.testing.assert_array_equal(h["target"].coords, xtb.environment.coords)
    assert h["record"].split == ""  # held out: in no split in this fidelity
    assert "a toy site" in h["description"] and "calculated, not measured" in h["description"]
    other = next(k for k in {r.key for r in load_dataset(data, "xtb")} if k not in spectra)
    monkeypatch.setitem(rs.HELD_OUT, other, "no GPAW spectrum")
    with pytest.raises(ValueError, match="has no GPAW spectrum"):
        held_out_site(data, other, store)


def test_every_table_scores_the_sio2_sites_on_their_own(toy):  # noqa: F811
    """``subsets['SiO2']`` is the table of the SiO2 sites alone: what scoring only them gives, never the whole."""
    from s2s.studies.reference_input import _scored

    data, _, _, _ = toy
    records = list(load_dataset(data, "xtb"))
    formulas = ["SiO2" if i % 2 == 0 else "Si2O3" for i in range(len(records))]
    targets = [r.environment for r in records]
    envs = [
        t if f == "SiO2" else records[(i + 1) % len(records)].environment
        for i, (t, f) in enumerate(zip(targets, formulas))
    ]
    groups = [r.structure_id for r in records]
    whole = _scored(targets, envs, groups, 4, formulas)
    sio2 = [i for i, f in enumerate(formulas) if f == "SiO2"]
    alone = _scored([targets[i] for i in sio2], [envs[i] for i in sio2], [groups[i] for i in sio2], 4)
    sub = whole["subsets"]["SiO2"]
    assert sub["n_test"] == len(sio2) < whole["n_test"]
    for key in ("rmsd_shell1", "rmsd_all", "species_accuracy", "validity"):
        assert sub[key] == alone[key]
    assert sub["rmsd_shell1"] == 0.0 < whole["rmsd_shell1"]  # the SiO2 samples are their targets, the rest not
    assert sub["n_structures"] == len({groups[i] for i in sio2}) and "rmsd_shell1" in sub["ci95"]
    assert _scored(targets, envs, groups, 4, ["Si2O3"] * len(records))["subsets"] == {}
    assert "subsets" not in _scored(targets, envs, groups, 4)
