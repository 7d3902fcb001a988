"""Figures of the data set: Supp. Fig. 1, number of structures (or sites) per composition x of SiO_x."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from s2s.plots.style import X_RANGE, _as_1d, _new_ax, _styled, composition_color

# ----------------------------------------------------------------------------- data set


@_styled
def plot_composition_histogram(
    x_values: ArrayLike,
    counts: ArrayLike | None = None,
    ax=None,
    title: str | None = None,
    log: bool = False,
    xlabel: str = "x in SiO$_x$",
    ylabel: str = "Number of structures",
    decimals: int = 3,
) -> Figure:
    """Supplementary Fig. 1: number of structures (or sites) per composition x of SiO_x.

    Without ``counts``, ``x_values`` holds one x per structure and equal values
    (rounded to ``decimals``) are counted; with ``counts``, bars of those heights are
    drawn at ``x_values``.  Counts are written on the bars.
    """
    x = _as_1d(x_values, "x_values")
    if x.size == 0:
        raise ValueError("plot_composition_histogram: no values")
    if counts is None:
        ux, cnt = np.unique(np.round(x, decimals), return_counts=True)
    else:
        cnt = np.asarray(counts)
        if cnt.shape != x.shape:
            raise ValueError(f"plot_composition_histogram: counts has shape {cnt.shape}, x_values {x.shape}")
        ux = x
    fig, ax = _new_ax(ax, (5.2, 3.4))
    gaps = np.diff(np.sort(ux))
    width = 0.8 * min(gaps.min(), 0.25 / 0.8) if gaps.size else 0.2
    cols = [composition_color(v, (min(ux.min(), X_RANGE[0]), max(ux.max(), X_RANGE[1]))) for v in ux]
    ax.bar(ux, cnt, width=width, color=cols, edgecolor="0.25", lw=0.6)
    for v, c in zip(ux, cnt):
        ax.annotate(
            f"{int(c)}", (v, c), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7
        )
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, cnt.max() * 1.12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (total {int(np.sum(cnt))})" if title else f"Total {int(np.sum(cnt))}")
    return fig
