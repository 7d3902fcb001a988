"""Self-consistent ranking in s2s predict: deterministic for a seed, written per candidate, old output
folders still load, unscorable candidates named while the others are ranked and written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from s2s.dataset import Dataset
from s2s.environment import Environment
from s2s.forward.model import ForwardConfig
from s2s.forward.train import train_forward
from s2s.io import read_extxyz, write_extxyz
from s2s.predict import PredictContext, predict_one, read_prediction, write_prediction
from tests.test_predict import setup  # noqa: F401  (the toy dataset and tiny generator fixture)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ctx(setup, tmp_path_factory):  # noqa: F811
    data, model = setup
    ds = Dataset.load(data)
    fwd = tmp_path_factory.mktemp("fwd")
    cfg = ForwardConfig(kind="soap", hidden=16, batch_size=4, max_steps=4, eval_every=2, val_fraction=0.3)
    train_forward(cfg, ds.environments(), ds.spectra(), [r.structure_id for r in ds], fwd, progress=False)
    return PredictContext.load(model, data, fwd / "model.pt"), ds


def test_ranking_is_written_and_deterministic_for_a_seed(ctx, tmp_path):
    c, ds = ctx
    spec = ds[0].spectrum
    a = predict_one(c, "site", spec, n_samples=5, steps=3, seed=7)
    b = predict_one(c, "site", spec, n_samples=5, steps=3, seed=7)
    ra, rb = a.summary["ranking"], b.summary["ranking"]
    assert ra["candidates"] == rb["candidates"]
    scores = [x["spectrum_mse"] for x in ra["candidates"]]
    # the consensus candidate (medoid of the candidates; test_consensus_candidate_is_the_medoid) is written first
    assert a.summary["consensus"]["candidate"] == 0 and a.summary["consensus"]["mean_rmsd_to_others"] > 0
    assert [x["consensus"] for x in ra["candidates"]] == [True, False, False, False, False]
    assert [x["rank"] for x in ra["candidates"]] == list(range(5))
    assert a.summary["consensus"]["draw"] == ra["candidates"][0]["draw"]
    # the forward model's order: plausible candidates first, then by MSE within each group
    by_forward = sorted(ra["candidates"], key=lambda x: x["forward_rank"])
    assert sorted(x["forward_rank"] for x in ra["candidates"]) == list(range(5))
    assert (
        by_forward[0]["forward_rank"] == 0
        and a.summary["consensus"]["forward_rank"] == ra["candidates"][0]["forward_rank"]
    )
    plausible = [x["plausible"] for x in by_forward]
    assert plausible == sorted(plausible, reverse=True)
    for flag in (True, False):
        group = [x["spectrum_mse"] for x in by_forward if x["plausible"] is flag]
        assert group == sorted(group)
    assert [x["forward_rank"] for x in ra["candidates"][1:]] == sorted(x["forward_rank"] for x in ra["candidates"][1:])
    assert sorted(x["draw"] for x in ra["candidates"]) == list(range(5))
    assert a.predicted.shape == (5, 200)
    # the scores are the MSEs of the predicted spectra, in written order
    assert np.allclose(np.mean((a.predicted - spec) ** 2, axis=1), scores)
    for cl in a.summary["candidates"]["clusters"]:
        assert cl["spectrum_mse_best"] == min(scores[i] for i in cl["members"])
    out = write_prediction(tmp_path, a, c, png=True)
    envs, summary = read_prediction(out)
    assert len(envs) == 5 and summary["ranking"]["candidates"] == ra["candidates"]
    text = (out / "candidates.xyz").read_text()
    assert "rank=0 draw=" in text and "spectrum_mse=" in text and text.count("consensus=1") == 1
    assert (out / "overview.png").stat().st_size > 10_000


def test_consensus_candidate_is_the_medoid_of_the_commonest_composition():
    """consensus_first: the medoid (best alignment) of the commonest O fraction goes first, the others keep
    the forward model's order."""
    from s2s.ensembles.pick import medoid
    from s2s.predict.run import consensus_first

    rng = np.random.default_rng(0)
    base = np.array([[0, 0, 0], [1.6, 0, 0], [-0.5, 1.5, 0], [0.3, -0.4, 2.8], [-2.5, -1.0, 1.0]], dtype=float)
    species = np.array([1, 0, 0, 1, 1])
    envs = []
    for j, noise in enumerate([0.6, 0.05, 0.4, 0.1, 0.8]):  # candidate 1 sits in the middle of the others
        xyz = base + noise * rng.normal(size=base.shape)
        xyz[0] = 0.0
        envs.append(Environment(species, xyz, np.array([0, 1, 1, 2, 2]), {"draw": 10 + j}))
    m, spread = medoid(envs)
    ranking = {"candidates": [{"draw": 10 + j, "rank": j, "spectrum_mse": 0.1 * j} for j in range(5)]}
    predicted = np.arange(5)[:, None] * np.ones((5, 200))
    out, rk, pred, cons = consensus_first(envs, ranking, predicted)
    assert out[0] is envs[m] and cons["draw"] == 10 + m and cons["forward_rank"] == m
    assert cons["mean_rmsd_to_others"] == pytest.approx(spread) and spread > 0
    assert [c["forward_rank"] for c in rk["candidates"]] == [m] + [j for j in range(5) if j != m]
    assert [c["rank"] for c in rk["candidates"]] == list(range(5)) and rk["candidates"][0]["consensus"]
    assert np.array_equal(pred[:, 0], [m] + [j for j in range(5) if j != m])
    assert consensus_first(envs[:1], None, None)[3]["mean_rmsd_to_others"] == 0.0  # one candidate: itself
    assert cons["composition_share"] == 1.0
    # the centre of all five with another O fraction: the consensus is the medoid of the other four
    odd = Environment(np.array([1, 0, 1, 1, 1]), envs[m].coords, envs[m].shell, {"draw": 10 + m})
    mixed = envs[:m] + [odd] + envs[m + 1 :]
    rest = [j for j in range(5) if j != m]
    m4, _ = medoid([mixed[j] for j in rest])
    out, _, _, cons = consensus_first(mixed, None, None)
    assert out[0] is mixed[rest[m4]] and cons["composition_share"] == 0.8


