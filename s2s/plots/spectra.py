"""Curves on a grid: O K-edge spectra (eV relative to the edge onset; Fig. 7a) and the radial
distribution n(r) around the excited O (Å; Fig. 7b, with :mod:`s2s.descriptors.rdf`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from s2s.descriptors.rdf import RDFEnsemble
from s2s.plots.style import COLORS, CYCLE, _as_1d, _new_ax, _styled

# ----------------------------------------------------------------------------- spectra, RDF


@_styled
def plot_spectra(
    grid: ArrayLike,
    spectra: Mapping[str, ArrayLike],
    ax=None,
    title: str | None = None,
    offset: float = 0.0,
    colors: Mapping[str, Any] | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    bands: Mapping[str, tuple[ArrayLike, ArrayLike]] | None = None,
    xlim: tuple[float, float] | None = None,
    xlabel: str = "Energy relative to edge onset (eV)",
    ylabel: str = "Intensity (arb. units, unit area)",
) -> Figure:
    """O K-edge spectra on a common energy grid (eV), e.g. Fig. 7a (experiment vs calculation).

    ``spectra``: label -> intensity (same length as ``grid``).  ``offset`` stacks them
    vertically (i * offset).  ``styles``: label -> extra ``plot`` keywords (e.g.
    ``{"ls": "--"}``); ``bands``: label -> (low, high) arrays shaded around that curve
    (e.g. an ensemble's 10-90 % range).
    """
    e = _as_1d(grid, "grid")
    if not spectra:
        raise ValueError("plot_spectra: no spectra")
    fig, ax = _new_ax(ax, (5.0, 3.4))
    for i, (lab, y) in enumerate(spectra.items()):
        y = _as_1d(y, f"spectra[{lab!r}]")
        if y.shape != e.shape:
            raise ValueError(f"plot_spectra: spectra[{lab!r}] has {y.size} points, grid has {e.size}")
        col = (colors or {}).get(lab, CYCLE[i % len(CYCLE)])
        kw = {"color": col, "label": lab, "lw": 1.5, **((styles or {}).get(lab, {}))}
        ax.plot(e, y + i * offset, **kw)
        if bands and lab in bands:
            lo, hi = (_as_1d(b, f"bands[{lab!r}]") for b in bands[lab])
            ax.fill_between(e, lo + i * offset, hi + i * offset, color=kw["color"], alpha=0.2, lw=0)
    ax.axvline(0.0, color="0.75", lw=0.7, ls=":", zorder=0)
    ax.set_xlim(*(xlim or (e.min(), e.max())))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" + offset" if offset else ""))
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    return fig


@_styled
def plot_rdf(
    r: ArrayLike,
    g_target: ArrayLike | None,
    g_generated_mean,
    g_generated_spread=None,
    ax=None,
    title: str | None = None,
    labels: tuple[str, str] = ("target", "generated (mean)"),
    spread_label: str | None = None,
    xlabel: str = "Distance from excited O, r (Å)",
    ylabel: str = "n(r) (atoms Å$^{-1}$)",
) -> Figure:
    """Paper Fig. 7b: radial distribution around the excited O, target vs generated ensemble.

    ``g_generated_mean`` is an array, or an :class:`s2s.descriptors.rdf.RDFEnsemble` (then its
    mean and quantile band are used).  ``g_generated_spread``: None, an array s
    (shaded mean ± s, e.g. the ensemble s.d.) or a (low, high) pair of arrays.  Curves
    are n(r) from :func:`s2s.descriptors.rdf.radial_distribution` (atoms per Å).
    """
    r = _as_1d(r, "r")
    if isinstance(g_generated_mean, RDFEnsemble):
        ens = g_generated_mean
        g_generated_mean = ens.mean
        if g_generated_spread is None:
            g_generated_spread = (ens.lo, ens.hi)
            spread_label = spread_label or (
                f"generated {100 * ens.quantiles[0]:.0f}–{100 * ens.quantiles[1]:.0f}% (n = {ens.n})"
            )
    gm = _as_1d(g_generated_mean, "g_generated_mean")
    if gm.shape != r.shape:
        raise ValueError(f"plot_rdf: g_generated_mean has shape {gm.shape}, r has {r.shape}")
    fig, ax = _new_ax(ax, (5.0, 3.3))
    if g_generated_spread is not None:
        if isinstance(g_generated_spread, tuple):
            lo, hi = (_as_1d(b, "g_generated_spread") for b in g_generated_spread)
            spread_label = spread_label or "generated spread"
        else:
            sd = _as_1d(g_generated_spread, "g_generated_spread")
            lo, hi = gm - sd, gm + sd
            spread_label = spread_label or "generated ± 1 s.d."
        if lo.shape != r.shape or hi.shape != r.shape:
            raise ValueError(f"plot_rdf: spread has shape {lo.shape}/{hi.shape}, r has {r.shape}")
        ax.fill_between(r, np.maximum(lo, 0), hi, color=COLORS["generated"], alpha=0.22, lw=0, label=spread_label)
    ax.plot(r, gm, color=COLORS["generated"], lw=1.6, label=labels[1])
    curves = [gm]
    if g_target is not None:
        gt = _as_1d(g_target, "g_target")
        if gt.shape != r.shape:
            raise ValueError(f"plot_rdf: g_target has shape {gt.shape}, r has {r.shape}")
        ax.plot(r, gt, color=COLORS["target"], lw=1.4, ls="--", label=labels[0], zorder=3)
        curves.append(gt)
    # x range: up to where any curve is still visible (+ 0.5 Å), unless the grid is shorter
    top = max(float(np.max(c)) for c in curves)
    seen = np.flatnonzero(np.any([c > 1e-3 * top for c in curves], axis=0)) if top > 0 else []
    r_hi = min(r.max(), r[seen[-1]] + 0.5) if len(seen) else r.max()
    ax.set_xlim(r.min(), r_hi)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    h, lab = ax.get_legend_handles_labels()
    ax.legend(h[::-1], lab[::-1], loc="upper left")  # target, generated mean, spread
    if title:
        ax.set_title(title)
    return fig
