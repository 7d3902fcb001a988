"""Best-of-k generation: draw K samples per spectrum, keep the one the forward model likes best.

For each test spectrum the generator draws K environments (the target's atom count, the paper's
protocol; DDIM with few steps so that K samples stay cheap).  Three ways to pick one of them:

* ``single`` - the first sample (one draw: the single-sample method at the same sampler/steps);
* ``best_of_k`` - the sample ranked first by :func:`s2s.forward.selfconsistent.score_candidates`: the
  smallest MSE of its forward-model spectrum (:mod:`s2s.forward.model`) to the input spectrum among the
  geometrically plausible samples (all samples when none is); no target used;
* ``medoid_of_k`` - the consensus sample: the smallest mean aligned RMSD to the other K - 1 samples
  (:func:`s2s.ensembles.describe.pairwise_rmsd`, best alignment); no target and no forward model used;
* :func:`composition_medoid_index` - the consensus of the consensus composition: the medoid among the
  samples of the most frequent O fraction (ninth session; docs/model.md);
* :func:`confidence_of_k_index` (``confidence_of_k``) - the sample a learned confidence model scores
  best (:mod:`s2s.selection`, docs/selection.md); :func:`select` and :func:`evaluate_best_of_k` add it
  when given a ``selector``;
* ``oracle_of_k`` - the sample with the smallest true 1st-shell RMSD to the target (paper
  alignment; ties and NaN by overall RMSD, then index): an upper bound of what any ranking of
  these K samples can reach.

Each pick is scored like notebook 03 (:func:`s2s.studies.evaluate.summary_table`, paper alignment: RMSD per
shell in Å, CN error in %, species accuracy, validity) plus the win rate over template matching
(SOAP cosine similarity to the target, :func:`s2s.retrieval.template.compare_with_generation`).  The K
samples are cached on disk (key: model file SHA-256, spectra, counts, K, sampler, steps, seed).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from s2s.ensembles.describe import pairwise_rmsd
from s2s.ensembles.pick import composition_medoid_index, medoid_of_distances
from s2s.environment import Environment
from s2s.forward.selfconsistent import score_candidates
from s2s.geometry.metrics import evaluate_pair
from s2s.model.cache import BestOfKSettings, sample_k
from s2s.retrieval.template import compare_with_generation, template_match
from s2s.selection import confidence
from s2s.studies.bootstrap import summary_intervals
from s2s.studies.evaluate import summary_table

METHODS = ("single", "best_of_k", "medoid_of_k", "composition_medoid_of_k", "oracle_of_k")
#: The learned pick (:func:`confidence_of_k_index`), evaluated when a selector is given.
CONFIDENCE_METHOD = "confidence_of_k"


def confidence_of_k_index(
    samples: Sequence[Environment], selector, spectrum: np.ndarray, distances: np.ndarray | None = None
) -> int:
    """The sample a learned confidence model (:class:`s2s.selection.model.Selector`, issue 32) scores
    closest to the truth (:func:`s2s.selection.confidence`; ``distances``: the (K, K) paper-aligned
    RMSDs in Å, computed when not given).  Ties go to the lower index.  Target-free: a pure-model pick,
    trained on fit-split sites only."""
    scores, _ = confidence(selector, samples, spectrum, distances)
    return int(np.argmax(scores))


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
    and, with targets, ``rows`` (M, K) of :func:`s2s.geometry.metrics.evaluate_pair` dicts (paper alignment).
    ``medoid_alignment``: the alignment of the distances behind both medoids (:func:`medoid_of_distances`,
    :func:`composition_medoid_index`; "best", or the 10x cheaper "paper").  With a ``selector``
    (:class:`s2s.selection.model.Selector`) also :data:`CONFIDENCE_METHOD` (:func:`confidence_of_k_index`)
    and ``confidence`` (M, K), each sample's calibrated probability of a 1st shell within 0.3 Å."""
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
    intervals: bool = False,
) -> dict[str, Any]:
    """The best-of-k evaluation on site records (``.environment``, ``.spectrum``, ``.structure_id``).

    Returns ``{"single": table, "best_of_k": table, "oracle_of_k": table, "settings": ..., "sampling": info,
    "picked": {method: [sample index per site]}, "selection_mse_mean": {method: mean forward-model MSE of the picks}}``
    where each table is :func:`s2s.studies.evaluate.summary_table` (paper alignment) plus ``template_win_rate`` (SOAP
    similarity to the target above the template-matched environment's; template database = ``train_records``,
    same-structure sites excluded) and ``sim_mean`` (mean SOAP cosine similarity to the target).
    With a ``selector`` (:class:`s2s.selection.model.Selector`) the table also has :data:`CONFIDENCE_METHOD`.
    ``intervals``: each table also gets ``ci95``, the 95 % intervals of its means over the test structures
    (:func:`s2s.studies.bootstrap.summary_intervals`, resampling ``.structure_id``).
    """
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
        if intervals:
            tab["ci95"] = summary_intervals(rows, [r.structure_id for r in test_records], "paper", digits=digits)
        out[m] = tab
        out["picked"][m] = [int(j) for j in pick]
        mse = sel["scores"][np.arange(len(pick)), pick]
        out["selection_mse_mean"][m] = float(np.nanmean(mse))
    out["scoring_cpu_seconds"] = round(time.process_time() - t0, 3)
    out["n_unscorable"] = len(sel["errors"])
    return out


__all__ = [
    "select",
    "confidence_of_k_index",
    "evaluate_best_of_k",
    "METHODS",
    "CONFIDENCE_METHOD",
]
