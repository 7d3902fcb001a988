"""Template matching, the paper's conventional baseline (Results, Fig. 4; Fig. 6b-c).

Template matching assigns to a target spectrum the structure of the reference
spectrum with the smallest mean squared error (MSE) over the 200-point grid
(paper: the reference database is the training split; pairings between sites of
the same material are excluded).  Both the matched and the model-generated
environments are then compared with the target environment by the cosine
similarity of SOAP vectors (dscribe) centred on the excited O.

* :func:`s2s.retrieval.neighbours.nearest_by_mse` - vectorised (BLAS) nearest-reference search with
  group exclusion (group = structure id).
* :mod:`s2s.descriptors.soap` - SOAP of an :class:`~s2s.environment.Environment` treated as a finite
  Si/O cluster.
* :func:`template_match`, :func:`compare_with_generation` - the Fig. 4 pipeline:
  ``gap = sim(generated, target) - sim(matched, target)``; the model *wins* a case
  when ``gap > tie_tol`` (default :data:`TIE_TOL` = 1e-9).  Ties (``|gap| <= tie_tol``, e.g.
  identical environments, gap exactly 0) count as *not* a win, so ``model_win_rate = n_wins / n_cases``
  with ties in the denominator (the conservative reading of "outperforms in
  52.1 % of test cases").
* :func:`wins_by_template_similarity` - the win rate where the template is a near-copy of the target
  (SOAP similarity >= :data:`NEAR_COPY_SIM`) and where it is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from s2s.descriptors.soap import DEFAULT_SOAP, SoapSettings, soap_cosine, soap_vectors
from s2s.ensembles.describe import pairwise_rmsd
from s2s.ensembles.pick import medoid_of_distances
from s2s.environment import Environment
from s2s.retrieval.neighbours import as_spectra, nearest_by_mse

#: |gap| at or below this counts as a tie (not a win): far below the paper's gap spread (std 0.006)
#: and far above SOAP round-off under rotation/permutation (~1e-16).
TIE_TOL = 1e-9
#: A template at least this SOAP-similar to its target is a near-copy of it: on the test split the
#: median template is at 0.993, and above 0.995 its all-atom RMSD is 0.61 Å against 0.97 Å below.
NEAR_COPY_SIM = 0.995


@dataclass
class TemplateMatch:
    """Result of :func:`template_match`: per test case the matched training environment."""

    index: np.ndarray  # (M,) index into the training arrays
    mse: np.ndarray  # (M,) MSE of the matched spectrum to the test spectrum
    environments: list[Environment]  # matched environments (train_envs[index])


def template_match(
    test_spectra: ArrayLike,
    test_groups: ArrayLike | None,
    train_spectra: ArrayLike,
    train_groups: ArrayLike | None,
    train_envs: Sequence[Environment],
) -> TemplateMatch:
    """Paper's template matching: for each test spectrum, the environment of the training
    spectrum with minimum MSE, excluding training sites of the same group (structure id).
    For out-of-distribution queries (amorphous, experimental) pass both groups as None."""
    envs = list(train_envs)
    train = as_spectra(train_spectra, "train_spectra")
    if len(envs) != train.shape[0]:
        raise ValueError(f"template_match: {len(envs)} train_envs for {train.shape[0]} train_spectra")
    idx, mse = nearest_by_mse(test_spectra, train, test_groups, train_groups, k=1)
    return TemplateMatch(index=idx, mse=mse, environments=[envs[i] for i in idx])


def template_consensus(
    test_spectra: ArrayLike,
    test_groups: ArrayLike | None,
    train_spectra: ArrayLike,
    train_groups: ArrayLike | None,
    train_envs: Sequence[Environment],
    k: int = 3,
    method: str = "best",
) -> TemplateMatch:
    """Template matching by consensus: the medoid of the ``k`` training environments whose spectra
    are nearest (MSE; same-group sites excluded as in :func:`template_match`).

    The medoid is the candidate with the smallest mean aligned RMSD (Å, ``method`` alignment of
    :mod:`s2s.geometry.align`) to the other k - 1 (:func:`s2s.ensembles.pick.medoid_of_distances`).
    Spectra determine the first shell well but the outer shells only weakly (docs/model.md, "How far
    does the spectrum determine the environment?"), so a central candidate among the spectrally
    plausible ones is a better estimate than the single nearest; k = 3 was chosen on the validation
    split.  k = 1 is :func:`template_match`.  Returns the chosen index, its MSE and environment.
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"template_consensus: k must be a positive integer, got {k!r}")
    envs = list(train_envs)
    train = as_spectra(train_spectra, "train_spectra")
    if len(envs) != train.shape[0]:
        raise ValueError(f"template_consensus: {len(envs)} train_envs for {train.shape[0]} train_spectra")
    idx, mse = nearest_by_mse(test_spectra, train, test_groups, train_groups, k=k)
    idx, mse = np.asarray(idx).reshape(-1, k), np.asarray(mse).reshape(-1, k)
    pick = np.array([medoid_of_distances(pairwise_rmsd([envs[j] for j in row], method))[0] for row in idx])
    rows = np.arange(idx.shape[0])
    chosen = idx[rows, pick]
    return TemplateMatch(index=chosen, mse=mse[rows, pick], environments=[envs[i] for i in chosen])


