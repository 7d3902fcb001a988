"""Alignment of a generated environment onto its target (paper, Methods).

The EGNN output has no fixed orientation and no fixed atom order, so before any
coordinate metric the generated environment is rotated and re-indexed onto the
target.  Conventions used throughout this module:

* Coordinates are in Å.  Both environments are taken **relative to their atom 0**
  (the excited O; ``coords - coords[0]``, a no-op for well-formed environments).
  Rotations are about the excited O, which stays at the origin.  We do **not**
  re-centre on the centroid: the excited O is the physical reference of the
  problem (the model is equivariant about it), so only a rotation is fitted.
* The excited O is always paired with itself (target 0 <-> generated 0); only
  the other atoms are permuted.  It sits at the origin in both sets, so it adds
  nothing to the Kabsch cross-covariance but it is counted as one matched pair
  (with zero distance) in :attr:`Alignment.rmsd`.
* ``kabsch(P, Q)`` returns R with ``P @ R.T ~= Q`` (R rotates P onto Q).  By
  default R is a proper rotation (det +1), the standard Kabsch algorithm of the
  paper; ``allow_reflection=True`` also allows det -1 (the EGNN is
  E(3)-equivariant, so a spectrum cannot fix chirality).

Paper procedure (:func:`align_paper`): with N target atoms,

* N < 9 (and the generated environment also < 9 atoms): every pairing of the
  non-excited atoms is tried ((N-1)! <= 5040 pairings, batched Kabsch) and the
  minimum-RMSD one is kept.  This is the paper's "all N!" search with the
  excited O fixed to itself, and it is the exact optimum over pairings.
* N >= 9: in each structure the subset "excited O + 7 nearest atoms to the
  origin" (8 atoms) is taken; all pairings of the subsets with the excited O
  mapped to itself (7! = 5040; the paper counts 8!) are scored by Kabsch; the
  generated structure is rotated by the best rotation; the Hungarian algorithm
  (squared-distance cost, excited O fixed) pairs the full sets; Kabsch on that
  pairing gives the final rotation.

Unequal atom counts (N target, M generated): the paper samples with the
target's atom count so N == M normally.  Otherwise pairings are injective maps
from the smaller set into the larger one, min(N, M) pairs are matched, the RMSD
is over those matched pairs only, and unmatched atoms are reported (``perm`` is
-1 for unmatched target atoms); missing/extra atoms are penalised by the
coordination-number metric, not by the RMSD.

:func:`align_best` adds rotation candidates (top-k subset rotations, a wider
generated subset, optional reflections), species-aware assignment and ICP-like
iteration (Hungarian <-> Kabsch until the pairing is stable), and returns the
minimum-RMSD candidate, the paper's result included, so it is never worse.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import linear_sum_assignment

from s2s.environment import Environment

#: Below this many atoms the paper searches all pairings exhaustively.
EXHAUSTIVE_MAX_ATOMS = 8
#: Size of the subset (excited O + 7 nearest) used for N >= 9.
SUBSET_SIZE = 8
#: Rows of candidate pairings scored per batched-SVD call (bounds memory).
CHUNK = 20_000


@dataclass(frozen=True)
class Alignment:
    """Result of aligning a generated environment (M atoms) onto a target (N atoms).

    Attributes
    ----------
    rotation : (3, 3) matrix R; aligned generated coords are ``g @ R.T`` (Å, about the excited O).
    perm : (N,) int; ``perm[i]`` is the generated atom matched to target atom i, -1 if unmatched.
    aligned : (N, 3) rotated generated coords in target order (Å); NaN rows where unmatched.
    rmsd : root-mean-square distance (Å) over the matched pairs (the excited-O pair included).
    n_matched : number of matched pairs, min(N, M).
    generated_rotated : (M, 3) all generated coords rotated, in generated order (Å).
    method : which procedure/candidate produced this alignment.
    """

    rotation: np.ndarray
    perm: np.ndarray
    aligned: np.ndarray
    rmsd: float
    n_matched: int
    generated_rotated: np.ndarray
    method: str = "paper"

    @property
    def is_reflection(self) -> bool:
        return bool(np.linalg.det(self.rotation) < 0)


# ----------------------------------------------------------------------------- Kabsch


def _rotation_from_h(h: np.ndarray, allow_reflection: bool) -> tuple[np.ndarray, np.ndarray]:
    """Batched Kabsch core.  h: (B, 3, 3) = sum_i p_i q_i^T.

    Returns R (B, 3, 3) maximising tr(R h) (so R p ~= q) and that maximum (B,).
    """
    u, s, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    if allow_reflection:
        return v @ ut, s.sum(axis=-1)
    d = np.sign(np.linalg.det(v @ ut))
    d = np.where(d == 0, 1.0, d)
    v = v.copy()
    v[..., :, 2] *= d[..., None]
    return v @ ut, s[..., 0] + s[..., 1] + d * s[..., 2]


def kabsch_batched(P: np.ndarray, Q: np.ndarray, allow_reflection: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Kabsch for a batch of paired point sets, about the origin (no centring).

    P, Q: (B, n, 3) (either may also be (n, 3) and is broadcast), Å.
    Returns rotations R (B, 3, 3) with ``P[b] @ R[b].T ~= Q[b]`` and the minimal
    RMSD (B,) in Å over the n pairs.
    """
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if P.shape[-1] != 3 or Q.shape[-1] != 3 or P.shape[-2] != Q.shape[-2]:
        raise ValueError(f"kabsch_batched: expected P, Q of shape (B, n, 3); got {P.shape}, {Q.shape}")
    n = P.shape[-2]
    P, Q = np.broadcast_arrays(P, Q)
    h = np.einsum("...ni,...nj->...ij", P, Q)
    r, trace = _rotation_from_h(h, allow_reflection)
    sq = (P**2).sum(axis=(-1, -2)) + (Q**2).sum(axis=(-1, -2)) - 2.0 * trace
    return r, np.sqrt(np.clip(sq, 0.0, None) / max(n, 1))


