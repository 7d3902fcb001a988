"""Edge cases of s2s.geometry.align that the mutation run (docs/testing.md section 4) showed untested.

Each test states an independent expectation: a hand-built geometry, a brute-force loop or a documented
default (no numbers copied from the module's own output).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from helpers import random_orthogonal, random_permutation, rotate_permute
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

from s2s.environment import SI, Environment, O
from s2s.geometry import align as A


def _env(coords, species=None) -> Environment:
    c = np.asarray(coords, dtype=float)
    s = np.full(len(c), SI) if species is None else np.asarray(species)
    s = s.copy()
    s[0] = O
    return Environment(s, c, np.minimum(np.arange(len(c)), 3))


def _random_env(rng, n, scale=2.5) -> Environment:
    c = rng.normal(size=(n, 3)) * scale
    c[0] = 0.0
    s = rng.integers(0, 2, n)
    return _env(c, s)


def _mirror(env: Environment, rng, reflect=True):
    r = random_orthogonal(int(rng.integers(1 << 31)), reflect)
    p = random_permutation(env.n_atoms, rng)
    return rotate_permute(env, r, p), r, p


# ----------------------------------------------------------------------------- Kabsch


def test_kabsch_batched_is_a_proper_rotation_unless_reflections_are_asked_for():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(6, 3))
    q = p @ np.diag([1.0, 1.0, -1.0])  # a mirror image: no proper rotation fits it
    r, rmsd = A.kabsch_batched(p[None], q[None])
    assert np.linalg.det(r[0]) == pytest.approx(1.0)
    assert rmsd[0] > 0.1
    r, rmsd = A.kabsch_batched(p[None], q[None], allow_reflection=True)
    assert np.linalg.det(r[0]) == pytest.approx(-1.0)
    assert rmsd[0] < 1e-7


def test_kabsch_batched_rmsd_is_zero_for_an_exact_fit_and_the_length_gap_for_one_pair():
    rng = np.random.default_rng(2)
    p = rng.normal(size=(5, 3))
    rot = Rotation.random(random_state=3).as_matrix()
    _, rmsd = A.kabsch_batched(p[None], (p @ rot.T)[None])
    assert rmsd[0] < 1e-7  # not clipped up to anything
    # one pair: the best rotation lines the vectors up, what is left is |2| - |1| = 1 Å
    _, rmsd = A.kabsch_batched(np.array([[[1.0, 0.0, 0.0]]]), np.array([[[0.0, 2.0, 0.0]]]))
    assert rmsd[0] == pytest.approx(1.0)


def test_kabsch_batched_with_reflections_equals_a_loop_batched_or_not():
    rng = np.random.default_rng(4)
    p = rng.normal(size=(4, 7, 3))
    q = rng.normal(size=(4, 7, 3))
    r, rmsd = A.kabsch_batched(p, q, allow_reflection=True)
    assert rmsd.shape == (4,)
    for b in range(4):
        # brute force: the RMSD of the returned orthogonal matrix, and it beats random orthogonal ones
        direct = np.sqrt(np.mean(np.sum((p[b] @ r[b].T - q[b]) ** 2, axis=1)))
        assert rmsd[b] == pytest.approx(direct, abs=1e-9)
        for s in range(20):
            o = random_orthogonal(s, reflect=bool(s % 2))
            assert direct <= np.sqrt(np.mean(np.sum((p[b] @ o.T - q[b]) ** 2, axis=1))) + 1e-12
        r1, rmsd1 = A.kabsch_batched(p[b], q[b], allow_reflection=True)  # unbatched (n, 3) inputs
        np.testing.assert_allclose(r1, r[b], atol=1e-12)
        assert float(rmsd1) == pytest.approx(rmsd[b], abs=1e-12)


def test_kabsch_shape_errors_are_value_errors_named_after_the_function_called():
    with pytest.raises(ValueError, match="kabsch_batched"):
        A.kabsch_batched(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="^kabsch: expected"):
        A.kabsch(np.zeros((3, 3)), np.zeros((4, 3)))


def test_alignment_is_immutable():
    rng = np.random.default_rng(5)
    t = _random_env(rng, 4)
    a = A.align_paper(t, t)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.rmsd = 0.0


# ----------------------------------------------------------------------------- helpers


def test_injections_are_all_ordered_tuples_and_read_only():
    one = A._injections(4, 1)
    np.testing.assert_array_equal(one, np.arange(4)[:, None])
    none = A._injections(3, 0)
    assert none.shape == (1, 0)  # exactly one (empty) pairing
    two = A._injections(4, 2)
    assert sorted(map(tuple, two)) == sorted(itertools.permutations(range(4), 2))
    assert not two.flags.writeable  # cached and shared between callers


def test_nearest_by_hand():
    # distances from the origin of atoms 1..6: 1, 2, 2, 2.5, 3, 4 (atom 0 is the origin itself)
    c = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 2], [2.5, 0, 0], [0, 3, 0], [0, 0, 4]], float)
    np.testing.assert_array_equal(A._nearest(c, 1), [1])
    np.testing.assert_array_equal(A._nearest(c, 2), [1, 2])  # the stable order decides the tie
    assert A._nearest(c, 0).shape == (0,)
    assert A._nearest(c, 0, tie_tol=0.5, max_extra=2).shape == (0,)
    # tie_tol = 0 disables the tie handling even with extras allowed
    np.testing.assert_array_equal(A._nearest(c, 2, tie_tol=0.0, max_extra=2), [1, 2])
    # the exact tie (atom 3, at the 2nd distance) is admitted
    np.testing.assert_array_equal(A._nearest(c, 2, tie_tol=1e-6, max_extra=2), [1, 2, 3])
    # within tie_tol, boundary included: 2 + 0.5 = 2.5 exactly (atom 4); at most max_extra of them
    np.testing.assert_array_equal(A._nearest(c, 2, tie_tol=0.5, max_extra=2), [1, 2, 3, 4])
    np.testing.assert_array_equal(A._nearest(c, 2, tie_tol=0.5, max_extra=1), [1, 2, 3])
    np.testing.assert_array_equal(A._nearest(c, 2, tie_tol=0.4, max_extra=5), [1, 2, 3])


def test_fast_trace_on_degenerate_matrices_matches_the_svd():
    rots = Rotation.random(300, random_state=6).as_matrix()
    rots2 = Rotation.random(300, random_state=7).as_matrix()
    hs = [np.eye(3) * 2.0, -np.eye(3) * 2.0, np.diag([0.3, 0.2, 0.1])[None] * np.ones((1, 1, 1))]
    for d in ([3.0, 1.0, 1.0], [3.0, 3.0, 1.0], [0.3, 0.1, 0.1], [0.5, 0.4, -0.2]):
        hs.append(rots @ np.diag(d) @ rots2)  # two equal singular values: rounding puts cos(3 phi) past +-1
    h = np.concatenate([np.reshape(x, (-1, 3, 3)) for x in hs])
    for refl in (False, True):
        exact = np.linalg.svd(h, compute_uv=False)
        if refl:
            want = exact.sum(axis=1)
        else:
            want = exact[:, 0] + exact[:, 1] + np.sign(np.linalg.det(h)) * exact[:, 2]
        got = A._fast_trace(h, refl)
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_hungarian_species_penalty_by_hand():
    # target: O*, Si at +x, O at +y; generated (already rotated): O*, O near +x, Si near +y
    t = np.array([[0, 0, 0], [1.6, 0, 0], [0, 1.6, 0]], float)
    g = np.array([[0, 0, 0], [1.5, 0.1, 0], [0.1, 1.5, 0]], float)
    ts, gs = np.array([O, SI, O]), np.array([O, O, SI])
    # geometry alone pairs x with x
    for kw in ({}, {"penalty": 5.0}, {"t_species": ts, "g_species": gs, "penalty": 0.0}):
        ti, gi = A._hungarian(t, g, **kw)
        np.testing.assert_array_equal(gi[np.argsort(ti)], [1, 2])
    # a mismatch costs 5 Å^2, more than the 2 * 2.2 Å^2 the swap costs in distance: species win
    ti, gi = A._hungarian(t, g, ts, gs, penalty=5.0)
    np.testing.assert_array_equal(ti, [1, 2])
    np.testing.assert_array_equal(gi, [2, 1])
    # brute force over both pairings with the penalty added
    cost = ((t[1:, None] - g[None, 1:]) ** 2).sum(-1) + 5.0 * (ts[1:, None] != gs[None, 1:])
    r, c = linear_sum_assignment(cost)
    np.testing.assert_array_equal(gi, c + 1)


def test_distinct_rotations_by_angle():
    def rz(deg):
        return Rotation.from_euler("z", deg, degrees=True).as_matrix()

    rots = np.array([np.eye(3), rz(3), rz(10), rz(90), rz(92), rz(180)])
    chosen = A._distinct(rots, k=10)  # pairwise more than 5 degrees apart: 0, 10, 90, 180
    assert len(chosen) == 4
    np.testing.assert_allclose(np.array(chosen), rots[[0, 2, 3, 5]])
    assert len(A._distinct(rots, k=2)) == 2  # at most k
    np.testing.assert_allclose(np.array(A._distinct(rots, k=2)), rots[[0, 2]])
    assert len(A._distinct(rots, k=10, min_angle_deg=2.0)) == 6
    # a reflection is never "close" to a rotation
    refl = np.diag([1.0, 1.0, -1.0])
    assert len(A._distinct(np.array([np.eye(3), refl]), k=5)) == 2


# ----------------------------------------------------------------------------- the paper and best alignments


def _paper_by_brute_force(t: np.ndarray, g: np.ndarray) -> float:
    """The paper's procedure written out: O* + 7 nearest in each set (no ties here), every pairing of
    the subsets with a hand-written SVD Kabsch, Hungarian on the full sets, Kabsch again."""
    ts = 1 + np.argsort(np.linalg.norm(t[1:], axis=1))[:7]
    gs = 1 + np.argsort(np.linalg.norm(g[1:], axis=1))[:7]
    perms = np.array(list(itertools.permutations(range(7))))
    gp = g[gs[perms]]  # (5040, 7, 3)
    u, _, vt = np.linalg.svd(np.einsum("bni,nj->bij", gp, t[ts]))  # Kabsch per pairing, by hand
    d = np.sign(np.linalg.det(u @ vt))
    flip = np.eye(3)[None] * np.stack([np.ones_like(d), np.ones_like(d), d], 1)[:, None]
    rot = np.swapaxes(vt, 1, 2) @ flip @ np.swapaxes(u, 1, 2)
    err = np.sum((gp @ np.swapaxes(rot, 1, 2) - t[ts]) ** 2, axis=(1, 2))
    best_r = rot[np.argmin(err)]
    assert np.allclose(best_r @ best_r.T, np.eye(3)) and np.linalg.det(best_r) > 0
    cost = ((t[1:, None] - (g @ best_r.T)[None, 1:]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    ti, gi = np.r_[0, rows + 1], np.r_[0, cols + 1]
    r = A.kabsch(g[gi], t[ti])
    return float(np.sqrt(np.mean(np.sum((g[gi] @ r.T - t[ti]) ** 2, axis=1))))


def test_paper_subset_branch_equals_the_procedure_written_as_loops():
    # unrelated random environments (no distance ties): the subset is exactly O* + 7 nearest
    rng = np.random.default_rng(8)
    for _ in range(3):
        t, g = _random_env(rng, 11), _random_env(rng, 11)
        a = A.align_paper(t, g)
        assert a.method == "paper/subset+hungarian"
        assert a.rmsd == pytest.approx(_paper_by_brute_force(t.coords, g.coords), abs=1e-9)


@pytest.mark.parametrize("n", [6, 15])
def test_best_uses_proper_rotations_by_default(n):
    rng = np.random.default_rng(9 + n)
    t = _random_env(rng, n)
    gm, _, _ = _mirror(t, rng)
    a = A.align_best(t, gm)
    assert not a.is_reflection
    assert a.rmsd > 0.05  # a random environment is chiral
    assert np.linalg.det(A.align_paper(t, gm).rotation) > 0


def test_best_small_mirror_image_recovers_every_pair():
    rng = np.random.default_rng(11)
    t = _random_env(rng, 7)
    gm, r, p = _mirror(t, rng)
    a = A.align_best(t, gm, allow_reflection=True)
    assert a.rmsd < 1e-6 and a.is_reflection
    assert a.n_matched == t.n_atoms
    np.testing.assert_array_equal(p[a.perm], np.arange(t.n_atoms))
    np.testing.assert_allclose(a.aligned, t.coords, atol=1e-6)


def test_computed_proper_rotations_are_never_called_reflections():
    # det of a computed rotation is 1 up to rounding (either side of 1): is_reflection asks det < 0
    rng = np.random.default_rng(12)
    t = _random_env(rng, 6)
    for _ in range(24):
        g, _, _ = _mirror(t, rng, reflect=False)
        a = A.align_paper(t, g)
        assert a.rmsd < 1e-6 and not a.is_reflection


def test_best_finds_a_one_neighbour_target_among_atoms_the_paper_subset_leaves_out():
    # target: O* and one Si at 1.6 Å.  Generated: seven atoms at 1.0-1.2 Å (the paper's subset of seven
    # nearest), the only atom at 1.6 Å eighth nearest, opposite the 1.2 Å atom, and four far atoms.
    # The paper pairs the Si with the 1.2 Å atom (RMSD 0.4 / sqrt 2 over O* and one pair); align_best's
    # subset widened by one atom holds the 1.6 Å atom, which fits exactly.
    t = _env([[0, 0, 0], [1.6, 0, 0]])
    near = [[1.2, 0, 0], [0, 1.0, 0], [0, 0, 1.05], [0, -1.1, 0], [0, 0, -1.12], [0.7, 0.72, 0.1], [0.1, -0.75, 0.75]]
    far = [[3.5, 1, 0], [1, 3.6, 0], [0, 1, 3.7], [-1, -1, -3.8]]
    g = _env([[0, 0, 0], *near, [-1.6, 0, 0], *far])
    assert A.align_paper(t, g).rmsd == pytest.approx(0.4 / np.sqrt(2), abs=1e-9)
    a = A.align_best(t, g)
    assert a.rmsd < 1e-9
    assert a.perm[1] == 8