def compare_with_generation(
    targets: Sequence[Environment],
    generated: Sequence[Environment],
    matched: Sequence[Environment],
    mse: ArrayLike,
    settings: SoapSettings = DEFAULT_SOAP,
    tie_tol: float = TIE_TOL,
) -> dict:
    """Fig. 4 numbers: SOAP similarity of generated and matched environments to the target.

    Returns a dict with arrays ``sim_generated``, ``sim_matched``, ``gap`` (= generated -
    matched), ``mse`` and ``win`` (bool, ``gap > tie_tol``), and scalars ``n_cases``,
    ``n_wins``, ``n_ties`` (``|gap| <= tie_tol``), ``n_losses``, ``model_win_rate``
    (= n_wins / n_cases; ties are not wins), ``gap_mean`` and ``gap_std``.
    """
    targets, generated, matched = list(targets), list(generated), list(matched)
    mse = np.asarray(mse, dtype=np.float64).reshape(-1)
    n = len(targets)
    if not (len(generated) == len(matched) == mse.shape[0] == n):
        raise ValueError(
            f"compare_with_generation: lengths differ: targets {n}, generated {len(generated)}, "
            f"matched {len(matched)}, mse {mse.shape[0]}"
        )
    if n == 0:
        raise ValueError("compare_with_generation: no cases")
    t = soap_vectors(targets, settings)
    sim_gen = np.atleast_1d(soap_cosine(soap_vectors(generated, settings), t))
    sim_mat = np.atleast_1d(soap_cosine(soap_vectors(matched, settings), t))
    return summarize_gaps(sim_gen, sim_mat, mse, tie_tol=tie_tol)


def summarize_gaps(sim_generated: ArrayLike, sim_matched: ArrayLike, mse: ArrayLike, tie_tol: float = TIE_TOL) -> dict:
    """Win/tie/loss counts and gap statistics from precomputed similarities (see
    :func:`compare_with_generation`)."""
    sg = np.asarray(sim_generated, dtype=np.float64).reshape(-1)
    sm = np.asarray(sim_matched, dtype=np.float64).reshape(-1)
    mse = np.asarray(mse, dtype=np.float64).reshape(-1)
    if not (sg.shape == sm.shape == mse.shape) or sg.size == 0:
        raise ValueError(f"summarize_gaps: need equal non-empty lengths, got {sg.shape}, {sm.shape}, {mse.shape}")
    if not tie_tol >= 0:
        raise ValueError(f"summarize_gaps: tie_tol must be >= 0, got {tie_tol}")
    gap = sg - sm
    win = gap > tie_tol
    tie = np.abs(gap) <= tie_tol
    n = int(gap.size)
    return {
        "sim_generated": sg,
        "sim_matched": sm,
        "gap": gap,
        "mse": mse,
        "win": win,
        "n_cases": n,
        "n_wins": int(win.sum()),
        "n_ties": int(tie.sum()),
        "n_losses": int(n - win.sum() - tie.sum()),
        "model_win_rate": float(win.sum() / n),
        "gap_mean": float(gap.mean()),
        "gap_std": float(gap.std()),
    }


def wins_by_template_similarity(comparison: dict, threshold: float = NEAR_COPY_SIM) -> dict:
    """The model's win rate where the template is a near-copy of the target and where it is not.

    ``comparison``: the dict of :func:`compare_with_generation` (its ``sim_matched`` and ``win``);
    ``threshold``: SOAP cosine similarity of the template to the target at or above which it counts as
    a near-copy.  Where the training split holds a near-copy, a generated environment has to be
    nearer still to win; elsewhere the two start level.  Returns ``threshold``, ``n_near``,
    ``fraction_near``, ``win_rate_near`` and ``win_rate_rest`` (NaN for an empty part).
    """
    sim = np.asarray(comparison["sim_matched"], dtype=np.float64).reshape(-1)
    win = np.asarray(comparison["win"], dtype=bool).reshape(-1)
    if sim.shape != win.shape or sim.size == 0:
        raise ValueError(
            f"wins_by_template_similarity: need equal non-empty sim_matched and win, got {sim.shape}, {win.shape}"
        )
    near = sim >= threshold
    return {
        "threshold": float(threshold),
        "n_near": int(near.sum()),
        "fraction_near": float(near.mean()),
        "win_rate_near": float(win[near].mean()) if near.any() else float("nan"),
        "win_rate_rest": float(win[~near].mean()) if (~near).any() else float("nan"),
    }
