"""Best-of-k generation: draw K samples per spectrum, keep the one the forward model likes best.

For each test spectrum the generator draws K environments (the target's atom count, the paper's
protocol; DDIM with few steps so that K samples stay cheap).  Three ways to pick one of them:

* ``single`` - the first sample (one draw: the single-sample method at the same sampler/steps);
* ``best_of_k`` - the sample ranked first by :func:`s2s.forward.selfconsistent.score_candidates`: the
  smallest MSE of its forward-model spectrum (:mod:`s2s.forward.model`) to the input spectrum among the
  geometrically plausible samples (all samples when none is); no target used;
* ``medoid_of_k`` - the consensus sample: the smallest mean aligned RMSD to the other K - 1 samples
  (:func:`s2s.evaluation.ensemble.pairwise_rmsd`, best alignment); no target and no forward model used;
* :func:`composition_medoid_index` - the consensus of the consensus composition: the medoid among the
  samples of the most frequent O fraction (ninth session; docs/model.md);
* :func:`confidence_of_k_index` (``confidence_of_k``) - the sample a learned confidence model scores
  best (:mod:`s2s.selection`, docs/selection.md); :func:`select` and :func:`evaluate_best_of_k` add it
  when given a ``selector``;
* ``oracle_of_k`` - the sample with the smallest true 1st-shell RMSD to the target (paper
  alignment; ties and NaN by overall RMSD, then index): an upper bound of what any ranking of
  these K samples can reach.

Each pick is scored like notebook 03 (:func:`s2s.evaluation.evaluate.summary_table`, paper alignment: RMSD per
shell in Å, CN error in %, species accuracy, validity) plus the win rate over template matching
(SOAP cosine similarity to the target, :func:`s2s.evaluation.template.compare_with_generation`).  The K
samples are cached on disk (key: model file SHA-256, spectra, counts, K, sampler, steps, seed).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from s2s.environment import Environment

METHODS = ("single", "best_of_k", "medoid_of_k", "composition_medoid_of_k", "oracle_of_k")
#: The learned pick (:func:`confidence_of_k_index`), evaluated when a selector is given.
CONFIDENCE_METHOD = "confidence_of_k"


@dataclass(frozen=True)
class BestOfKSettings:
    """k samples per spectrum; sampler ("ddim" or "ancestral"), n_steps, eta (DDIM noise), seed,
    batch_size (graphs per sampling call)."""

    k: int = 8
    sampler: str = "ddim"
    n_steps: int | None = 50
    eta: float = 0.0
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if int(self.k) < 1:
            raise ValueError(f"best-of-k: k must be >= 1, got {self.k}")
        if self.n_steps is not None and int(self.n_steps) < 1:
            raise ValueError(f"best-of-k: n_steps must be >= 1 or None, got {self.n_steps}")


def sample_k(
    model_path: str | os.PathLike,
    spectra: np.ndarray,
    n_atoms: Sequence[int],
    settings: BestOfKSettings = BestOfKSettings(),
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[list[list[Environment]], dict]:
    """K environments per spectrum (M, 200) with the given atom counts (M,): a list per spectrum of
    K Environments (Å, excited O first), and an info dict (seconds, settings, model SHA-256).
    :func:`s2s.model.cache.generate_cached` with ``n_samples = k`` and the settings' sampler: spectra
    sampled in chunks of similar atom count, chunk j seeded from (seed, j).  Deterministic for the
    settings; cached under ``cache_dir`` (default: :mod:`s2s.resources` ``generated_cache``)."""
    from s2s.model.cache import generate_cached

    counts = np.asarray(n_atoms, dtype=np.int64).reshape(-1)
    spec = np.atleast_2d(np.asarray(spectra, dtype=np.float32))
    if counts.shape != (spec.shape[0],):
        raise ValueError(f"sample_k: {spec.shape[0]} spectra but {counts.size} atom counts")
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"{model_path}: generator model file not found")
    out, info = generate_cached(
        model_path,
        spec,
        counts,
        n_samples=settings.k,
        n_steps=settings.n_steps,
        seed=settings.seed,
        batch_size=settings.batch_size,
        sampler=settings.sampler,
        eta=settings.eta,
        cache_dir=cache_dir,
        progress=progress,
        return_info=True,
    )
    return out, {**info, **asdict(settings)}


def medoid(samples: Sequence[Environment], method: str = "best") -> tuple[int, float]:
    """(index, mean aligned RMSD in Å to the others) of the medoid of K samples: the sample with the
    smallest mean ``method`` alignment RMSD (:func:`s2s.evaluation.align.align`) to the others; a pair
    that cannot be aligned counts as 10^3 Å; ties go to the lower index (one sample: (0, 0.0))."""
    from s2s.evaluation.ensemble import pairwise_rmsd

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
    when :func:`s2s.evaluation.metrics.species_match` holds between them."""
    from s2s.environment import O

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


