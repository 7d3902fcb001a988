"""The confidence model that picks one of K samples (s2s.selection, issue 32): labels, invariance,
determinism, calibration, files.  Tiny synthetic data only (no sampling of the real model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_equivariant, random_orthogonal, random_permutation, rotate_permute

from s2s.ensembles.describe import pairwise_rmsd
from s2s.ensembles.pick import composition_key, composition_medoid_index
from s2s.environment import Environment
from s2s.selection.data import build_table, concat_tables, label_samples, load_table, save_table, table_samples
from s2s.selection.features import (
    candidate_features,
    feature_names,
    group_features,
    relative_feature_names,
    relative_features,
)
from s2s.selection.model import Isotonic, Selector, SelectorConfig, utility
from s2s.selection.train import expected_calibration_error, group_folds, oracle_index, pick_table


def toy_env(seed: int, n: int = 9) -> Environment:
    """An excited O with two Si at ~1.6 Å and random further atoms (Å)."""
    rng = np.random.default_rng(seed)
    c = [np.zeros(3)]
    for _ in range(2):
        v = rng.normal(size=3)
        c.append(v / np.linalg.norm(v) * rng.uniform(1.55, 1.7))
    while len(c) < n:
        p = rng.normal(size=3) * 2.5
        if min(np.linalg.norm(p - q) for q in c) > 1.4:
            c.append(p)
    species = np.r_[1, 0, 0, rng.integers(0, 2, n - 3)]
    return Environment(species, np.array(c), np.r_[0, 1, 1, np.full(n - 3, 2)])


def test_labels_of_a_toy_pair_by_hand():
    target = Environment([1, 0, 0], [[0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0]], [0, 1, 1])
    near = Environment([1, 0, 0], [[0, 0, 0], [1.7, 0, 0], [-1.5, 0, 0]], [0, 1, 1])
    # an O at 1.2 A of the excited O: wrong composition (2/3 O) and an O-O contact < 2 A (invalid)
    bad = Environment([1, 0, 1], [[0, 0, 0], [1.6, 0, 0], [-1.2, 0, 0]], [0, 1, 1])
    lab = label_samples(target, [near, bad])
    # collinear along x: no rotation helps; shell 1 = the two Si, all = those plus the excited O (distance 0)
    np.testing.assert_allclose(lab["rmsd_shell1"], [np.sqrt((0.1**2 + 0.1**2) / 2), np.sqrt(0.4**2 / 2)])
    np.testing.assert_allclose(lab["rmsd_all"], [np.sqrt(0.02 / 3), np.sqrt(0.16 / 3)])
    assert lab["species_match"].tolist() == [True, False]
    assert lab["valid"].tolist() == [True, False]
    # the error the model ranks by: RMSD + 0.5 A per wrong composition / invalid environment
    np.testing.assert_allclose(
        utility(lab["rmsd_shell1"], lab["species_match"], lab["valid"]), [0.1, np.sqrt(0.08) + 1.0]
    )
    np.testing.assert_allclose(utility([np.nan, 3.0], [True, True], [True, True], clip=1.5), [1.5, 1.5])


def test_candidate_features_invariant_with_the_shared_helper():
    env = toy_env(0)

    def fn(x: torch.Tensor, h: torch.Tensor):
        out = []
        for b in range(x.shape[0]):
            e = Environment(h[b].argmax(-1).numpy(), x[b].numpy(), np.zeros(x.shape[1], dtype=int))
            out.append(np.broadcast_to(candidate_features(e), (x.shape[1], len(feature_names()))))
        s = torch.as_tensor(np.stack(out))
        return x, s  # the coordinates pass through (equivariant); the per-atom copies of the features must not change

    x = torch.as_tensor(env.coords[None], dtype=torch.float64)
    h = torch.as_tensor(env.one_hot()[None], dtype=torch.float64)
    assert_equivariant(fn, x, h, n_real=env.n_atoms, seed=3, atol=1e-8)


def test_group_features_invariant_per_candidate_and_equivariant_in_k():
    # per candidate: its own rotation and atom order; all candidates: one common reflection (the
    # paper alignment behind the pairwise RMSDs fits proper rotations, so a mirror image of one
    # candidate alone is a different candidate - as it is for the labels against the target)
    envs = [toy_env(s, n=8) for s in range(4)]
    spec = np.random.default_rng(0).random(200)
    ref = group_features(envs, pairwise_rmsd(envs, method="paper"), spec)
    assert ref.shape == (4, len(feature_names()) + 22 + 20 + 3)
    assert np.isnan(ref[:, -3:]).all()  # no forward-model scores given
    mirror = np.diag([1.0, 1.0, -1.0])
    moved = [
        rotate_permute(e, random_orthogonal(i) @ mirror, random_permutation(e.n_atoms, i)) for i, e in enumerate(envs)
    ]
    got = group_features(moved, pairwise_rmsd(moved, method="paper"), spec)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    order = [2, 0, 3, 1]
    re = [envs[i] for i in order]
    np.testing.assert_allclose(group_features(re, pairwise_rmsd(re, method="paper"), spec), ref[order], atol=1e-9)


def test_forward_features_and_a_forward_selector():
    from s2s.selection import confidence
    from s2s.selection.features import forward_features

    f = forward_features(np.array([1e-4, np.nan, 4e-4, 2e-4]), 4)
    np.testing.assert_allclose(f[:, 0], np.log([1e-4, 4e-4, 4e-4, 2e-4]))  # unscorable = the group's worst
    np.testing.assert_allclose(f[:, 2], [0, 2 / 3, 1, 1 / 3])
    envs = [toy_env(400 + i, n=7) for i in range(4)]
    spec = np.ones(200)
    x = group_features(envs, pairwise_rmsd(envs, method="paper"), spec, [1e-4, 3e-4, 2e-4, 5e-4])[None]
    sel = Selector.train(
        np.repeat(x, 2, 0), np.tile([[0.1, 0.5, 0.9, 0.2]], (2, 1)), SelectorConfig(epochs=2, forward=True)
    )
    with pytest.raises(ValueError, match="forward"):
        confidence(sel, envs, spec)
    assert confidence(sel, envs, spec, forward_mse=[1e-4, 3e-4, 2e-4, 5e-4])[0].shape == (4,)


def test_composition_medoid_flag_is_the_composition_medoid():
    for s in range(5):
        envs = [toy_env(10 * s + i, n=7) for i in range(6)]
        d = pairwise_rmsd(envs, method="paper")
        x = np.stack([candidate_features(e) for e in envs])
        rel = relative_features(x, d, [composition_key(e) for e in envs])
        assert int(np.argmax(rel[:, 7])) == composition_medoid_index(envs, d)
        assert rel[:, 7].sum() == 1


def synthetic(n_groups: int = 40, k: int = 6, seed: int = 0):
    """Inputs (the full width of group_features) whose first feature is the error plus noise: a model
    must learn to pick its minimum."""
    f = len(feature_names()) + len(relative_feature_names()) + 20 + 3
    rng = np.random.default_rng(seed)
    err = rng.uniform(0.05, 1.0, size=(n_groups, k))
    x = rng.normal(size=(n_groups, k, f))
    x[..., 0] = err + 0.02 * rng.normal(size=err.shape)
    return x, err


@pytest.mark.parametrize("loss", ["pointwise", "pairwise", "listwise"])
def test_selector_learns_and_is_deterministic(loss):
    x, err = synthetic()
    cfg = SelectorConfig(loss=loss, hidden=16, epochs=20, batch_groups=8, seed=1)
    a = Selector.train(x, err, cfg).scores(x)
    b = Selector.train(x, err, cfg).scores(x)
    np.testing.assert_array_equal(a, b)
    c = Selector.train(x, err, SelectorConfig(loss=loss, hidden=16, epochs=20, batch_groups=8, seed=2)).scores(x)
    assert not np.allclose(a, c)
    got = err[np.arange(len(err)), np.argmax(a, axis=1)].mean()
    best, mean = err.min(axis=1).mean(), err.mean()
    assert got < best + 0.3 * (mean - best), f"{loss}: picked error {got:.3f}, best {best:.3f}, random {mean:.3f}"


def test_isotonic_calibration_and_ece():
    rng = np.random.default_rng(0)
    s = rng.normal(size=4000)
    p_true = 1 / (1 + np.exp(-2 * s))
    y = rng.random(4000) < p_true
    iso = Isotonic.fit(s, y)
    p = iso(s)
    assert np.all(np.diff(iso(np.sort(s))) >= -1e-12)  # non-decreasing
    assert expected_calibration_error(p, y) < 0.03
    assert expected_calibration_error(np.full(4000, 0.9), y) > 0.3
    np.testing.assert_allclose(Isotonic.fit([0, 1, 2, 3], [0, 1, 0, 1])([0, 1.5, 3]), [0, 0.5, 1])


def test_selector_file_round_trip(tmp_path):
    x, err = synthetic(n_groups=10)
    sel = Selector.train(x, err, SelectorConfig(hidden=8, epochs=2))
    sel.calibrate(sel.scores(x).ravel(), err.ravel())
    sel.info = {"note": "toy"}
    sel.save(tmp_path / "s.pt")
    back = Selector.load(tmp_path / "s.pt")
    np.testing.assert_array_equal(back.scores(x), sel.scores(x))
    np.testing.assert_array_equal(back.probability(sel.scores(x)), sel.probability(sel.scores(x)))
    assert back.info == {"note": "toy"} and back.config == sel.config
    with pytest.raises(ValueError, match="features"):
        back.scores(x[..., :3])
    compact = Selector.train(x, err, SelectorConfig(hidden=8, epochs=2, features="compact", n_models=2))
    compact.save(tmp_path / "c.pt")
    np.testing.assert_array_equal(Selector.load(tmp_path / "c.pt").scores(x), compact.scores(x))


def test_table_round_trip_and_picks(tmp_path):
    targets = [toy_env(100 + i, n=7) for i in range(3)]
    samples = [[toy_env(200 + 10 * i + j, n=7) for j in range(3)] + [targets[i]] for i in range(3)]
    tab = build_table(targets, samples, np.ones((3, 200)), [5, 6, 7], ["a", "a", "b"], {"k": 4})
    save_table(tmp_path / "t.npz", concat_tables([tab]))
    back = load_table(tmp_path / "t.npz")
    assert back["rmsd_shell1"].shape == (3, 4) and back["distances"].shape == (3, 4, 4)
    np.testing.assert_allclose(back["rmsd_shell1"][:, 3], 0.0, atol=1e-6)  # the target itself is a sample
    assert oracle_index(back).tolist() == [3, 3, 3]
    assert pick_table(back, [3, 3, 3])["species_accuracy"] == 1.0
    envs = table_samples(back)
    np.testing.assert_allclose(envs[1][2].coords, samples[1][2].coords, atol=1e-5)
    folds = group_folds(["a", "a", "b", "c", "c", "d"], n_folds=2)
    assert folds[0] == folds[1] and folds[3] == folds[4]


def test_confidence_of_k_index_is_the_best_scored_sample():
    from s2s.selection import confidence
    from s2s.studies.best_of_k import confidence_of_k_index

    envs = [toy_env(300 + i, n=7) for i in range(4)]
    spec = np.random.default_rng(1).random(200)
    x = group_features(envs, pairwise_rmsd(envs, method="paper"), spec)[None]
    sel = Selector.train(np.repeat(x, 3, axis=0), np.tile([[0.1, 0.5, 0.9, 0.2]], (3, 1)), SelectorConfig(epochs=5))
    scores, probs = confidence(sel, envs, spec)
    assert np.isnan(probs).all()  # no calibration yet
    i = confidence_of_k_index(envs, sel, spec)
    assert i == int(np.argmax(scores))
    moved = [rotate_permute(e, random_orthogonal(7), random_permutation(e.n_atoms, 7)) for e in envs]
    np.testing.assert_allclose(confidence(sel, moved, spec)[0], scores, atol=1e-5)


def test_select_reports_the_confidence_pick_and_probabilities():
    from pathlib import Path

    from s2s.forward.model import ForwardModel
    from s2s.studies.best_of_k import CONFIDENCE_METHOD, select

    path = Path(__file__).resolve().parents[1] / "models" / "forward_v1" / "model.pt"
    if not path.exists():
        pytest.skip("models/forward_v1 not present")
    envs = [toy_env(500 + i, n=7) for i in range(3)]
    spec = np.full(200, 1.0 / 200)
    x = group_features(envs, pairwise_rmsd(envs, method="paper"), spec)[None]
    sel = Selector.train(np.repeat(x, 2, 0), np.tile([[0.9, 0.1, 0.5]], (2, 1)), SelectorConfig(epochs=3))
    sel.calibrate(sel.scores(x).ravel(), [0.9, 0.1, 0.5])
    out = select([envs], spec[None], ForwardModel.load(path), targets=[envs[1]], selector=sel)
    assert out[CONFIDENCE_METHOD].tolist() == [int(np.argmax(sel.scores(x)[0]))]
    assert out["confidence"].shape == (1, 3) and np.all((out["confidence"] >= 0) & (out["confidence"] <= 1))
    assert "confidence_of_k" not in select([envs], spec[None], ForwardModel.load(path))  # no selector, no pick