def test_output_folder_written_before_ranking_still_loads(tmp_path):
    from s2s.environment import environments_from_structure
    from tests.conftest import make_alpha_quartz

    env = environments_from_structure(make_alpha_quartz(), structure_id="q").environments[0]
    folder = tmp_path / "old"
    folder.mkdir()
    # the format of s2s predict before ranking existed: no rank/spectrum_mse keys, no "ranking" in the summary
    write_extxyz(
        folder / "candidates.xyz",
        [env, env],
        ["sample=0 n_atoms=9 signature=Si2|O6|Si6 source=old", "sample=1 n_atoms=9 signature=Si2|O6|Si6 source=old"],
    )
    (folder / "summary.json").write_text(json.dumps({"name": "old", "candidates": {"n_samples": 2}, "warnings": []}))
    envs, summary = read_prediction(folder)
    assert len(envs) == 2 and np.allclose(envs[0].coords, env.coords, atol=1e-7)
    assert summary["ranking"] is None
    with pytest.raises(FileNotFoundError, match="candidates.xyz: missing"):
        read_prediction(tmp_path)


def test_unscorable_candidates_are_named_and_the_others_ranked_and_written(ctx, tmp_path, monkeypatch):
    import s2s.model.sample as P  # predict_one calls s2s.model.sample.generate

    c, ds = ctx
    good = [r.environment for r in ds][:3]
    x = good[1].coords.copy()
    x[2] = np.nan
    bad_nan = Environment(good[1].species, x, good[1].shell)
    lone = Environment([1], np.zeros((1, 3)), [0])
    fake = [Environment(e.species, e.coords, e.shell) for e in good]
    drawn = [fake[0], lone, fake[1], bad_nan, fake[2]]
    monkeypatch.setattr(P, "generate", lambda *a, **k: [list(drawn)])
    pred = predict_one(c, "mine", ds[0].spectrum, n_samples=5, steps=3)
    rk = pred.summary["ranking"]
    assert [e["draw"] for e in rk["errors"]] == [1, 3]
    assert "mine: candidate 1: no atoms besides the excited O" in rk["errors"][0]["message"]
    assert "mine: candidate 3: coordinate of atom 2" in rk["errors"][1]["message"]
    assert any("candidate 3" in w for w in pred.summary["warnings"])
    assert sorted(x["draw"] for x in rk["candidates"]) == [0, 2, 4]
    out = write_prediction(tmp_path, pred, c, png=False)
    assert len(read_extxyz(out / "candidates.xyz")) == 3


def test_evaluate_best_of_k_cli(ctx, setup, tmp_path):  # noqa: F811
    from s2s.cli import main

    c, _ = ctx
    data, model = setup
    out = tmp_path / "bok"
    args = [
        "evaluate",
        "--model",
        str(model),
        "--data",
        str(data),
        "--split",
        "test",
        "--best-of",
        "3",
        "--steps",
        "2",
        "--forward-model",
        str(c.forward_path),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    res = json.loads((out / "best_of_k.json").read_text())
    assert res["settings"]["k"] == 3 and res["settings"]["n_steps"] == 2 and res["settings"]["sampler"] == "ddim"
    n = res["single"]["n_test"]
    assert n == 1 and all(len(res["picked"][m]) == n for m in ("single", "best_of_k", "oracle_of_k"))
    assert res["picked"]["single"] == [0] * n
    # the oracle is the per-site minimum of the 1st-shell RMSD, so its mean bounds the other picks
    assert (
        res["oracle_of_k"]["rmsd_shell1"] <= min(res["single"]["rmsd_shell1"], res["best_of_k"]["rmsd_shell1"]) + 1e-9
    )
    # the forward-model pick has the lowest mean spectrum MSE of the three
    sel = res["selection_mse_mean"]
    assert sel["best_of_k"] <= min(sel["single"], sel["oracle_of_k"]) + 1e-15
    assert main(args[:-2] + ["--out", str(out), "--n-atoms", "5"]) == 2  # best-of uses the targets' counts
    # the template library never holds the queried structures: with every structure queried none is left
    with pytest.raises(SystemExit, match="template library"):
        main([*args[:6], "all", *args[7:]])
