"""How far does a spectrum determine its environment?  Spectral twins and the retrieval oracle.

A reader of spectra, however good, cannot return a structure more precisely than the spectrum
pins it down.  Two measurements on a dataset say how precisely that is, without any model:

* **Spectral twins** (:func:`twin_table`): pairs of sites from *different* structures, binned by
  the RMS difference of their spectra (eV^-1, unit-area spectra on the 200-point grid, as
  :func:`s2s.studies.transfer.spectral_gap`), and for each bin how far their environments are
  apart, with the metrics of :func:`s2s.geometry.metrics.evaluate_pair` (one site as target, the
  other as "generated", paper alignment).  If sites whose spectra differ by far less than any
  realistic error still differ by d Å, a reader given one of them can be expected to be off by a
  sizeable fraction of d (it cannot tell which of the two it is reading).
* **Retrieval oracle** (:func:`retrieval_oracle`): for each query site, the best 1st-shell RMSD
  among the k training environments with the nearest spectra (template matching's top k).  k = 1
  is template matching; k > 1 says how often a near-spectrum environment is the right one, i.e.
  what a perfect choice among the spectrally plausible candidates would reach.

Both are pure functions of spectra and environments; ``benchmarks/identifiability.py`` prints them
for the open dataset (docs/model.md, "How far does the spectrum determine the environment?").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from s2s.environment import Environment
from s2s.geometry.metrics import evaluate_pair
from s2s.retrieval.neighbours import nearest_by_mse

#: Bin edges of the RMS spectral difference, eV^-1.  For scale on the open dataset: the median
#: nearest other site is ~0.006, the median xTB-GPAW difference of one site 0.036
#: (docs/model.md, "Transfer"); below ~3e-4 two sites are the same environment.
DEFAULT_RMS_EDGES = (0.0, 3e-4, 1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2)

#: Per-pair metrics averaged by :func:`twin_table` (keys of :func:`evaluate_pair`).
TWIN_KEYS = ("rmsd_shell1", "rmsd_all", "rmsd_shell1_local", "rmsd_shell1_radial", "angle_shell1_error_deg")


def pair_rms(spectra: np.ndarray, others: np.ndarray | None = None, chunk: int = 512) -> np.ndarray:
    """(M, R) RMS difference (units of the spectra) between every row of ``spectra`` (M, G) and every row
    of ``others`` (R, G); ``others=None`` compares ``spectra`` with itself ((M, M), zero diagonal)."""
    s = np.asarray(spectra, dtype=np.float64)
    o = s if others is None else np.asarray(others, dtype=np.float64)
    for name, a in (("spectra", s), ("others", o)):
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"pair_rms: {name} must have shape (M, G) with M >= 1, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"pair_rms: {name} contain NaN/inf")
    if o.shape[1] != s.shape[1]:
        raise ValueError(f"pair_rms: spectra have {s.shape[1]} grid points but others {o.shape[1]}")
    g = s.shape[1]
    sq_s, sq_o = np.einsum("ij,ij->i", s, s), np.einsum("ij,ij->i", o, o)
    out = np.empty((s.shape[0], o.shape[0]))
    for a in range(0, s.shape[0], chunk):
        d = sq_s[a : a + chunk, None] + sq_o[None, :] - 2.0 * (s[a : a + chunk] @ o.T)
        out[a : a + chunk] = np.sqrt(np.clip(d / g, 0.0, None))
    if others is None:
        np.fill_diagonal(out, 0.0)
    return out


def spectral_twins(
    spectra: np.ndarray,
    groups: Sequence,
    edges: Sequence[float] = DEFAULT_RMS_EDGES,
    n_per_bin: int | None = 300,
    seed: int = 0,
) -> list[dict]:
    """Pairs (i < j) of rows from different ``groups`` (structure ids), binned by their RMS difference.

    Returns one dict per bin [lo, hi): ``lo``, ``hi``, ``n_pairs`` (all pairs in the bin) and
    ``pairs`` ((n, 2) int, at most ``n_per_bin`` drawn without replacement with ``seed``; None = all).
    """
    s = np.asarray(spectra, dtype=np.float64)
    g = np.asarray(groups)
    if g.shape != (s.shape[0],):
        raise ValueError(f"spectral_twins: {s.shape[0]} spectra but groups has shape {g.shape}")
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"spectral_twins: edges must be increasing, got {tuple(edges)}")
    rms = pair_rms(s)
    iu, ju = np.triu_indices(s.shape[0], 1)
    d = rms[iu, ju]
    other = g[iu] != g[ju]
    rng = np.random.default_rng(seed)
    out = []
    for lo, hi in zip(e[:-1], e[1:]):
        sel = np.flatnonzero(other & (d >= lo) & (d < hi))
        if n_per_bin is not None and sel.size > n_per_bin:
            sel_take = np.sort(rng.choice(sel, n_per_bin, replace=False))
        else:
            sel_take = sel
        pairs = np.stack([iu[sel_take], ju[sel_take]], 1)
        out.append({"lo": float(lo), "hi": float(hi), "n_pairs": int(sel.size), "pairs": pairs})
    return out


def _mean(v: list[float]) -> float:
    a = np.asarray(v, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def twin_table(
    spectra: np.ndarray,
    environments: Sequence[Environment],
    groups: Sequence,
    edges: Sequence[float] = DEFAULT_RMS_EDGES,
    n_per_bin: int | None = 300,
    seed: int = 0,
    threshold: float = 0.15,
    allow_reflection: bool = False,
) -> list[dict]:
    """How different the environments of spectral twins are, bin by bin (see the module docstring).

    Per bin: ``lo``, ``hi`` (RMS spectral difference, units of the spectra), ``n_pairs``, ``n_scored``
    (drawn pairs), ``same_atoms`` (fraction with equal atom counts), the means of :data:`TWIN_KEYS`
    (Å; the angle in degrees), ``rmsd_shell1_median`` (Å), ``frac_shell1_above`` (fraction of pairs
    whose paper-aligned 1st-shell RMSD exceeds ``threshold`` Å, the issue's target) and
    ``species_match`` (fraction with equal O fractions).  ``allow_reflection``: the alignment may also
    mirror (a spectrum is the same for an environment and its mirror image).
    """
    envs = list(environments)
    if len(envs) != len(spectra):
        raise ValueError(f"twin_table: {len(spectra)} spectra but {len(envs)} environments")
    rows = []
    for b in spectral_twins(spectra, groups, edges, n_per_bin, seed):
        ev = [evaluate_pair(envs[i], envs[j], method="paper", allow_reflection=allow_reflection) for i, j in b["pairs"]]
        r1 = np.array([e["rmsd_shell1"] for e in ev], dtype=np.float64)
        row = {"lo": b["lo"], "hi": b["hi"], "n_pairs": b["n_pairs"], "n_scored": len(ev)}
        row["same_atoms"] = float(np.mean([e["n_target"] == e["n_generated"] for e in ev])) if ev else float("nan")
        row.update({k: _mean([e[k] for e in ev]) for k in TWIN_KEYS})
        fin = r1[np.isfinite(r1)]
        row["rmsd_shell1_median"] = float(np.median(fin)) if fin.size else float("nan")
        row["frac_shell1_above"] = float(np.mean(fin > threshold)) if fin.size else float("nan")
        row["species_match"] = float(np.mean([e["species_match"] for e in ev])) if ev else float("nan")
        rows.append(row)
    return rows


def retrieval_oracle(
    query_spectra: np.ndarray,
    query_environments: Sequence[Environment],
    query_groups: Sequence,
    reference_spectra: np.ndarray,
    reference_environments: Sequence[Environment],
    reference_groups: Sequence,
    ks: Sequence[int] = (1, 3, 10),
    allow_reflection: bool = False,
) -> dict:
    """Mean over queries of the best paper-aligned 1st-shell RMSD (Å) among the top-k spectral matches.

    The matches are :func:`s2s.retrieval.neighbours.nearest_by_mse`'s (other structures only), so
    k = 1 is template matching.  Returns ``{"n": M, "k": {k: mean}, "median_top1": ...}``; the
    oracle knows the target, so it is a bound on choosing among near-spectrum candidates, not a method.
    ``allow_reflection``: the alignment may also mirror.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"retrieval_oracle: ks must be positive integers, got {ks}")
    targets = list(query_environments)
    refs = list(reference_environments)
    idx, _ = nearest_by_mse(query_spectra, reference_spectra, query_groups, reference_groups, k=ks[-1])
    idx = np.asarray(idx).reshape(len(targets), ks[-1])
    r1 = np.array(
        [
            [evaluate_pair(t, refs[j], method="paper", allow_reflection=allow_reflection)["rmsd_shell1"] for j in row]
            for t, row in zip(targets, idx)
        ]
    )
    best = {k: float(np.nanmean(np.nanmin(r1[:, :k], axis=1))) for k in ks}
    return {"n": len(targets), "k": best, "median_top1": float(np.nanmedian(r1[:, 0]))}


