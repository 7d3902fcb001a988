"""Nearest neighbours among spectra, and the distance to the training set by k nearest neighbours:
the one implementation behind template matching (:mod:`s2s.retrieval.template`), the
out-of-distribution score (:mod:`s2s.retrieval.ood`) and the spectral manifold
(:mod:`s2s.studies.manifold`).

Points are rows of an (N, D) array: spectra on the 200-point grid (unit-area intensities, 1/eV)
or the coordinates of an embedding (arbitrary units).  The search is :func:`nearest_by_mse`
(BLAS screen, exact re-scoring, ties to the lower reference index; group exclusion, group =
structure id), which returns ``MSE = mean((q - r)^2)`` over the D components.
Two distances follow from it:

* ``metric="rms"`` - the RMS difference ``sqrt(MSE)`` (for unit-area spectra: intensity units
  of 1/eV); the OOD score's distance.
* ``metric="euclidean"`` - the Euclidean distance ``sqrt(D * MSE)`` (same units as the points);
  the manifold's distance.

*Leave one structure out* (LOSO): the sites of one structure have near-identical spectra, so a
training point's distance to the training set is taken to the points of *other* structures
(:func:`loso_distance`); that distribution calibrates both the OOD percentile and the manifold
threshold.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

#: Target working-set size (bytes) of one (chunk, R) block of the MSE matrix.
_CHUNK_BYTES = 32 * 2**20
#: Extra candidates re-scored exactly after the fast (expanded-square) screen.
_RESCORE_EXTRA = 4


def as_spectra(x: ArrayLike, name: str) -> np.ndarray:
    """``x`` as a finite (n_spectra, n_grid) float64 array; ValueError (naming ``name``) otherwise."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_spectra, n_grid), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def _group_codes(query_groups, reference_groups, m: int, r: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer codes of the groups (shared code book), or None when no exclusion is asked for."""
    if query_groups is None and reference_groups is None:
        return None
    if query_groups is None or reference_groups is None:
        raise ValueError("nearest_by_mse: give both query_groups and reference_groups, or neither")
    qg = np.asarray(query_groups)
    rg = np.asarray(reference_groups)
    if qg.shape != (m,):
        raise ValueError(f"nearest_by_mse: query_groups must have shape ({m},), got {qg.shape}")
    if rg.shape != (r,):
        raise ValueError(f"nearest_by_mse: reference_groups must have shape ({r},), got {rg.shape}")
    numeric = all(np.issubdtype(a.dtype, np.number) or a.dtype == bool for a in (qg, rg))
    both = np.concatenate([qg, rg]) if numeric else np.concatenate([qg.astype(str), rg.astype(str)])
    _, codes = np.unique(both, return_inverse=True)
    codes = codes.reshape(-1)
    return codes[:m], codes[m:]


