"""The spectral manifold (notebook 06, paper Fig. 6a): where spectra lie relative to the training set.

* :func:`composition_labels` - composition x of SiO_x per record as a string key ("2.00"),
  from ``meta['composition_x']`` (amorphous set), else ``record.x``, else ``"unknown"``.
* :func:`umap_embedding` - 2-D UMAP (umap-learn) of spectra with a fixed ``random_state``.
* :func:`nearest_distance` - Euclidean distance of each query point to its nearest reference
  point, optionally excluding references of the query's own group (structure).
* :func:`distance_to_training` - per label (composition): mean / median nearest-training
  distance and the fraction of points "inside" the training manifold, i.e. no farther from
  the training set than ``quantile`` (95 %) of the training points are from *other*
  training structures (leave-one-structure-out).  Works in any space: the 2-D embedding
  (arbitrary units) or the 200-point spectra themselves (``scale=1/sqrt(200)`` gives the
  RMS intensity difference of unit-area spectra; :mod:`s2s.retrieval.ood` has the k-NN
  percentile score that ``s2s predict`` uses).

Both distances come from :mod:`s2s.retrieval.neighbours` (``metric="euclidean"``, k = 1), the
k-NN search shared with the OOD score.

All distances in Å (or the units of the space given).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from s2s.retrieval.neighbours import loso_distance, nearest

UNKNOWN = "unknown"


def composition_labels(records: Sequence[Any], decimals: int = 2) -> list[str]:
    """Composition x of SiO_x of each record as a string with ``decimals`` decimals ("0.25").

    Taken from ``record.meta['composition_x']`` when present and finite (the amorphous set's
    nominal composition), else from ``record.x`` (O/Si of the formula), else ``"unknown"``.
    """
    out = []
    for r in records:
        x = (getattr(r, "meta", None) or {}).get("composition_x")
        try:
            x = float(x) if x is not None else math.nan
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            x = float(getattr(r, "x", math.nan))
        out.append(f"{x:.{decimals}f}" if math.isfinite(x) else UNKNOWN)
    return out


def umap_embedding(
    points: ArrayLike,
    *,
    random_state: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
) -> np.ndarray:
    """(N, 2) UMAP embedding (umap-learn) of ``points`` (N, D), e.g. spectra on the grid.

    ``random_state`` makes the run reproducible on one machine (umap-learn then runs single
    threaded); coordinates can still differ across machines/library versions.
    ``n_neighbors`` is capped at N - 1.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"umap_embedding: need a 2-D array with at least 3 rows, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("umap_embedding: points contain NaN/inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state; numba/sklearn chatter
        import umap

        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=int(min(n_neighbors, x.shape[0] - 1)),
            min_dist=min_dist,
            metric=metric,
            random_state=int(random_state),
        )
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def nearest_distance(
    reference: ArrayLike,
    query: ArrayLike,
    reference_groups: ArrayLike | None = None,
    query_groups: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query point to its nearest reference point, and its index.

    ``reference`` (R, D), ``query`` (M, D); returns (M,) distances (units of the points) and (M,)
    indices into ``reference``.  With groups given (both or neither), a reference of the query's
    own group is skipped (leave-one-structure-out).  :func:`s2s.retrieval.neighbours.nearest`
    with ``metric="euclidean"``: distance = sqrt(D * MSE), exact re-scoring.
    """
    d, idx = nearest(query, reference, 1, query_groups, reference_groups, metric="euclidean")
    return d[:, 0], idx[:, 0]


@dataclass(frozen=True)
class ManifoldReport:
    """Result of :func:`distance_to_training`.

    threshold : nearest-other-structure distance of training points at ``quantile``.
    train_distance : (R,) leave-one-structure-out nearest distances of the training points.
    query_distance : (M,) nearest-training distance of each query point.
    per_label : label -> {"n", "mean_distance", "median_distance", "mean_over_threshold",
        "inside_fraction"}; ``inside`` = distance <= threshold.
    """

    threshold: float
    quantile: float
    train_distance: np.ndarray
    query_distance: np.ndarray
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)

    def inside_labels(self, min_fraction: float = 0.5) -> list[str]:
        """Labels with at least ``min_fraction`` of their points inside the training manifold."""
        return [k for k, v in self.per_label.items() if v["inside_fraction"] >= min_fraction]


def distance_to_training(
    train_points: ArrayLike,
    train_groups: ArrayLike,
    query_points: ArrayLike,
    query_labels: Sequence[str],
    quantile: float = 0.95,
    scale: float = 1.0,
) -> ManifoldReport:
    """How far query points (e.g. amorphous spectra, per composition) lie from the training set.

    Each training point's distance to the nearest training point of *another* structure
    (``train_groups``) gives the spread of the training manifold; its ``quantile`` is the
    threshold below which a query point counts as inside.  ``scale`` multiplies every
    distance (e.g. ``1/sqrt(200)`` turns Euclidean distances of spectra into RMS differences).
    Labels are reported in sorted order.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"distance_to_training: quantile must be in (0, 1], got {quantile}")
    train = np.asarray(train_points, dtype=np.float64)
    query = np.asarray(query_points, dtype=np.float64)
    groups = np.asarray(train_groups)
    labels = np.asarray(list(query_labels), dtype=object)
    if groups.shape != (train.shape[0],):
        raise ValueError(f"distance_to_training: train_groups must have shape ({train.shape[0]},), got {groups.shape}")
    if labels.shape != (query.shape[0],):
        raise ValueError(f"distance_to_training: {labels.shape[0]} labels for {query.shape[0]} query points")
    if np.unique(groups).size < 2:
        raise ValueError("distance_to_training: need training points of at least 2 groups (structures)")
    d_train = loso_distance(train, groups, 1, metric="euclidean") * scale
    d_query, _ = nearest_distance(train, query)
    d_query = d_query * scale
    thr = float(np.quantile(d_train, quantile))
    per = {}
    for lab in sorted(set(labels.tolist()), key=str):
        d = d_query[labels == lab]
        per[str(lab)] = {
            "n": int(d.size),
            "mean_distance": float(d.mean()),
            "median_distance": float(np.median(d)),
            "mean_over_threshold": float(d.mean() / thr) if thr > 0 else math.inf,
            "inside_fraction": float(np.mean(d <= thr)),
        }
    return ManifoldReport(thr, float(quantile), d_train, d_query, per)