def kabsch(P: np.ndarray, Q: np.ndarray, allow_reflection: bool = False) -> np.ndarray:
    """Rotation R (3, 3) minimising sum_i |R p_i - q_i|^2, i.e. ``P @ R.T ~= Q``.

    P, Q: (n, 3) paired points in Å.  Rotation is about the origin (the excited
    O); the sets are *not* centred on their centroids.  ``allow_reflection``
    permits det(R) = -1 (default: proper rotation, as in the paper).
    """
    P = np.asarray(P, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    if P.ndim != 2 or P.shape != Q.shape or P.shape[1] != 3:
        raise ValueError(f"kabsch: expected P and Q of the same shape (n, 3); got {P.shape}, {Q.shape}")
    return kabsch_batched(P[None], Q[None], allow_reflection)[0][0]


# ----------------------------------------------------------------------------- helpers


@lru_cache(maxsize=64)
def _injections(m: int, k: int) -> np.ndarray:
    """All ordered k-tuples of distinct indices from range(m): (m!/(m-k)!, k) int array."""
    if k == 0:
        return np.zeros((1, 0), dtype=np.int64)
    arr = np.array(list(itertools.permutations(range(m), k)), dtype=np.int64)
    arr.setflags(write=False)
    return arr


def _relative(env: Environment, name: str) -> np.ndarray:
    if not isinstance(env, Environment):
        raise TypeError(f"align: {name} must be an s2s.environment.Environment, got {type(env).__name__}")
    c = env.coords
    if not np.all(np.isfinite(c)):
        raise ValueError(f"align: {name}.coords contains NaN/inf")
    return c - c[0]


def _nearest(coords: np.ndarray, k: int, tie_tol: float = 0.0, max_extra: int = 0) -> np.ndarray:
    """Indices (>= 1) of the k atoms nearest to the origin (stable order for ties).

    With ``tie_tol`` > 0, atoms whose distance is within ``tie_tol`` (Å) of the
    k-th distance are appended too (at most ``max_extra`` of them).
    """
    d = np.linalg.norm(coords[1:], axis=1)
    order = np.argsort(d, kind="stable")
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if tie_tol > 0 and max_extra > 0 and len(order) > k:
        kth = d[order[k - 1]]
        extra = order[k:][d[order[k:]] <= kth + tie_tol][:max_extra]
        return np.concatenate([order[:k], extra]).astype(np.int64) + 1
    return (order[:k] + 1).astype(np.int64)


def _det3(m: np.ndarray) -> np.ndarray:
    """Determinants of a stack of 3x3 matrices (explicit formula, faster than LAPACK)."""
    return (
        m[..., 0, 0] * (m[..., 1, 1] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 1])
        - m[..., 0, 1] * (m[..., 1, 0] * m[..., 2, 2] - m[..., 1, 2] * m[..., 2, 0])
        + m[..., 0, 2] * (m[..., 1, 0] * m[..., 2, 1] - m[..., 1, 1] * m[..., 2, 0])
    )


