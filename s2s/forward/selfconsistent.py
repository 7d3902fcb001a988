"""Self-consistency of candidates: does a candidate environment give the input spectrum back?

* :func:`score_candidates` - predict each candidate's spectrum with the forward model
  (:mod:`s2s.forward.model`) and score it by the MSE to the input spectrum over the 200-point grid (the
  template-matching metric, :func:`s2s.retrieval.neighbours.nearest_by_mse`; unit-area intensity^2); rank
  the candidates by it.  A candidate that cannot be scored (no atom besides the excited O, a
  non-finite coordinate) gets a clear error naming it, score NaN, and is ranked last; the others
  are still scored and ranked.  A candidate that fails the geometric check below is ranked after
  every plausible one (each group by MSE): the forward model was trained on real environments
  only, so its spectrum for, e.g., a Si at 1.0 Å from the O is an extrapolation that can look
  deceptively good when the rest of the environment is right (docs/forward_model.md).  The
  ranking is deterministic (ties: lower candidate index first).
* :func:`physical_problems` / :func:`is_plausible` - a plain geometric check of a candidate
  ("validity" in the best-of-k evaluation): a non-empty first shell of at most 4 atoms and no two
  atoms closer than :data:`MIN_DISTANCE` (0.9 x the shortest distance of that species pair in the
  open dataset's 2,352 environments: Si-Si 2.11, Si-O 1.52, O-O 1.44 Å).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from s2s.environment import DEFAULT_CUTOFF, SI, SPECIES, Environment, O
from s2s.forward.model import ForwardInputError, ForwardModel, check_environment, spectrum_mse
from s2s.spectrum import N_GRID

#: Shortest allowed distance (Å) per species pair: 0.9 x the shortest in the open dataset.
MIN_DISTANCE: dict[tuple[int, int], float] = {(SI, SI): 1.90, (SI, O): 1.37, (O, O): 1.30}
#: Largest first-shell coordination number seen in the dataset (Si4).
MAX_CN1 = 4


@dataclass
class CandidateScores:
    """Scores of K candidates against one input spectrum.

    scores (K,): MSE of the predicted to the input spectrum (unit-area intensity^2), NaN when the
    candidate could not be scored; predicted (K, 200): the forward model's spectra (NaN rows for
    failures); errors: candidate index -> message naming the candidate; problems: candidate index ->
    :func:`physical_problems` (empty: plausible); order (K,): candidate indices best first
    (implausible after plausible, failures last); rank (K,): position of each candidate in ``order``.
    """

    scores: np.ndarray
    predicted: np.ndarray
    errors: dict[int, str]
    order: np.ndarray
    rank: np.ndarray
    problems: dict[int, list[str]]


def rank_by_score(scores: np.ndarray, demote: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank) of scores, lowest first, NaN last, ties by index (deterministic); candidates
    with ``demote[i]`` True come after all others that have a finite score."""
    s = np.asarray(scores, dtype=np.float64)
    key = np.where(np.isfinite(s), s, np.inf)
    dem = np.zeros(s.size, bool) if demote is None else np.asarray(demote, bool)
    order = np.lexsort((np.arange(s.size), key, dem, ~np.isfinite(s)))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return order, rank


def score_candidates(
    forward: ForwardModel,
    spectrum: np.ndarray,
    envs: Sequence[Environment],
    names: Sequence[str] | None = None,
    demote_implausible: bool = True,
) -> CandidateScores:
    """Score candidates (see the module docstring); ``names[i]`` names candidate i in errors
    (default ``candidate i``).  ``spectrum`` is the input on the grid, (200,).
    ``demote_implausible=False`` ranks by the MSE alone."""
    spec = np.asarray(spectrum, dtype=np.float64).reshape(-1)
    if spec.shape != (N_GRID,) or not np.all(np.isfinite(spec)):
        raise ValueError(
            f"score_candidates: the input spectrum must be {N_GRID} finite values on the grid, got shape {spec.shape}"
        )
    envs = list(envs)
    names = list(names) if names is not None else [f"candidate {i}" for i in range(len(envs))]
    if len(names) != len(envs):
        raise ValueError(f"score_candidates: {len(envs)} candidates but {len(names)} names")
    errors: dict[int, str] = {}
    ok: list[int] = []
    for i, (e, n) in enumerate(zip(envs, names)):
        try:
            check_environment(e, n)
            ok.append(i)
        except ForwardInputError as exc:
            errors[i] = str(exc)
    pred = np.full((len(envs), N_GRID), np.nan)
    scores = np.full(len(envs), np.nan)
    if ok:
        pred[ok] = forward.predict([envs[i] for i in ok], [names[i] for i in ok])
        scores[ok] = spectrum_mse(pred[ok], spec)
    problems = {i: physical_problems(envs[i]) for i in ok}
    demote = np.array([bool(problems.get(i)) for i in range(len(envs))]) if demote_implausible else None
    order, rank = rank_by_score(scores, demote)
    return CandidateScores(scores, pred, errors, order, rank, problems)


def physical_problems(env: Environment, cutoff: float = DEFAULT_CUTOFF) -> list[str]:
    """What is unphysical about ``env`` (empty list: plausible); see the module docstring."""
    x = np.asarray(env.coords, dtype=np.float64)
    if env.n_atoms < 2:
        return ["no atoms besides the excited O"]
    if not np.all(np.isfinite(x)):
        return ["non-finite coordinates"]
    out = []
    d0 = np.linalg.norm(x - x[0], axis=1)[1:]
    cn1 = int(np.sum(d0 <= cutoff))
    if cn1 == 0:
        out.append(f"empty first shell (no atom within {cutoff} Å of the excited O)")
    elif cn1 > MAX_CN1:
        out.append(f"first shell of {cn1} atoms (more than {MAX_CN1})")
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    sp = env.species
    iu, ju = np.triu_indices(env.n_atoms, k=1)
    lo = np.array([MIN_DISTANCE[(min(a, b), max(a, b))] for a, b in zip(sp[iu], sp[ju])])
    bad = d[iu, ju] < lo
    if bad.any():
        k = int(np.argmin(d[iu, ju] - lo))
        out.append(
            f"{int(bad.sum())} atom pair(s) too close, e.g. {SPECIES[sp[iu[k]]]}{iu[k]}-{SPECIES[sp[ju[k]]]}{ju[k]} "
            f"at {d[iu[k], ju[k]]:.2f} Å (min {lo[k]:.2f} Å)"
        )
    return out


def is_plausible(env: Environment, cutoff: float = DEFAULT_CUTOFF) -> bool:
    """True when :func:`physical_problems` finds nothing."""
    return not physical_problems(env, cutoff)


__all__ = ["CandidateScores", "score_candidates", "rank_by_score", "physical_problems", "is_plausible", "MIN_DISTANCE"]
