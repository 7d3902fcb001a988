"""Does the ensemble spread of ``s2s predict`` mean something?  Per-case spread and error, rank statistics.

Per test case (a target environment and its K generated candidates, :func:`case_stats`): spreads
that need no target (mean pairwise radial distance, std of the first-shell CN and of the mean
first-shell Si-O distance, optionally the mean pairwise aligned RMSD) and errors against the target
(mean aligned RMSD over all atoms and over the first shell, first-shell CN error, coverage of the
target's CNs among the candidates).  Spearman correlations spread vs error over the cases
(:func:`finite_spearman`, :func:`spearman_table`) with a bootstrap interval (:func:`bootstrap_ci`).
``scripts/calibration.py`` is the command line.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from s2s.ensembles.describe import geometry, mean_offdiag, pairwise_radial, pairwise_rmsd, shells, signature
from s2s.geometry.metrics import evaluate_pair
from s2s.geometry.shells import coordination_numbers


def finite_spearman(x, y) -> tuple[float, int]:
    """(Spearman rho, n) over the pairs where both are finite; NaN with fewer than 3 or a constant side."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan, int(ok.sum())
    r = spearmanr(x[ok], y[ok]).statistic
    return float(r), int(ok.sum())


def bootstrap_ci(x, y, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval (2.5 / 97.5 percentiles, ``n`` seeded resamples of the finite pairs) of Spearman rho."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            vals.append(spearmanr(x[i], y[i]).statistic)
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def case_stats(target, envs: list, aligned: bool) -> dict:
    """Spreads (``spread_*``, Å or counts), errors (``err_*``: RMSD in Å, CN error in %), best-of-K RMSD,
    coverage flags and the species-match share of one target Environment and its candidates ``envs``."""
    ev = [evaluate_pair(target, g, method="paper") for g in envs]
    cns = np.array([coordination_numbers(shells(g)) for g in envs])
    d1 = [geometry(g)["d_sio_first"] for g in envs]
    d1m = np.array([v.mean() for v in d1 if v.size])
    t_cn = coordination_numbers(target.shell)
    out = {
        "spread_radial": mean_offdiag(pairwise_radial(envs)),
        "spread_cn1_std": float(cns[:, 0].std()),
        "spread_d1_std": float(d1m.std()) if d1m.size > 1 else math.nan,
        "err_rmsd_all": float(np.nanmean([r["rmsd_all"] for r in ev])),
        "err_rmsd_shell1": float(np.nanmean([r["rmsd_shell1"] for r in ev]))
        if any(np.isfinite(r["rmsd_shell1"]) for r in ev)
        else math.nan,
        "err_cn1_pct": float(np.nanmean([r["cn_error_shell1_pct"] for r in ev])),
        "best_rmsd_all": float(np.nanmin([r["rmsd_all"] for r in ev])),
        "cn1_covered": bool(t_cn[0] in set(cns[:, 0].tolist())),
        "cn2_covered": bool(t_cn[1] in set(cns[:, 1].tolist())),
        "first_shell_covered": signature(target).split("|")[0] in {signature(g).split("|")[0] for g in envs},
        "species_match_share": float(np.mean([r["species_match"] for r in ev])),
    }
    if aligned:
        out["spread_aligned"] = mean_offdiag(pairwise_rmsd(envs, method="paper"))
    return out


def spearman_table(col: dict[str, np.ndarray], spreads: list[str], errors: list[str]) -> dict[str, dict[str, dict]]:
    """{spread: {error: {"spearman": rho, "n": cases}}} over the columns ``col`` (one value per case)."""
    table: dict[str, dict[str, dict]] = {}
    for s in spreads:
        table[s] = {}
        for e in errors:
            r, n = finite_spearman(col[s], col[e])
            table[s][e] = {"spearman": r, "n": n}
    return table
