"""Picking one of K generated samples without the target: medoids and consensus.

* :func:`medoid`, :func:`medoid_index`, :func:`medoid_of_distances` - the consensus sample: the
  smallest mean aligned RMSD to the other K - 1 (:func:`s2s.ensembles.describe.pairwise_rmsd`);
* :func:`composition_key`, :func:`composition_medoid_index` - the medoid among the samples of the most
  frequent O fraction (what ``s2s predict`` lists first);
* :func:`screened_medoid_index` - the medoid among the samples the forward model likes;
* :func:`anchor_distances`, :func:`anchored_scores`, :func:`anchored_index` - the sample the retrieved
  training environments agree with;
* :func:`consensus_average` - the mean structure of K samples about one of them.

Distances in Å.  How these picks fare against the forward model's and a learned selector's:
:mod:`s2s.studies.best_of_k`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from s2s.ensembles.describe import pairwise_rmsd
from s2s.environment import Environment, O
from s2s.geometry.align import align
from s2s.geometry.shells import assign_shells


def medoid(samples: Sequence[Environment], method: str = "best") -> tuple[int, float]:
    """(index, mean aligned RMSD in Å to the others) of the medoid of K samples: the sample with the
    smallest mean ``method`` alignment RMSD (:func:`s2s.geometry.align.align`) to the others; a pair
    that cannot be aligned counts as 10^3 Å; ties go to the lower index (one sample: (0, 0.0))."""
    if len(samples) == 0:
        raise ValueError("medoid: no samples")
    if len(samples) == 1:
        return 0, 0.0
    return medoid_of_distances(pairwise_rmsd(samples, method=method))


def medoid_of_distances(d: np.ndarray) -> tuple[int, float]:
    """(index, mean distance in Å to the others) of the medoid of a (K, K) distance matrix (Å);
    non-finite entries count as 10^3 Å; ties go to the lower index (K = 1: (0, 0.0))."""
    d = np.where(np.isfinite(d), d, 1e3)
    if len(d) == 1:
        return 0, 0.0
    i = int(np.argmin(d.mean(axis=1)))
    return i, float(d[i].sum() / (len(d) - 1))


def medoid_index(samples: Sequence[Environment], method: str = "best") -> int:
    """Index of the medoid of K samples (:func:`medoid`)."""
    return medoid(samples, method)[0]


def composition_key(env: Environment) -> Fraction:
    """The O fraction of an environment as an exact fraction: two environments get the same key exactly
    when :func:`s2s.geometry.metrics.species_match` holds between them."""
    return Fraction(int(np.sum(env.species == O)), env.n_atoms)


def composition_medoid_index(samples: Sequence[Environment], distances: np.ndarray) -> int:
    """The medoid among the samples of the most frequent composition.

    The paper's species accuracy asks for the exact O fraction, so the pick first takes the
    composition most of the K samples agree on (:func:`composition_key`; the posterior mode, which
    maximises the chance of an exact match), then the sample of that composition with the smallest
    mean distance to the others of it (:func:`medoid_of_distances` on ``distances`` (K, K), Å,
    restricted to them).  Compositions tied in count: the one whose medoid has the smallest mean
    distance to all K samples (then the lower index).  Target-free and forward-model-free: a
    pure-model pick.  Returns an index into ``samples``.
    """
    d = np.asarray(distances, dtype=float)
    k = len(samples)
    if k == 0 or d.shape != (k, k):
        raise ValueError(f"composition_medoid_index: {k} samples and distances of shape {d.shape}")
    keys = [composition_key(e) for e in samples]
    counts: dict[Fraction, list[int]] = {}
    for i, c in enumerate(keys):
        counts.setdefault(c, []).append(i)
    top = max(len(v) for v in counts.values())
    full = np.where(np.isfinite(d), d, 1e3)
    best: tuple[float, int] | None = None
    for members in (v for v in counts.values() if len(v) == top):
        m = members[medoid_of_distances(d[np.ix_(members, members)])[0]]
        cand = (float(full[m].sum() / max(k - 1, 1)), m)
        if best is None or cand < best:
            best = cand
    return best[1]


def screened_medoid_index(scores: np.ndarray, distances: np.ndarray, keep: float = 0.5) -> int:
    """The medoid among the samples the forward model likes: of K samples with forward scores
    ``scores`` (K,) (MSE of the predicted to the input spectrum, lower is better; NaN = worst), keep the
    best ceil(``keep`` K) and return the index of their medoid under the (K, K) ``distances`` (Å)
    restricted to them (:func:`medoid_of_distances`).  ``keep`` = 1 is the medoid; 1/K the forward pick
    (ties to the lower index).  Target-free, a pure-model pick."""
    sc = np.asarray(scores, dtype=float)
    d = np.asarray(distances, dtype=float)
    k = sc.size
    if k == 0 or d.shape != (k, k):
        raise ValueError(f"screened_medoid_index: {k} scores and distances of shape {d.shape}")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"screened_medoid_index: keep must be in (0, 1], got {keep!r}")
    n = max(1, int(np.ceil(keep * k - 1e-9)))
    kept = np.sort(np.argsort(np.where(np.isfinite(sc), sc, np.inf), kind="stable")[:n])
    return int(kept[medoid_of_distances(d[np.ix_(kept, kept)])[0]])


def anchor_distances(
    samples: Sequence[Environment], anchors: Sequence[Environment], method: str = "best"
) -> np.ndarray:
    """(K, M) aligned RMSD (Å) of each of K samples to each of M anchor environments (e.g. the
    training environments whose spectra are nearest to the query's, :func:`s2s.retrieval.neighbours.
    nearest_by_mse`, best first); the anchors may have other atom counts (:func:`s2s.geometry.align.
    align` pairs atoms by Hungarian assignment).  A pair that cannot be aligned counts as 10^3 Å."""
    if len(samples) == 0 or len(anchors) == 0:
        raise ValueError(f"anchor_distances: {len(samples)} samples and {len(anchors)} anchors; need >= 1 of each")
    d = np.array([[align(a, s, method=method).rmsd for a in anchors] for s in samples], dtype=float)
    return np.where(np.isfinite(d), d, 1e3)


def anchored_scores(samples: Sequence[Environment], anchors: Sequence[Environment], method: str = "best") -> np.ndarray:
    """(K,) mean aligned RMSD (Å) of each of K samples to the anchors (:func:`anchor_distances`)."""
    return anchor_distances(samples, anchors, method).mean(axis=1)


def anchored_index(scores: np.ndarray, distances: np.ndarray | None = None, consensus_weight: float = 0.0) -> int:
    """Index of the sample with the smallest anchor score ((K,) Å, :func:`anchored_scores`), optionally
    plus ``consensus_weight`` times its mean distance to the other samples (the medoid's score, from the
    (K, K) ``distances`` in Å; non-finite = 10^3 Å): weight 0 = the sample the retrieved environments
    agree with, large = the medoid.  Ties go to the lower index.  Not a pure-model pick: it reads the
    training set through the anchors."""
    score = np.asarray(scores, dtype=float).copy()
    if consensus_weight:
        if distances is None:
            raise ValueError("anchored_index: consensus_weight needs the (K, K) distances")
        d = np.where(np.isfinite(distances), distances, 1e3)
        if d.shape != (score.size, score.size):
            raise ValueError(f"anchored_index: distances {d.shape} for {score.size} scores")
        score = score + consensus_weight * d.sum(axis=1) / max(score.size - 1, 1)
    return int(np.argmin(score))


def consensus_average(
    samples: Sequence[Environment], center: int, method: str = "best", max_rmsd: float | None = None
) -> Environment:
    """Mean structure of K samples about one of them (usually the :func:`medoid`): every other sample
    is aligned onto ``samples[center]`` (``method`` alignment, excited O fixed at the origin) and each
    of the centre's atoms moves to the mean position (Å) of the atoms matched to it; its species is
    the majority vote (ties keep the centre's).  Samples whose aligned RMSD to the centre exceeds
    ``max_rmsd`` (Å) are left out (None: all).  The posterior-mean idea: averaging matched atoms
    cancels the sample-to-sample scatter that one sample carries.  Shells are re-assigned from the
    averaged coordinates; ``meta["n_averaged"]`` says how many samples went in."""
    ref = samples[center]
    origin = ref.coords[0]
    acc = ref.coords - origin
    count = np.ones(ref.n_atoms)
    votes = [Counter({int(sp): 1}) for sp in ref.species]
    used = 1
    for j, e in enumerate(samples):
        if j == center:
            continue
        a = align(ref, e, method=method)
        if not np.isfinite(a.rmsd) or (max_rmsd is not None and a.rmsd > max_rmsd):
            continue
        used += 1
        for i in range(1, ref.n_atoms):
            p = int(a.perm[i])
            if p < 0:
                continue
            acc[i] += a.aligned[i]
            count[i] += 1
            votes[i][int(e.species[p])] += 1
    rel = acc / count[:, None]
    rel[0] = 0.0
    species = np.array(
        [max(v.items(), key=lambda kv: (kv[1], kv[0] == int(ref.species[i])))[0] for i, v in enumerate(votes)]
    )
    species[0] = ref.species[0]
    return Environment(species, rel + origin, assign_shells(rel), {**ref.meta, "n_averaged": used})


__all__ = [
    "anchor_distances",
    "anchored_index",
    "anchored_scores",
    "composition_key",
    "composition_medoid_index",
    "consensus_average",
    "medoid",
    "medoid_index",
    "medoid_of_distances",
    "screened_medoid_index",
]
