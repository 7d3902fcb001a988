"""Template matching baseline: MSE search with group exclusion, SOAP similarity, win rate."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_orthogonal, random_permutation, rotate_permute
from pymatgen.core import Lattice, Structure

from s2s.descriptors.soap import soap_cosine, soap_similarity_to_target, soap_vectors
from s2s.environment import SI, Environment, environment_from_structure
from s2s.retrieval.neighbours import nearest_by_mse
from s2s.retrieval.template import TIE_TOL, compare_with_generation, summarize_gaps, template_match


def _first_o(structure: Structure) -> int:
    return next(i for i, s in enumerate(structure) if s.specie.symbol == "O")


@pytest.fixture
def quartz_env(alpha_quartz: Structure) -> Environment:
    return environment_from_structure(alpha_quartz, _first_o(alpha_quartz), structure_id="quartz")


@pytest.fixture
def stishovite_env() -> Environment:
    # Stishovite (rutile type, P4_2/mnm): a = 4.1773, c = 2.6655 Å, O at (x, x, 0), x = 0.3062
    # (Ross et al., Am. Mineral. 75, 739 (1990)); every O is bonded to 3 Si.
    s = Structure.from_spacegroup(
        136, Lattice.tetragonal(4.1773, 2.6655), ["Si", "O"], [[0, 0, 0], [0.3062, 0.3062, 0]]
    )
    return environment_from_structure(s, _first_o(s), structure_id="stishovite")


# --------------------------------------------------------------------------- MSE search
def _brute_force(q, r, qg, rg, k):
    idx = np.empty((len(q), k), dtype=int)
    mse = np.empty((len(q), k))
    for i in range(len(q)):
        cands = []
        for j in range(len(r)):
            if qg is not None and qg[i] == rg[j]:
                continue
            cands.append((float(np.mean((q[i] - r[j]) ** 2)), j))
        cands.sort()
        idx[i] = [j for _, j in cands[:k]]
        mse[i] = [m for m, _ in cands[:k]]
    return idx, mse


def test_nearest_matches_brute_force():
    rng = np.random.default_rng(1)
    ref = rng.random((120, 200))
    q = rng.random((37, 200))
    rg = rng.integers(0, 15, size=120)
    qg = rng.integers(0, 15, size=37)
    for k in (1, 3):
        idx, mse = nearest_by_mse(q, ref, qg, rg, k=k, chunk_bytes=8 * 120 * 5)  # 5 rows per chunk
        bi, bm = _brute_force(q, ref, qg, rg, k)
        if k == 1:
            idx, mse = idx[:, None], mse[:, None]
        np.testing.assert_array_equal(idx, bi)
        np.testing.assert_allclose(mse, bm, rtol=1e-12, atol=0)
        assert np.all(qg[:, None] != rg[idx])
    # without groups: plain nearest neighbour
    idx, mse = nearest_by_mse(q, ref)
    bi, bm = _brute_force(q, ref, None, None, 1)
    np.testing.assert_array_equal(idx, bi[:, 0])


def test_same_group_exact_copy_is_excluded():
    rng = np.random.default_rng(2)
    ref = rng.random((50, 200))
    q = ref[[3, 10, 27]] + 0.0  # exact copies of three references
    rg = np.array([f"mat{j // 5}" for j in range(50)])  # 5 sites per material
    idx, mse = nearest_by_mse(q, ref, rg[[3, 10, 27]], rg)
    assert np.all(mse > 0)
    assert not np.any(np.isin(idx, [3, 10, 27]))
    assert np.all(rg[idx] != rg[[3, 10, 27]])
    # the same copies in a different group are found exactly (MSE 0)
    idx2, mse2 = nearest_by_mse(q, ref, np.array(["other"] * 3), rg)
    np.testing.assert_array_equal(idx2, [3, 10, 27])
    np.testing.assert_array_equal(mse2, 0.0)


def test_near_identical_references_resolved_exactly():
    # two references that differ by 1e-9 in one point: the expanded-square screen cannot tell
    # them apart reliably, the exact re-scoring must
    rng = np.random.default_rng(3)
    base = rng.random(200)
    ref = np.stack([base + 1e-9 * (np.arange(200) == 5), base, rng.random(200)])
    idx, mse = nearest_by_mse(base[None, :], ref)
    assert idx[0] == 1 and mse[0] == 0.0


def test_nearest_errors():
    q = np.zeros((2, 200))
    r = np.zeros((3, 200))
    with pytest.raises(ValueError, match="grid points"):
        nearest_by_mse(q, np.zeros((3, 199)))
    with pytest.raises(ValueError, match="NaN"):
        nearest_by_mse(np.full((2, 200), np.nan), r)
    with pytest.raises(ValueError, match="outside its own group"):
        nearest_by_mse(q, r, ["a", "b"], ["a", "a", "a"])
    with pytest.raises(ValueError, match="both"):
        nearest_by_mse(q, r, ["a", "b"], None)
    with pytest.raises(ValueError, match="query_groups"):
        nearest_by_mse(q, r, ["a"], ["a", "b", "c"])


def test_nearest_is_fast():
    import time

    rng = np.random.default_rng(4)
    ref = rng.random((3000, 200))
    q = rng.random((1000, 200))
    rg = rng.integers(0, 300, size=3000)
    qg = rng.integers(0, 300, size=1000)
    t0 = time.perf_counter()
    idx, _ = nearest_by_mse(q, ref, qg, rg)
    assert time.perf_counter() - t0 < 5.0  # ~0.1 s typical; generous on a loaded 2-core box
    assert idx.shape == (1000,)


# --------------------------------------------------------------------------- SOAP
def test_soap_invariant_to_rotation_and_permutation(quartz_env: Environment):
    e = quartz_env
    v = soap_vectors(e)[0]
    rng = np.random.default_rng(5)
    for seed in range(3):
        moved = rotate_permute(e, random_orthogonal(seed), random_permutation(e.n_atoms, rng))  # O* stays first
        assert soap_cosine(v, soap_vectors(moved)[0]) == pytest.approx(1.0, abs=1e-6)


def test_soap_distinguishes_environments(quartz_env: Environment, stishovite_env: Environment):
    # sanity on the fixtures: quartz O has 2 Si neighbours, stishovite O has 3
    assert np.sum((quartz_env.shell == 1) & (quartz_env.species == SI)) == 2
    assert np.sum((stishovite_env.shell == 1) & (stishovite_env.species == SI)) == 3
    v = soap_vectors([quartz_env, stishovite_env])
    assert v.shape[0] == 2 and np.all(np.isfinite(v))
    assert soap_cosine(v[0], v[1]) < 0.95
    # a small distortion is closer than a different polymorph
    rng = np.random.default_rng(6)
    shift = np.r_[[[0, 0, 0]], rng.normal(0, 0.05, (quartz_env.n_atoms - 1, 3))]
    noisy = Environment(quartz_env.species, quartz_env.coords + shift, quartz_env.shell)
    sims = soap_similarity_to_target([quartz_env, quartz_env], [noisy, stishovite_env])
    assert 0.99 < sims[0] < 1.0 - 1e-6
    assert sims[1] < sims[0]


def test_soap_cosine_shapes_and_errors():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0]])
    np.testing.assert_allclose(soap_cosine(a, b), [1.0, -1.0])
    assert isinstance(soap_cosine(a[0], b[0]), float)
    with pytest.raises(ValueError, match="zero"):
        soap_cosine(np.zeros(2), a[0])
    with pytest.raises(ValueError, match="feature lengths"):
        soap_cosine(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="targets but"):
        soap_similarity_to_target([], [None])


# --------------------------------------------------------------------------- comparison
def test_identical_environments_are_a_tie_not_a_win(quartz_env: Environment, stishovite_env: Environment):
    rotated = rotate_permute(quartz_env, random_orthogonal(7))
    res = compare_with_generation(
        targets=[quartz_env, quartz_env, stishovite_env],
        generated=[quartz_env, rotated, stishovite_env],
        matched=[quartz_env, quartz_env, quartz_env],
        mse=[0.0, 0.0, 1e-3],
    )
    assert res["gap"][0] == 0.0
    assert abs(res["gap"][1]) <= TIE_TOL
    assert res["gap"][2] > 0.05  # generation exact, template matched the wrong polymorph
    np.testing.assert_array_equal(res["win"], [False, False, True])
    assert (res["n_wins"], res["n_ties"], res["n_losses"], res["n_cases"]) == (1, 2, 0, 3)
    assert res["model_win_rate"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(res["sim_generated"], 1.0, atol=1e-12)


def test_win_rate_toy_case():
    sg = [0.99, 0.95, 0.97, 0.90, 0.98]
    sm = [0.98, 0.96, 0.97, 0.80, 0.99]
    res = summarize_gaps(sg, sm, mse=[1, 2, 3, 4, 5])
    np.testing.assert_allclose(res["gap"], [0.01, -0.01, 0.0, 0.10, -0.01], atol=1e-15)
    assert (res["n_wins"], res["n_ties"], res["n_losses"]) == (2, 1, 2)
    assert res["model_win_rate"] == pytest.approx(0.4)
    assert res["gap_mean"] == pytest.approx(np.mean([0.01, -0.01, 0.0, 0.10, -0.01]))
    # a tolerance turns small gaps into ties
    res = summarize_gaps(sg, sm, mse=[1, 2, 3, 4, 5], tie_tol=0.02)
    assert (res["n_wins"], res["n_ties"], res["n_losses"]) == (1, 4, 0)
    with pytest.raises(ValueError):
        summarize_gaps([1.0], [1.0, 0.5], mse=[0.0])


def test_wins_split_by_how_close_the_template_is():
    from s2s.retrieval.template import NEAR_COPY_SIM, wins_by_template_similarity

    sg = [0.999, 0.998, 0.97, 0.90, 0.98, 0.95]
    sm = [0.9995, 0.996, 0.96, 0.80, 0.99, 0.995]  # near-copies: cases 0, 1 and 5 (>= 0.995)
    res = wins_by_template_similarity(summarize_gaps(sg, sm, mse=np.zeros(6)))
    assert res["threshold"] == NEAR_COPY_SIM and res["n_near"] == 3 and res["fraction_near"] == 0.5
    assert res["win_rate_near"] == pytest.approx(1 / 3) and res["win_rate_rest"] == pytest.approx(2 / 3)
    res = wins_by_template_similarity(summarize_gaps(sg, sm, mse=np.zeros(6)), threshold=0.9999)
    assert res["n_near"] == 0 and np.isnan(res["win_rate_near"]) and res["win_rate_rest"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="non-empty"):
        wins_by_template_similarity({"sim_matched": [0.9], "win": [True, False]})


def test_template_match_pipeline(quartz_env: Environment, stishovite_env: Environment):
    # training set: two quartz sites (material "q") and one stishovite site (material "s");
    # the test query's spectrum equals a quartz training spectrum, but it *is* quartz, so the
    # match must come from another material.
    rng = np.random.default_rng(8)
    train = rng.random((3, 200))
    envs = [quartz_env, quartz_env, stishovite_env]
    tm = template_match(train[[0]], ["q"], train, ["q", "q", "s"], envs)
    assert tm.index.tolist() == [2]
    assert tm.environments[0] is stishovite_env
    assert tm.mse[0] == pytest.approx(np.mean((train[0] - train[2]) ** 2))
    res = compare_with_generation([quartz_env], [quartz_env], tm.environments, tm.mse)
    assert res["model_win_rate"] == 1.0 and res["mse"][0] == tm.mse[0]
    # amorphous / experimental queries: no exclusion
    tm = template_match(train[[0]], None, train, None, envs)
    assert tm.index.tolist() == [0] and tm.mse[0] == 0.0
    with pytest.raises(ValueError, match="train_envs"):
        template_match(train[[0]], None, train, None, envs[:2])


def test_template_consensus_keeps_the_central_one_of_the_nearest(quartz_env: Environment, stishovite_env: Environment):
    """The nearest spectrum belongs to stishovite, the next two to quartz copies: the consensus of
    three is a quartz one (the medoid); of one it is template matching."""
    from s2s.retrieval.template import template_consensus

    q2 = Environment(species=quartz_env.species, coords=quartz_env.coords * 1.01, shell=quartz_env.shell)
    envs = [stishovite_env, quartz_env, q2, stishovite_env]
    query = np.zeros((1, 200))
    train = np.stack([np.full(200, v) for v in (0.01, 0.02, 0.03, 0.5)])
    tm = template_consensus(query, None, train, None, envs, k=3)
    i = int(tm.index[0])
    assert i in (1, 2) and tm.environments[0] is envs[i]  # one of the two quartz, never the outlier
    assert tm.mse[0] == pytest.approx([0.01, 0.02, 0.03][i] ** 2)
    one = template_consensus(query, None, train, None, envs, k=1)
    assert one.index.tolist() == template_match(query, None, train, None, envs).index.tolist() == [0]
    with pytest.raises(ValueError, match="positive"):
        template_consensus(query, None, train, None, envs, k=0)
    with pytest.raises(ValueError, match="train_envs"):
        template_consensus(query, None, train, None, envs[:2])