def _fast_trace(h: np.ndarray, allow_reflection: bool) -> np.ndarray:
    """Optimal Kabsch trace max_R tr(R h) for a stack of 3x3 h, without an SVD.

    The singular values of h are the square roots of the eigenvalues of h^T h,
    found in closed form (trigonometric solution of the symmetric 3x3 cubic).
    Accurate to ~1e-5 Å^2 in the trace; used only to rank candidate pairings,
    which are then re-scored exactly.
    """
    a = np.swapaxes(h, -1, -2) @ h
    p1 = a[..., 0, 1] ** 2 + a[..., 0, 2] ** 2 + a[..., 1, 2] ** 2
    q = (a[..., 0, 0] + a[..., 1, 1] + a[..., 2, 2]) / 3.0
    p2 = (a[..., 0, 0] - q) ** 2 + (a[..., 1, 1] - q) ** 2 + (a[..., 2, 2] - q) ** 2 + 2.0 * p1
    p = np.sqrt(p2 / 6.0)
    safe_p = np.where(p > 0, p, 1.0)
    b = (a - q[..., None, None] * np.eye(3)) / safe_p[..., None, None]
    r = np.clip(_det3(b) / 2.0, -1.0, 1.0)
    phi = np.arccos(r) / 3.0
    e1 = q + 2.0 * p * np.cos(phi)
    e3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    e2 = 3.0 * q - e1 - e3
    s1, s2, s3 = (np.sqrt(np.clip(e, 0.0, None)) for e in (e1, e2, e3))
    if allow_reflection:
        return s1 + s2 + s3
    d = np.where(_det3(h) < 0, -1.0, 1.0)
    return s1 + s2 + d * s3


