"""Distance to the training set by k nearest neighbours: the one implementation behind the
out-of-distribution score (:mod:`s2s.evaluation.ood`) and the spectral manifold
(:mod:`s2s.evaluation.manifold`).

Points are rows of an (N, D) array: spectra on the 200-point grid (unit-area intensities, 1/eV)
or the coordinates of an embedding (arbitrary units).  The search is
:func:`s2s.evaluation.template.nearest_by_mse` (BLAS screen, exact re-scoring, ties to the
lower reference index), which returns ``MSE = mean((q - r)^2)`` over the D components.
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

from s2s.evaluation.template import nearest_by_mse

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


__all__ = ["METRICS", "Metric", "knn_distance", "loso_distance", "nearest"]