def twin_discrimination(
    query_spectra: np.ndarray,
    query_predicted: np.ndarray,
    query_groups: Sequence,
    reference_spectra: np.ndarray,
    reference_predicted: np.ndarray,
    reference_groups: Sequence,
    edges: Sequence[float] = DEFAULT_RMS_EDGES,
) -> list[dict]:
    """Can a forward model tell spectral twins apart?  Per bin of the true RMS difference.

    For every query site q and reference site r of another group whose true spectra differ by an
    RMS in [lo, hi): does the forward model's spectrum of q's own environment (``query_predicted``)
    match q's spectrum better (MSE) than its spectrum of r's environment (``reference_predicted``)?
    That is the choice a forward-model pick makes between two candidates of which one is right.
    Returns per bin ``lo``, ``hi``, ``n_pairs`` and ``accuracy`` (fraction preferring the truth;
    0.5 is chance).  All spectra (M, G) / (R, G) on the same grid.
    """
    q, qp = np.asarray(query_spectra, float), np.asarray(query_predicted, float)
    r, rp = np.asarray(reference_spectra, float), np.asarray(reference_predicted, float)
    if q.shape != qp.shape or r.shape != rp.shape or q.shape[1] != r.shape[1]:
        raise ValueError(f"twin_discrimination: shapes {q.shape}, {qp.shape}, {r.shape}, {rp.shape} do not agree")
    true_rms = pair_rms(q, r)
    other = np.asarray(query_groups)[:, None] != np.asarray(reference_groups)[None, :]
    own = ((qp - q) ** 2).mean(1)  # (M,) MSE of the truth's predicted spectrum
    decoy = pair_rms(q, rp) ** 2  # (M, R) MSE of each decoy's
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        i, j = np.nonzero(other & (true_rms >= lo) & (true_rms < hi))
        acc = float(np.mean(own[i] < decoy[i, j])) if i.size else float("nan")
        out.append({"lo": float(lo), "hi": float(hi), "n_pairs": int(i.size), "accuracy": acc})
    return out