def _search_pairings(
    t: np.ndarray,
    g: np.ndarray,
    t_idx: np.ndarray,
    g_idx: np.ndarray,
    allow_reflection: bool,
    top: int = 1,
    rescore: int = 32,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Score every injective pairing between target atoms t_idx and generated atoms g_idx.

    The smaller index set is mapped injectively into the larger one.  All
    pairings are ranked by the closed-form optimal Kabsch RMSD (chunked,
    vectorised); the best ``top + rescore`` are re-scored exactly with SVD
    Kabsch.  Returns, for the ``top`` best pairings (ascending RMSD over the
    pairs + the excited O): rotations (top, 3, 3), rmsd (top,), target indices
    (top, k), generated indices (top, k).
    """
    a, b = len(t_idx), len(g_idx)
    k = min(a, b)
    inj = _injections(max(a, b), k)
    t2 = np.sum(t**2, axis=1)
    g2 = np.sum(g**2, axis=1)
    keep_n = top + rescore
    cand_ti, cand_gi, cand_score = [], [], []
    for start in range(0, len(inj), CHUNK):
        sel = inj[start : start + CHUNK]
        if a <= b:
            ti = np.broadcast_to(t_idx, sel.shape)
            gi = g_idx[sel]
            h = np.einsum("bni,nj->bij", g[gi], t[t_idx])
        else:
            ti = t_idx[sel]
            gi = np.broadcast_to(g_idx, sel.shape)
            h = np.einsum("ni,bnj->bij", g[g_idx], t[ti])
        sq = g2[gi].sum(axis=1) + t2[ti].sum(axis=1) - 2.0 * _fast_trace(h, allow_reflection)
        keep = np.argsort(sq, kind="stable")[:keep_n]
        cand_ti.append(np.asarray(ti)[keep])
        cand_gi.append(np.asarray(gi)[keep])
        cand_score.append(sq[keep])
    ti = np.concatenate(cand_ti)
    gi = np.concatenate(cand_gi)
    keep = np.argsort(np.concatenate(cand_score), kind="stable")[:keep_n]
    ti, gi = ti[keep], gi[keep]
    r, rmsd_pairs = kabsch_batched(g[gi], t[ti], allow_reflection)
    rmsd = rmsd_pairs * np.sqrt(k / (k + 1))  # count the excited-O pair (distance 0)
    order = np.argsort(rmsd, kind="stable")[:top]
    return r[order], rmsd[order], ti[order], gi[order]


def _finish(
    t: np.ndarray,
    g: np.ndarray,
    t_idx: np.ndarray,
    g_idx: np.ndarray,
    allow_reflection: bool,
    method: str,
) -> Alignment:
    """Kabsch on a given pairing (excited O added) and build the Alignment."""
    ti = np.concatenate([[0], t_idx]).astype(np.int64)
    gi = np.concatenate([[0], g_idx]).astype(np.int64)
    r = kabsch(g[gi], t[ti], allow_reflection)
    return _build(t, g, ti, gi, r, method)


def _build(t, g, ti, gi, r, method) -> Alignment:
    n = t.shape[0]
    g_rot = g @ r.T
    perm = np.full(n, -1, dtype=np.int64)
    perm[ti] = gi
    aligned = np.full((n, 3), np.nan)
    aligned[ti] = g_rot[gi]
    rmsd = float(np.sqrt(np.mean(np.sum((t[ti] - g_rot[gi]) ** 2, axis=1))))
    return Alignment(
        rotation=r,
        perm=perm,
        aligned=aligned,
        rmsd=rmsd,
        n_matched=int(len(ti)),
        generated_rotated=g_rot,
        method=method,
    )


def _hungarian(
    t: np.ndarray,
    g_rot: np.ndarray,
    t_species: np.ndarray | None = None,
    g_species: np.ndarray | None = None,
    penalty: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian pairing of atoms 1.. of both sets (excited O fixed), squared-distance cost.

    With species given, ``penalty`` (Å^2) is added for each species mismatch.
    Rectangular costs match min(N, M) - 1 atoms.  Returns target and generated indices.
    """
    cost = ((t[1:, None, :] - g_rot[None, 1:, :]) ** 2).sum(axis=-1)
    if penalty and t_species is not None and g_species is not None:
        cost = cost + penalty * (t_species[1:, None] != g_species[None, 1:])
    rows, cols = linear_sum_assignment(cost)
    return rows + 1, cols + 1


# ----------------------------------------------------------------------------- paper


def align_paper(
    target: Environment,
    generated: Environment,
    allow_reflection: bool = False,
    tie_tol: float = 1e-6,
    max_tied: int = 2,
) -> Alignment:
    """The paper's alignment (Methods, "Evaluation of coordination environments").

    Both environments are taken relative to their atom 0 (the excited O), which is
    paired with itself.  If both have fewer than 9 atoms, all pairings of the
    remaining atoms are scored with (batched) Kabsch and the best one is kept.
    Otherwise: subsets "excited O + 7 nearest atoms to the origin" in each
    structure; all pairings of the subsets with the excited O mapped to itself
    (7! = 5040 for 8-atom subsets; the paper writes 8!); rotate the generated
    structure by the best subset rotation; Hungarian on the full sets
    (squared-distance cost in Å^2); Kabsch again on that full pairing.

    Ties: "the 7 nearest" is ill-defined when several atoms are equidistant at
    the subset boundary (common in symmetric crystals, e.g. pairs related by a
    2-fold axis through the excited O), and the subsets would then depend on the
    atom order.  Generated atoms within ``tie_tol`` (Å) of the 7th-nearest
    distance are therefore all admitted as candidates (at most ``max_tied``
    extra; the 7 target subset atoms are mapped injectively into them).  With
    no ties this is exactly the paper's procedure.  ``tie_tol=0`` disables it.

    Returns an :class:`Alignment`; its ``rmsd`` (Å) is over the matched pairs,
    min(N, M) of them when the atom counts differ (see module docstring).
    """
    t = _relative(target, "target")
    g = _relative(generated, "generated")
    n, m = len(t), len(g)
    if min(n, m) == 1:
        return _build(t, g, np.array([0]), np.array([0]), np.eye(3), "paper")
    if max(n, m) <= EXHAUSTIVE_MAX_ATOMS:
        r, _, ti, gi = _search_pairings(t, g, np.arange(1, n), np.arange(1, m), allow_reflection, top=1)
        return _finish(t, g, ti[0], gi[0], allow_reflection, "paper/exhaustive")
    ts = _nearest(t, SUBSET_SIZE - 1)
    gs = _nearest(g, SUBSET_SIZE - 1, tie_tol, max_tied)
    r, _, _, _ = _search_pairings(t, g, ts, gs, allow_reflection, top=1)
    ti, gi = _hungarian(t, g @ r[0].T)
    return _finish(t, g, ti, gi, allow_reflection, "paper/subset+hungarian")


# ----------------------------------------------------------------------------- best


def _icp(
    t: np.ndarray,
    g: np.ndarray,
    r: np.ndarray,
    allow_reflection: bool,
    method: str,
    species: tuple[np.ndarray, np.ndarray] | None = None,
    penalty: float = 0.0,
    max_iter: int = 50,
) -> Alignment:
    """Alternate Hungarian (given R) and Kabsch (given the pairing) until the pairing is stable.

    Without a species penalty each step cannot increase the RMSD.
    """
    prev = None
    best: Alignment | None = None
    ts, gs = species if species is not None else (None, None)
    for _ in range(max_iter):
        ti, gi = _hungarian(t, g @ r.T, ts, gs, penalty)
        key = (tuple(ti), tuple(gi))
        if key == prev:
            break
        prev = key
        a = _finish(t, g, ti, gi, allow_reflection, method)
        r = a.rotation
        if best is None or a.rmsd < best.rmsd:
            best = a
    assert best is not None
    return best


def _distinct(rotations: np.ndarray, k: int, min_angle_deg: float = 5.0) -> list[np.ndarray]:
    """Greedily pick up to k rotations that differ pairwise by > min_angle_deg."""
    chosen: list[np.ndarray] = []
    cos_min = np.cos(np.deg2rad(min_angle_deg))
    for r in rotations:
        ok = True
        for c in chosen:
            if np.linalg.det(r) * np.linalg.det(c) < 0:
                continue
            cos = (np.trace(r @ c.T) - 1.0) / 2.0
            if cos > cos_min:
                ok = False
                break
        if ok:
            chosen.append(r)
            if len(chosen) >= k:
                break
    return chosen


def align_best(
    target: Environment,
    generated: Environment,
    allow_reflection: bool = False,
    n_rotations: int = 8,
    subset_slack: int = 1,
    species_penalty: float = 100.0,
    max_iter: int = 50,
) -> Alignment:
    """An alignment never worse (in RMSD) than :func:`align_paper`.

    Candidates: the paper's result, then ICP refinement (Hungarian <-> Kabsch,
    excited O fixed, until the pairing is stable) started from (i) the paper's
    rotation, (ii) the ``n_rotations`` best mutually distinct rotations of the
    subset search, where the generated subset is widened by ``subset_slack``
    atoms (robust to a swapped 7th/8th neighbour), each with species-blind
    and species-aware assignment (cost + ``species_penalty`` Å^2 per Si/O
    mismatch).  Small environments (< 9 atoms) already get the exact optimum
    from the paper's exhaustive search; only reflections can add to it.
    ``allow_reflection=True`` lets every step use improper rotations (a
    chirality-agnostic RMSD, natural for an E(3)-equivariant model).

    Returns the minimum-RMSD candidate; ``method`` names the winning one.
    """
    paper = align_paper(target, generated, allow_reflection=False)
    candidates = [paper]
    t = _relative(target, "target")
    g = _relative(generated, "generated")
    n, m = len(t), len(g)
    if min(n, m) == 1:
        return paper
    if max(n, m) <= EXHAUSTIVE_MAX_ATOMS:
        if allow_reflection:
            _, _, ti, gi = _search_pairings(t, g, np.arange(1, n), np.arange(1, m), True, top=1)
            candidates.append(_finish(t, g, ti[0], gi[0], True, "best/exhaustive+reflection"))
        return min(candidates, key=lambda a: a.rmsd)

    species = (target.species, generated.species)
    candidates.append(_icp(t, g, paper.rotation, allow_reflection, "best/icp(paper)", max_iter=max_iter))
    ts = _nearest(t, SUBSET_SIZE - 1)
    gs = _nearest(g, SUBSET_SIZE - 1 + subset_slack, 1e-6, 1)
    rots, _, _, _ = _search_pairings(t, g, ts, gs, allow_reflection, top=max(64, 8 * n_rotations))
    for j, r in enumerate(_distinct(rots, n_rotations)):
        candidates.append(_icp(t, g, r, allow_reflection, f"best/icp(subset#{j})", max_iter=max_iter))
        if species_penalty > 0:
            candidates.append(
                _icp(
                    t,
                    g,
                    r,
                    allow_reflection,
                    f"best/icp-species(subset#{j})",
                    species=species,
                    penalty=species_penalty,
                    max_iter=max_iter,
                )
            )
    return min(candidates, key=lambda a: a.rmsd)


def align(target: Environment, generated: Environment, method: str = "paper", **kwargs) -> Alignment:
    """Dispatch: ``method="paper"`` -> :func:`align_paper`, ``"best"`` -> :func:`align_best`."""
    if method == "paper":
        return align_paper(target, generated, **kwargs)
    if method == "best":
        return align_best(target, generated, **kwargs)
    raise ValueError(f"align: method must be 'paper' or 'best', got {method!r}")
