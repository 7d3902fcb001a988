"""Template matching, the paper's conventional baseline (Results, Fig. 4; Fig. 6b-c).

Template matching assigns to a target spectrum the structure of the reference
spectrum with the smallest mean squared error (MSE) over the 200-point grid
(paper: the reference database is the training split; pairings between sites of
the same material are excluded).  Both the matched and the model-generated
environments are then compared with the target environment by the cosine
similarity of SOAP vectors (dscribe) centred on the excited O.

* :func:`nearest_by_mse` - vectorised (BLAS) nearest-reference search with group
  exclusion (group = structure id).
* :func:`soap_vectors`, :func:`soap_cosine`, :func:`soap_similarity_to_target` -
  SOAP of an :class:`~s2s.environment.Environment` treated as a finite Si/O cluster.
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
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from s2s.environment import SPECIES, Environment

#: Target working-set size (bytes) of one (chunk, R) block of the MSE matrix.
_CHUNK_BYTES = 32 * 2**20
#: |gap| at or below this counts as a tie (not a win): far below the paper's gap spread (std 0.006)
#: and far above SOAP round-off under rotation/permutation (~1e-16).
TIE_TOL = 1e-9
#: A template at least this SOAP-similar to its target is a near-copy of it: on the test split the
#: median template is at 0.993, and above 0.995 its all-atom RMSD is 0.61 Å against 0.97 Å below.
NEAR_COPY_SIM = 0.995
#: Extra candidates re-scored exactly after the fast (expanded-square) screen.
_RESCORE_EXTRA = 4


# --------------------------------------------------------------------------- MSE search
def _as_spectra(x: ArrayLike, name: str) -> np.ndarray:
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
    q = _as_spectra(query_spectra, "query_spectra")
    ref = _as_spectra(reference_spectra, "reference_spectra")
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


# --------------------------------------------------------------------------- SOAP
@dataclass(frozen=True)
class SoapSettings:
    """SOAP (dscribe) parameters for O-centred Si/O environments.

    Defaults and why:

    * ``r_cut = 6.0`` Å: environments are three graph hops of at most 2.0 Å, so every atom
      lies within 3 x 2.0 = 6.0 Å of the excited O (triangle inequality); dscribe adds a
      Gaussian-tail padding beyond ``r_cut``, so nothing of the environment is cut off.
    * ``n_max = 8``, ``l_max = 6``: dscribe's usual choice; radial resolution ~ r_cut / n_max
      ~ 0.75 Å separates the Si-O (1.6 Å), O-O/Si-Si (2.6-3.1 Å) and third-shell (~4-5 Å)
      distances, and l <= 6 resolves tetrahedral vs octahedral angular motifs.
    * ``sigma = 0.5`` Å: narrower than the smallest interatomic distance (Si-O 1.6 Å) so
      shells stay distinct, wider than typical generation errors of the first shell
      (~0.06 Å RMSD), so the similarity degrades smoothly rather than all-or-nothing.
    * ``rbf = "gto"``, no radial weighting, non-periodic (the environment is a finite cluster).
    * ``center_weight = None``: the excited O's own density is included (dscribe default);
      set 0.0 to hide it (it adds the same constant to every environment and so raises all
      cosine similarities slightly without changing their order much).
    """

    r_cut: float = 6.0
    n_max: int = 8
    l_max: int = 6
    sigma: float = 0.5
    rbf: str = "gto"
    center_weight: float | None = None


DEFAULT_SOAP = SoapSettings()


@lru_cache(maxsize=8)
def _soap(settings: SoapSettings):
    from dscribe.descriptors import SOAP

    weighting = None if settings.center_weight is None else {"w0": float(settings.center_weight)}
    return SOAP(
        species=list(SPECIES),
        r_cut=settings.r_cut,
        n_max=settings.n_max,
        l_max=settings.l_max,
        sigma=settings.sigma,
        rbf=settings.rbf,
        weighting=weighting,
        periodic=False,
        sparse=False,
    )


def environment_to_atoms(env: Environment):
    """``ase.Atoms`` of the environment (symbols from SPECIES, positions in Å, no cell, pbc off)."""
    from ase import Atoms

    if not isinstance(env, Environment):
        raise TypeError(f"expected an s2s.environment.Environment, got {type(env).__name__}")
    return Atoms(symbols=env.symbols(), positions=env.coords, pbc=False)


def soap_vectors(
    environments: Environment | Sequence[Environment],
    settings: SoapSettings = DEFAULT_SOAP,
    *,
    progress: bool = False,
) -> np.ndarray:
    """SOAP vector of each environment, centred on its excited atom (index 0).

    Returns (n_env, n_features) float64 (a single Environment gives (1, n_features)).
    Each environment is a finite, non-periodic Si/O cluster; see :class:`SoapSettings`.
    """
    if isinstance(environments, Environment):
        environments = [environments]
    envs = list(environments)
    soap = _soap(settings)
    out = np.empty((len(envs), soap.get_number_of_features()), dtype=np.float64)
    it = envs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(envs, desc="SOAP", unit="env")
    for i, env in enumerate(it):
        out[i] = soap.create(environment_to_atoms(env), centers=[0]).reshape(-1)
    return out


def soap_cosine(a: ArrayLike, b: ArrayLike) -> np.ndarray | float:
    """Cosine similarity of SOAP vectors: 1-D x 1-D gives a float; (N, D) x (N, D) or
    broadcastable shapes give one value per row.  Raises on a zero vector."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"soap_cosine: feature lengths differ ({a.shape[-1]} vs {b.shape[-1]})")
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    if np.any(na == 0) or np.any(nb == 0):
        raise ValueError("soap_cosine: zero SOAP vector (empty environment?)")
    cos = np.sum(a * b, axis=-1) / (na * nb)
    return float(cos) if np.ndim(cos) == 0 else cos


def soap_similarity_to_target(
    target_envs: Sequence[Environment],
    candidate_envs: Sequence[Environment],
    settings: SoapSettings = DEFAULT_SOAP,
) -> np.ndarray:
    """(N,) SOAP cosine similarity of ``candidate_envs[i]`` to ``target_envs[i]``."""
    targets, cands = list(target_envs), list(candidate_envs)
    if len(targets) != len(cands):
        raise ValueError(f"soap_similarity_to_target: {len(targets)} targets but {len(cands)} candidates")
    if not targets:
        return np.empty(0)
    return np.atleast_1d(soap_cosine(soap_vectors(targets, settings), soap_vectors(cands, settings)))


# --------------------------------------------------------------------------- pipeline
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
    train = _as_spectra(train_spectra, "train_spectra")
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
    :mod:`s2s.evaluation.align`) to the other k - 1 (:func:`s2s.evaluation.best_of_k.medoid_of_distances`).
    Spectra determine the first shell well but the outer shells only weakly (docs/model.md, "How far
    does the spectrum determine the environment?"), so a central candidate among the spectrally
    plausible ones is a better estimate than the single nearest; k = 3 was chosen on the validation
    split.  k = 1 is :func:`template_match`.  Returns the chosen index, its MSE and environment.
    """
    from s2s.evaluation.best_of_k import medoid_of_distances
    from s2s.evaluation.ensemble import pairwise_rmsd

    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"template_consensus: k must be a positive integer, got {k!r}")
    envs = list(train_envs)
    train = _as_spectra(train_spectra, "train_spectra")
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