def confidence_of_k_index(
    samples: Sequence[Environment], selector, spectrum: np.ndarray, distances: np.ndarray | None = None
) -> int:
    """The sample a learned confidence model (:class:`s2s.selection.model.Selector`, issue 32) scores
    closest to the truth (:func:`s2s.selection.confidence`; ``distances``: the (K, K) paper-aligned
    RMSDs in Å, computed when not given).  Ties go to the lower index.  Target-free: a pure-model pick,
    trained on fit-split sites only."""
    from s2s.selection import confidence

    scores, _ = confidence(selector, samples, spectrum, distances)
    return int(np.argmax(scores))


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
    training environments whose spectra are nearest to the query's, :func:`s2s.evaluation.template.
    nearest_by_mse`, best first); the anchors may have other atom counts (:func:`s2s.evaluation.align.
    align` pairs atoms by Hungarian assignment).  A pair that cannot be aligned counts as 10^3 Å."""
    from s2s.evaluation.align import align

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
    from collections import Counter

    from s2s.evaluation.align import align
    from s2s.evaluation.metrics import assign_shells

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


def select(
    samples: list[list[Environment]],
    spectra: np.ndarray,
    forward,
    targets: Sequence[Environment] | None = None,
    medoid_alignment: str = "best",
    selector=None,
) -> dict[str, Any]:
    """Indices of the picked sample per spectrum for each method of :data:`METHODS` (oracle only
    with ``targets``), plus per-sample ``scores`` (M, K) MSE of the forward spectrum to the input
    and, with targets, ``rows`` (M, K) of :func:`s2s.evaluation.metrics.evaluate_pair` dicts (paper alignment).
    ``medoid_alignment``: the alignment of the distances behind both medoids (:func:`medoid_of_distances`,
    :func:`composition_medoid_index`; "best", or the 10x cheaper "paper").  With a ``selector``
    (:class:`s2s.selection.model.Selector`) also :data:`CONFIDENCE_METHOD` (:func:`confidence_of_k_index`)
    and ``confidence`` (M, K), each sample's calibrated probability of a 1st shell within 0.3 Å."""
    from s2s.evaluation.ensemble import pairwise_rmsd
    from s2s.evaluation.metrics import evaluate_pair
    from s2s.forward.selfconsistent import score_candidates

    dist = [pairwise_rmsd(row, method=medoid_alignment) for row in samples]  # (K, K) per spectrum, Å
    m = len(samples)
    k = len(samples[0])
    scores = np.full((m, k), np.nan)
    errors = {}
    picks: list[int] = []
    for i, row in enumerate(samples):
        sc = score_candidates(forward, spectra[i], row, [f"spectrum {i}, sample {j}" for j in range(len(row))])
        scores[i] = sc.scores
        picks.append(int(sc.order[0]))
        errors.update({(i, j): msg for j, msg in sc.errors.items()})
    out: dict[str, Any] = {
        "single": np.zeros(m, dtype=np.int64),
        "best_of_k": np.array(picks, dtype=np.int64),
        "medoid_of_k": np.array([medoid_of_distances(d)[0] for d in dist], dtype=np.int64),
        "composition_medoid_of_k": np.array(
            [composition_medoid_index(row, d) for row, d in zip(samples, dist)], dtype=np.int64
        ),
        "scores": scores,
        "errors": errors,
    }
    if selector is not None:
        from s2s.selection import confidence

        paper = dist if medoid_alignment == "paper" else [pairwise_rmsd(row, method="paper") for row in samples]
        conf = [confidence(selector, row, spectra[i], paper[i]) for i, row in enumerate(samples)]
        out[CONFIDENCE_METHOD] = np.array([int(np.argmax(c[0])) for c in conf], dtype=np.int64)
        out["confidence"] = np.stack([c[1] for c in conf])
    if targets is not None:
        rows = [[evaluate_pair(t, g, method="paper") for g in row] for t, row in zip(targets, samples)]
        r1 = np.array([[r["rmsd_shell1"] for r in rr] for rr in rows], dtype=np.float64)
        ra = np.array([[r["rmsd_all"] for r in rr] for rr in rows], dtype=np.float64)
        inf1, infa = np.where(np.isfinite(r1), r1, np.inf), np.where(np.isfinite(ra), ra, np.inf)
        out["oracle_of_k"] = np.array([int(np.lexsort((np.arange(k), infa[i], inf1[i]))[0]) for i in range(m)])
        out["rows"] = rows
    return out


def evaluate_best_of_k(
    model_path: str | os.PathLike,
    forward,
    test_records: Sequence[Any],
    train_records: Sequence[Any],
    settings: BestOfKSettings = BestOfKSettings(),
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    digits: int | None = 4,
    selector=None,
) -> dict[str, Any]:
    """The best-of-k evaluation on site records (``.environment``, ``.spectrum``, ``.structure_id``).

    Returns ``{"single": table, "best_of_k": table, "oracle_of_k": table, "settings": ..., "sampling": info,
    "picked": {method: [sample index per site]}, "selection_mse_mean": {method: mean forward-model MSE of the picks}}``
    where each table is :func:`s2s.evaluation.evaluate.summary_table` (paper alignment) plus ``template_win_rate`` (SOAP
    similarity to the target above the template-matched environment's; template database = ``train_records``,
    same-structure sites excluded) and ``sim_mean`` (mean SOAP cosine similarity to the target).
    With a ``selector`` (:class:`s2s.selection.model.Selector`) the table also has :data:`CONFIDENCE_METHOD`.
    """
    from s2s.evaluation.evaluate import summary_table
    from s2s.evaluation.template import compare_with_generation, template_match

    test_records, train_records = list(test_records), list(train_records)
    if not test_records:
        raise ValueError("evaluate_best_of_k: no test records")
    targets = [r.environment for r in test_records]
    spectra = np.stack([np.asarray(r.spectrum, dtype=np.float64) for r in test_records])
    counts = np.array([t.n_atoms for t in targets])
    samples, info = sample_k(model_path, spectra, counts, settings, cache_dir=cache_dir, progress=progress)
    t0 = time.process_time()
    sel = select(samples, spectra, forward, targets, selector=selector)
    tm = template_match(
        spectra,
        [r.structure_id for r in test_records],
        np.stack([r.spectrum for r in train_records]),
        [r.structure_id for r in train_records],
        [r.environment for r in train_records],
    )
    out: dict[str, Any] = {"settings": asdict(settings), "sampling": info, "picked": {}, "selection_mse_mean": {}}
    for m in METHODS + ((CONFIDENCE_METHOD,) if selector is not None else ()):
        pick = sel[m]
        rows = [{"index": i, "sample": int(j), "paper": sel["rows"][i][int(j)]} for i, j in enumerate(pick)]
        tab = summary_table(rows, "paper")
        cmp = compare_with_generation(
            targets, [samples[i][int(j)] for i, j in enumerate(pick)], tm.environments, tm.mse
        )
        tab["template_win_rate"] = cmp["model_win_rate"]
        tab["sim_mean"] = float(np.mean(cmp["sim_generated"]))
        if digits is not None:
            tab = {k: (round(v, digits) if isinstance(v, float) and math.isfinite(v) else v) for k, v in tab.items()}
        out[m] = tab
        out["picked"][m] = [int(j) for j in pick]
        mse = sel["scores"][np.arange(len(pick)), pick]
        out["selection_mse_mean"][m] = float(np.nanmean(mse))
    out["scoring_cpu_seconds"] = round(time.process_time() - t0, 3)
    out["n_unscorable"] = len(sel["errors"])
    return out


__all__ = [
    "BestOfKSettings",
    "sample_k",
    "select",
    "medoid",
    "medoid_index",
    "medoid_of_distances",
    "composition_key",
    "composition_medoid_index",
    "confidence_of_k_index",
    "consensus_average",
    "evaluate_best_of_k",
    "METHODS",
    "CONFIDENCE_METHOD",
]
