"""A learned confidence model that picks the best of K generated samples (issue 32; DiffDock-style).

The generator's own samples on fit-split sites, labelled with their true errors
(:mod:`s2s.selection.data`, ``scripts/selection_data.py``), train a small MLP
(:mod:`s2s.selection.model`) on E(3)- and permutation-invariant encodings of each candidate and of how it
sits among the other K - 1 (:mod:`s2s.selection.features`); it scores the K candidates of a spectrum,
and an isotonic map turns the score into the probability that the candidate's paper-aligned 1st-shell
RMSD is within 0.3 Å (:mod:`s2s.selection.train`, ``scripts/train_selector.py``).  docs/selection.md has
the recipe, the cost and the validation numbers.

:func:`confidence` scores the K candidates of one spectrum; :func:`s2s.studies.best_of_k.
confidence_of_k_index` is the pick.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2s.ensembles.describe import pairwise_rmsd
from s2s.environment import Environment
from s2s.selection.features import group_features


def confidence(
    selector,
    samples: Sequence[Environment],
    spectrum: np.ndarray,
    distances: np.ndarray | None = None,
    forward_mse: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores (K,), probabilities (K,)) of the K candidates of one spectrum under a
    :class:`~s2s.selection.model.Selector`: higher score = closer to the truth; probability = the
    calibrated P(paper-aligned 1st-shell RMSD <= ``selector.config.threshold`` Å) (NaN without a
    calibration).  ``distances``: the candidates' (K, K) paper-aligned RMSDs (Å), computed when not
    given (K(K-1)/2 alignments); ``spectrum``: the input spectrum (200,) on the grid; ``forward_mse``
    (K,): the forward model's MSE of each candidate (:func:`s2s.forward.selfconsistent.score_candidates`),
    needed when ``selector.config.forward``."""
    if len(samples) == 0:
        raise ValueError("confidence: no samples")
    if distances is None:
        distances = pairwise_rmsd(samples, method="paper")
    if selector.config.forward and forward_mse is None:
        raise ValueError("confidence: this selector reads the forward model's scores; pass forward_mse")
    x = group_features(samples, distances, spectrum, forward_mse)
    s = selector.scores(x)
    return s, selector.probability(s)


__all__ = ["confidence"]
