"""Forward model (environment -> spectrum): invariance, unit area, clear errors, resumable training,
candidate ranking, and the best-of-k selection."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from helpers import random_orthogonal, random_permutation, rotate_permute

from s2s.environment import Environment, environments_from_structure
from s2s.forward.model import (
    ForwardConfig,
    ForwardInputError,
    ForwardModel,
    build_net,
    check_environment,
    validation_mask,
)
from s2s.forward.selfconsistent import is_plausible, physical_problems, rank_by_score, score_candidates
from s2s.forward.train import train_forward
from s2s.spectrum import GRID, N_GRID

torch.set_num_threads(1)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


@pytest.fixture(scope="module")
def quartz_env():
    from tests.conftest import make_alpha_quartz

    return environments_from_structure(make_alpha_quartz(), structure_id="quartz").environments[0]


def _random_model(kind: str, seed: int = 0) -> ForwardModel:
    """An untrained model with random (non-trivial) weights; standardisation buffers randomised too."""
    cfg = ForwardConfig(kind=kind, hidden=32, dropout=0.0, n_rbf=8)
    torch.manual_seed(seed)
    net = build_net(cfg)
    with torch.no_grad():  # default initialisation; randomised standardisation
        if kind == "soap":
            net.std.uniform_(0.5, 2.0)
    return ForwardModel(cfg, net)


def _transforms(env: Environment):
    """The environment rotated, reflected, and with its non-central atoms permuted."""
    q, refl = random_orthogonal(3), random_orthogonal(3, reflect=True)
    perm = random_permutation(env.n_atoms, 0)
    return {
        "rotation": rotate_permute(env, q),
        "reflection": rotate_permute(env, refl),
        "permutation": rotate_permute(env, perm=perm),
        "all three": rotate_permute(env, refl, perm),
    }


@pytest.mark.parametrize("kind", ["soap", "distance"])
def test_forward_model_invariant_to_rotation_reflection_permutation(kind, quartz_env):
    fm = _random_model(kind)
    ref = fm.predict([quartz_env])[0]
    # non-trivial: neither the flat softmax of equal logits nor a saturated one-hot
    assert 1.05 < ref.max() / ref.min() < 1e6
    for name, env in _transforms(quartz_env).items():
        got = fm.predict([env])[0]
        assert np.allclose(got, ref, rtol=1e-4, atol=1e-6 * ref.max()), name
    # a real change of geometry does change the prediction
    stretched = Environment(quartz_env.species, quartz_env.coords * 1.1, quartz_env.shell)
    assert not np.allclose(fm.predict([stretched])[0], ref, rtol=1e-3)


@pytest.mark.parametrize("kind", ["soap", "distance"])
def test_predictions_are_nonnegative_with_unit_area(kind, quartz_env):
    out = _random_model(kind).predict([quartz_env, _transforms(quartz_env)["rotation"]])
    assert out.shape == (2, N_GRID)
    assert np.all(out >= 0)
    assert np.allclose(_trapezoid(out, GRID, axis=1), 1.0, atol=1e-5)


def test_bad_environments_get_errors_naming_them(quartz_env):
    lone = Environment([1], np.zeros((1, 3)), [0])
    with pytest.raises(ForwardInputError, match=r"candidate 3: no atoms besides the excited O"):
        check_environment(lone, "candidate 3")
    x = quartz_env.coords.copy()
    x[2, 1] = np.nan
    nan_env = Environment(quartz_env.species, x, quartz_env.shell)
    with pytest.raises(ForwardInputError, match=r"my site: coordinate of atom 2 .* not finite"):
        _random_model("soap").predict([quartz_env, nan_env], names=["ok", "my site"])


def test_score_candidates_ranks_good_ones_and_names_bad_ones(quartz_env):
    fm = _random_model("soap")
    tr = _transforms(quartz_env)
    target = fm.predict([tr["rotation"]])[0]  # the rotated quartz is a perfect match
    x = quartz_env.coords.copy()
    x[1] = np.nan
    cands = [
        Environment(quartz_env.species, quartz_env.coords * 1.15, quartz_env.shell),
        Environment([1], np.zeros((1, 3)), [0]),
        tr["permutation"],
        Environment(quartz_env.species, x, quartz_env.shell),
        Environment(quartz_env.species, quartz_env.coords * 0.9, quartz_env.shell),
    ]
    sc = score_candidates(fm, target, cands)
    assert set(sc.errors) == {1, 3}
    assert "candidate 1" in sc.errors[1] and "no atoms besides" in sc.errors[1]
    assert "candidate 3" in sc.errors[3] and "not finite" in sc.errors[3]
    assert sc.order[0] == 2 and sc.scores[2] < 1e-12  # the permuted copy of the target is ranked first
    assert list(sc.order[-2:]) == [1, 3]  # failures last, in index order
    assert np.isnan(sc.scores[[1, 3]]).all() and np.isfinite(sc.scores[[0, 2, 4]]).all()
    assert [int(sc.rank[i]) for i in sc.order] == list(range(5))
    again = score_candidates(fm, target, cands)
    assert np.array_equal(again.order, sc.order) and np.array_equal(again.scores, sc.scores, equal_nan=True)


def test_rank_by_score_ties_and_nan_are_deterministic():
    order, rank = rank_by_score(np.array([0.2, np.nan, 0.1, 0.2, 0.1]))
    assert order.tolist() == [2, 4, 0, 3, 1]
    assert rank.tolist() == [2, 4, 0, 3, 1]


def test_physical_problems(quartz_env):
    assert is_plausible(quartz_env)
    x = quartz_env.coords.copy()
    x[1] = x[1] / np.linalg.norm(x[1]) * 0.9  # a Si at 0.9 Å from the excited O
    probs = physical_problems(Environment(quartz_env.species, x, quartz_env.shell))
    assert any("too close" in p for p in probs)
    far = Environment(quartz_env.species, quartz_env.coords * 1.5, quartz_env.shell)
    assert any("empty first shell" in p for p in physical_problems(far))


def test_validation_mask_groups_structures():
    ids = [f"s{i // 3}" for i in range(300)]
    m = validation_mask(ids, 0.1, seed=1)
    by = {}
    for i, v in zip(ids, m):
        by.setdefault(i, set()).add(bool(v))
    assert all(len(v) == 1 for v in by.values())  # never split inside a structure
    assert 0 < m.sum() < len(ids)
    assert np.array_equal(m, validation_mask(ids[::-1], 0.1, seed=1)[::-1])  # order does not matter


def _toy_training_set(quartz_env, n=24):
    rng = np.random.default_rng(0)
    envs, spectra, ids = [], [], []
    for i in range(n):
        s = 1.0 + 0.03 * rng.normal()
        envs.append(Environment(quartz_env.species, quartz_env.coords * s, quartz_env.shell))
        y = np.exp(-0.5 * ((GRID - 5 - 20 * (s - 1)) / 1.5) ** 2) + 0.05
        spectra.append(y / _trapezoid(y, GRID))
        ids.append(f"toy-{i}")
    return envs, np.array(spectra), ids


@pytest.mark.parametrize("kind", ["soap", "distance"])
def test_training_learns_and_resumes_exactly(kind, quartz_env, tmp_path):
    envs, spectra, ids = _toy_training_set(quartz_env)
    cfg = ForwardConfig(kind=kind, hidden=32, n_rbf=8, batch_size=8, max_steps=12, eval_every=4, lr=3e-3)
    full = train_forward(cfg, envs, spectra, ids, tmp_path / "full", progress=False)
    part = train_forward(cfg, envs, spectra, ids, tmp_path / "part", max_steps=8, progress=False)
    assert part.step == 8
    resumed = train_forward(cfg, envs, spectra, ids, tmp_path / "part", progress=False)
    assert resumed.step == 12
    for a, b in zip(full.history, resumed.history):
        assert a["step"] == b["step"] and a["val_mse"] == pytest.approx(b["val_mse"], rel=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "full" / "loss.csv")))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    first_val = float(rows[0]["val_mse"])
    mean_mse = float(np.mean((spectra - spectra.mean(0)) ** 2))
    assert full.best_val_mse < max(first_val, mean_mse * 10)
    loaded = ForwardModel.load(tmp_path / "full")  # the folder, or model.pt
    assert loaded.meta["best_step"] == full.best_step
    assert np.allclose(loaded.predict(envs[:3]), full.model.predict(envs[:3]))
    assert not list((tmp_path / "full").glob("*.tmp"))


def test_resume_with_another_config_is_refused(quartz_env, tmp_path):
    envs, spectra, ids = _toy_training_set(quartz_env, n=12)
    cfg = ForwardConfig(kind="soap", hidden=16, batch_size=4, max_steps=2, eval_every=2)
    train_forward(cfg, envs, spectra, ids, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another forward config.*hidden"):
        train_forward(
            ForwardConfig(kind="soap", hidden=8, batch_size=4, max_steps=4, eval_every=2),
            envs,
            spectra,
            ids,
            tmp_path,
            progress=False,
        )


def test_load_rejects_other_files(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"weights": {}}, p)
    with pytest.raises(ValueError, match="not an s2s forward model"):
        ForwardModel.load(p)
    with pytest.raises(FileNotFoundError, match="train-forward"):
        ForwardModel.load(tmp_path / "missing.pt")


def test_shipped_forward_model_loads_and_predicts(quartz_env):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "models" / "forward_v1" / "model.pt"
    if not path.exists():
        pytest.skip("models/forward_v1 not present")
    fm = ForwardModel.load(path)
    y = fm.predict([quartz_env])[0]
    assert fm.cfg.kind in ("soap", "distance") and "dataset_sha256" in fm.meta and fm.meta["best_step"] > 0
    assert np.isclose(_trapezoid(y, GRID), 1.0, atol=1e-5)


def test_shipped_first_principles_forward_model_predicts_gpaw_spectra_better_than_the_xtb_one():
    from s2s.resources import default_path
    from s2s.simulate.reference_sites import load_fidelity

    paths = {n: default_path(n) for n in ("forward", "forward_reference", "data", "reference_sites")}
    if any(p is None or not p.exists() for p in paths.values()):
        pytest.skip("shipped forward models, dataset or reference store not present")
    test = list(load_fidelity(paths["data"], "reference", paths["reference_sites"]).test)[:24]  # never trained on
    envs, truth = [r.environment for r in test], np.stack([r.spectrum for r in test])
    ref, xtb = ForwardModel.load(paths["forward_reference"]), ForwardModel.load(paths["forward"])
    assert ref.meta["fidelity"] == "reference" and ref.meta["init_from"].endswith("forward_v1/model.pt")
    mse_ref = np.mean((ref.predict(envs) - truth) ** 2)
    mse_xtb = np.mean((xtb.predict(envs) - truth) ** 2)
    assert mse_ref < 0.5 * mse_xtb  # 1.2e-4 against 6.9e-4 on all GPAW test spectra (docs/forward_model.md)


def test_best_of_k_select_picks_by_forward_and_oracle(quartz_env):
    from s2s.studies.best_of_k import select

    fm = _random_model("soap")
    tr = _transforms(quartz_env)
    spectrum = fm.predict([tr["rotation"]])[0]
    samples = [
        [
            Environment(quartz_env.species, quartz_env.coords * 1.2, quartz_env.shell),
            tr["permutation"],
            Environment(quartz_env.species, quartz_env.coords * 0.95, quartz_env.shell),
        ]
    ]
    sel = select(samples, spectrum[None, :], fm, targets=[quartz_env])
    assert sel["single"].tolist() == [0]
    assert sel["best_of_k"].tolist() == [1]
    assert sel["oracle_of_k"].tolist() == [1]  # the permuted copy has RMSD 0
    assert sel["medoid_of_k"].tolist() == [1]  # x1.0 lies between x0.95 and x1.2: the consensus
    assert sel["rows"][0][1]["rmsd_shell1"] == pytest.approx(0.0, abs=1e-6)


def test_medoid_is_the_consensus_and_ignores_order(quartz_env):
    from s2s.ensembles.pick import medoid_index

    scaled = [
        Environment(quartz_env.species, quartz_env.coords * f, quartz_env.shell) for f in (1.3, 1.0, 0.9, 1.05, 0.8)
    ]
    assert medoid_index(scaled) == 1  # the median scale
    assert medoid_index(scaled[::-1]) == 3
    assert medoid_index(scaled[:1]) == 0
    with pytest.raises(ValueError, match="no samples"):
        medoid_index([])
    from s2s.ensembles.pick import medoid_of_distances

    d = np.array([[0.0, 1.0, np.nan], [1.0, 0.0, 2.0], [np.nan, 2.0, 0.0]])  # NaN: a pair that cannot be aligned
    assert medoid_of_distances(d) == (1, 1.5) and medoid_of_distances(np.zeros((1, 1))) == (0, 0.0)


def test_mean_about_the_medoid_is_closer_than_the_samples_and_keeps_the_species(quartz_env):
    """consensus_average: noisy, rotated, permuted copies average back towards the clean environment."""
    from s2s.ensembles.pick import consensus_average, medoid_index
    from s2s.geometry.align import align

    rng = np.random.default_rng(3)
    samples = []
    for j in range(8):
        noisy = quartz_env.coords + 0.15 * rng.normal(size=quartz_env.coords.shape)
        noisy[0] = quartz_env.coords[0]
        env = Environment(quartz_env.species, noisy, quartz_env.shell)
        samples.append(rotate_permute(env, random_orthogonal(j), random_permutation(env.n_atoms, j)))
    errors = [align(quartz_env, e, method="best").rmsd for e in samples]
    avg = consensus_average(samples, medoid_index(samples))
    assert avg.meta["n_averaged"] == 8 and avg.n_atoms == quartz_env.n_atoms
    assert align(quartz_env, avg, method="best").rmsd < 0.6 * min(errors)
    assert sorted(avg.species.tolist()) == sorted(quartz_env.species.tolist())  # the vote keeps the species
    assert np.allclose(avg.coords[0], samples[medoid_index(samples)].coords[0])  # excited O stays put
    # a far-off sample is left out with max_rmsd
    far = Environment(quartz_env.species, quartz_env.coords * 1.6, quartz_env.shell)
    assert consensus_average(samples + [far], 0, max_rmsd=0.5).meta["n_averaged"] == 8


def test_anchored_pick_is_the_sample_nearest_the_anchors_and_the_weight_moves_it_to_the_medoid(quartz_env):
    from s2s.ensembles.describe import pairwise_rmsd
    from s2s.ensembles.pick import anchored_index, anchored_scores, medoid_of_distances

    scaled = [
        Environment(quartz_env.species, quartz_env.coords * f, quartz_env.shell) for f in (1.3, 1.0, 0.9, 1.05, 0.8)
    ]
    # an anchor with fewer atoms, rotated and permuted: the pick is still the matching scale (0.8)
    anchor = Environment(quartz_env.species[:-1], quartz_env.coords[:-1] * 0.8, quartz_env.shell[:-1])
    anchor = rotate_permute(anchor, random_orthogonal(5), random_permutation(anchor.n_atoms, 5))
    scores = anchored_scores(scaled, [anchor])
    assert scores.shape == (5,) and anchored_index(scores) == 4
    d = pairwise_rmsd(scaled)
    assert anchored_index(scores, d, consensus_weight=100.0) == medoid_of_distances(d)[0] == 1
    with pytest.raises(ValueError, match="needs the"):
        anchored_index(scores, consensus_weight=1.0)
    with pytest.raises(ValueError, match="anchor"):
        anchored_scores(scaled, [])


def test_implausible_candidates_rank_after_plausible_ones(quartz_env):
    fm = _random_model("soap")
    target = fm.predict([quartz_env])[0]
    x = quartz_env.coords.copy()
    x[1] = x[1] / np.linalg.norm(x[1]) * 1.0  # first-shell Si at 1.0 Å: close to the target otherwise
    collapsed = Environment(quartz_env.species, x, quartz_env.shell)
    far = Environment(quartz_env.species, quartz_env.coords * 1.2, quartz_env.shell)
    cands = [far, collapsed]
    by_mse = score_candidates(fm, target, cands, demote_implausible=False)
    sc = score_candidates(fm, target, cands)
    assert np.array_equal(sc.scores, by_mse.scores)
    assert sc.problems[1] and not sc.problems[0]
    assert sc.order.tolist() == [0, 1]
    if by_mse.scores[1] < by_mse.scores[0]:  # the demotion is what put it last
        assert by_mse.order.tolist() == [1, 0]
    order, _ = rank_by_score(np.array([0.1, 0.2, np.nan, 0.05]), np.array([False, False, False, True]))
    assert order.tolist() == [0, 1, 3, 2]


def test_validation_mask_matches_dataset_validation_split():
    from s2s import splits as D
    from s2s.dataset import Dataset, SiteRecord

    env = Environment([1, 0], [[0, 0, 0], [1.6, 0, 0]], [0, 1])
    spec = np.ones(N_GRID) / 19.9
    recs = [
        SiteRecord(spec, env, f"s{i}", 0, formula="SiO2", source="t", simulator="toy", split="train") for i in range(60)
    ]
    ds = Dataset.from_records(recs, {})
    fit, val = D.validation_split(ds, 0.1, seed=1)
    m = validation_mask([r.structure_id for r in ds], 0.1, seed=1)
    assert {r.structure_id for r in val} == {r.structure_id for r, v in zip(ds, m) if v}


def test_screened_medoid_between_forward_pick_and_medoid():
    """keep = 1 is the medoid, keep = 1/K the forward pick; in between, the medoid of the kept samples."""
    from s2s.ensembles.pick import medoid_of_distances, screened_medoid_index

    x = np.array([0.0, 0.1, 0.2, 3.0, 3.1])  # samples 0-2 agree, 3-4 agree with each other
    d = np.abs(x[:, None] - x[None, :])
    scores = np.array([0.9, 0.5, 0.8, 0.1, 0.2])  # the forward model prefers 3 and 4
    assert screened_medoid_index(scores, d, 1.0) == medoid_of_distances(d)[0] == 2  # the majority's centre
    assert screened_medoid_index(scores, d, 0.2) == 3  # the forward pick
    assert screened_medoid_index(scores, d, 0.4) == 3  # medoid of {3, 4}: tie to the lower index
    assert screened_medoid_index(scores, d, 0.6) == 3  # {1, 3, 4}: 3 is nearest to the others
    d2 = d.copy()
    d2[3, 4] = d2[4, 3] = 5.0  # 3 and 4 disagree: the screen of {1, 3, 4} keeps 1, between them
    assert screened_medoid_index(scores, d2, 0.6) == 1
    assert screened_medoid_index(np.array([np.nan, 0.5, 0.8, 0.1, 0.2]), d, 0.2) == 3
    with pytest.raises(ValueError, match="keep"):
        screened_medoid_index(scores, d, 0.0)
    with pytest.raises(ValueError, match="distances"):
        screened_medoid_index(scores, d[:4, :4], 0.5)


def test_composition_medoid_takes_the_commonest_o_fraction_then_its_centre():
    """The plain medoid sits on a minority composition; the pick keeps the composition most samples share."""
    from s2s.ensembles.pick import composition_key, composition_medoid_index, medoid_of_distances
    from s2s.environment import SI, Environment, O

    def env(n_o, n=6):  # O* + (n - 1) atoms, n_o of them O (the excited O counted)
        sp = [O] + [O] * (n_o - 1) + [SI] * (n - n_o)
        return Environment(species=sp, coords=np.arange(3 * n, dtype=float).reshape(n, 3), shell=[0] + [1] * (n - 1))

    a, b = env(3), env(4)
    x = np.array([1.0, 0.0, 0.1, 2.0, 1.05])  # one coordinate standing in for the aligned RMSD
    d = np.abs(x[:, None] - x[None, :])
    samples = [b, a, a, a, b]
    assert medoid_of_distances(d)[0] == 0  # the centre of all five is a B
    assert composition_medoid_index(samples, d) == 2  # the A's centre: 2 (0.1 + 1.9) beats 1 (0.1 + 2.0)
    assert composition_key(env(3, 6)) == composition_key(env(4, 8)) != composition_key(b)  # exact fractions
    # a tie in count (two A, two B): the composition whose medoid is nearer to all the samples
    samples = [b, a, a, b, env(5)]
    x = np.array([1.0, 0.0, 0.1, 1.1, 0.9])
    d = np.abs(x[:, None] - x[None, :])
    assert composition_medoid_index(samples, d) == 0
    with pytest.raises(ValueError, match="distances"):
        composition_medoid_index(samples, d[:4, :4])