def nearest_by_mse(
    query_spectra: ArrayLike,
    reference_spectra: ArrayLike,
    query_groups: ArrayLike | None = None,
    reference_groups: ArrayLike | None = None,
    k: int = 1,
    *,
    chunk_bytes: int = _CHUNK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """The k references with the smallest MSE to each query, excluding the query's own group.

    Parameters
    ----------
    query_spectra : (M, G) intensities on the common grid (G = 200 for s2s spectra).
    reference_spectra : (R, G) the template database (the training split).
    query_groups, reference_groups : (M,) and (R,) labels (e.g. structure ids); a reference
        whose group equals the query's group is never returned (paper: no pairings between
        sites of the same material).  Pass both as None to disable the exclusion.
    k : number of neighbours.

    Returns
    -------
    (index, mse) : index into ``reference_spectra`` and ``mean((q - r)**2)`` over the grid
        (units of intensity squared), best first; shape (M,) for ``k == 1``, else (M, k).
        Exact ties in MSE are broken by the lower reference index (guaranteed while at most
        k + 4 references tie for a query).

    The MSE matrix is computed in row chunks as ``(|q|^2 + |r|^2 - 2 q.r) / G`` (one matrix
    product per chunk); the best ``k + 4`` candidates per query are then re-scored exactly
    as ``mean((q - r)**2)``, so the returned MSEs carry no cancellation error.

    Raises ValueError on bad shapes, NaN/inf, or when a query has fewer than ``k``
    references outside its group.
    """
    q = as_spectra(query_spectra, "query_spectra")
    ref = as_spectra(reference_spectra, "reference_spectra")
    m, g = q.shape
    r = ref.shape[0]
    if ref.shape[1] != g:
        raise ValueError(f"nearest_by_mse: query_spectra has {g} grid points but reference_spectra has {ref.shape[1]}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"nearest_by_mse: k must be a positive integer, got {k!r}")
    if r < k:
        raise ValueError(f"nearest_by_mse: need at least k={k} reference spectra, got {r}")
    codes = _group_codes(query_groups, reference_groups, m, r)

    n_cand = min(r, k + _RESCORE_EXTRA)
    out_idx = np.empty((m, k), dtype=np.int64)
    out_mse = np.empty((m, k), dtype=np.float64)
    rn = np.einsum("ij,ij->i", ref, ref)
    step = max(1, int(chunk_bytes // (8 * max(r, 1))))
    for start in range(0, m, step):
        qc = q[start : start + step]
        c = qc.shape[0]
        d = qc @ ref.T
        d *= -2.0
        d += np.einsum("ij,ij->i", qc, qc)[:, None]
        d += rn[None, :]
        if codes is not None:
            same = codes[0][start : start + c, None] == codes[1][None, :]
            n_ok = r - same.sum(axis=1)
            if np.any(n_ok < k):
                bad = start + int(np.argmax(n_ok < k))
                raise ValueError(
                    f"nearest_by_mse: query {bad} (group {np.asarray(query_groups)[bad]!r}) has only "
                    f"{int(n_ok[bad - start])} reference(s) outside its own group; need k={k}"
                )
            d[same] = np.inf
        if n_cand < r:
            cand = np.argpartition(d, n_cand - 1, axis=1)[:, :n_cand]
        else:
            cand = np.tile(np.arange(r), (c, 1))
        # exact re-scoring of the few candidates
        exact = np.mean((qc[:, None, :] - ref[cand]) ** 2, axis=2)
        if codes is not None:
            exact[codes[0][start : start + c, None] == codes[1][cand]] = np.inf
        order = np.lexsort((cand, exact), axis=1)[:, :k]
        out_idx[start : start + c] = np.take_along_axis(cand, order, axis=1)
        out_mse[start : start + c] = np.take_along_axis(exact, order, axis=1)
    if k == 1:
        return out_idx[:, 0], out_mse[:, 0]
    return out_idx, out_mse


Metric = Literal["rms", "euclidean"]
METRICS: tuple[str, ...] = ("rms", "euclidean")


def nearest(
    query: ArrayLike,
    reference: ArrayLike,
    k: int = 1,
    query_groups: ArrayLike | None = None,
    reference_groups: ArrayLike | None = None,
    *,
    metric: Metric = "rms",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest references of each query point, best first.

    Parameters
    ----------
    query : (M, D) points; reference : (R, D) points (the training set).
    k : number of neighbours (at least ``k`` references outside each query's group needed).
    query_groups, reference_groups : (M,) and (R,) labels (structure ids), both or neither; a
        reference of the query's own group is never returned.
    metric : ``"rms"`` (``sqrt(MSE)``) or ``"euclidean"`` (``sqrt(D * MSE)``).

    Returns
    -------
    (distance, index) : both (M, k); distance in the units of the points (see module docstring),
        index into ``reference``.
    """
    if metric not in METRICS:
        raise ValueError(f"neighbours: metric must be one of {METRICS}, got {metric!r}")
    ref = np.asarray(reference, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if ref.ndim != 2 or q.ndim != 2 or ref.shape[1] != q.shape[1]:
        raise ValueError(f"neighbours: need (M, D) query and (R, D) reference arrays, got {q.shape} and {ref.shape}")
    idx, mse = nearest_by_mse(q, ref, query_groups, reference_groups, k=k)
    idx = np.asarray(idx).reshape(len(q), -1)
    mse = np.asarray(mse).reshape(len(q), -1)
    factor = ref.shape[1] if metric == "euclidean" else 1
    return np.sqrt(np.clip(mse, 0.0, None) * factor), idx


def knn_distance(
    query: ArrayLike,
    reference: ArrayLike,
    k: int,
    query_groups: ArrayLike | None = None,
    reference_groups: ArrayLike | None = None,
    *,
    metric: Metric = "rms",
) -> np.ndarray:
    """(M,) mean distance of each query point to its ``k`` nearest references (excluding
    references of the query's own group when groups are given); see :func:`nearest`."""
    d, _ = nearest(query, reference, k, query_groups, reference_groups, metric=metric)
    return d.mean(axis=1)


def loso_distance(points: ArrayLike, groups: ArrayLike, k: int, *, metric: Metric = "rms") -> np.ndarray:
    """(R,) leave-one-structure-out k-NN distance of each training point (R, D) to the training
    points of the other groups (structures); in the order of ``points``."""
    return knn_distance(points, points, k, groups, groups, metric=metric)


__all__ = ["METRICS", "Metric", "as_spectra", "knn_distance", "loso_distance", "nearest", "nearest_by_mse"]
