"""Where spectra and structures lie relative to the training set (paper Fig. 4 and 6).

* :func:`plot_similarity_gap` - Fig. 4 / 6b-c: SOAP similarity gap (model - template) vs the
  template-matching MSE (eV^-2), with the win rate.
* :func:`plot_umap` - Fig. 6a: a precomputed 2-D embedding (UMAP of spectra, arb. units).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from s2s.plots.style import COLORS, CYCLE, _as_1d, _new_ax, _styled, composition_color
from s2s.retrieval.template import TIE_TOL

# ----------------------------------------------------------------------------- template matching


@_styled
def plot_similarity_gap(
    mse: ArrayLike,
    gap: ArrayLike,
    tie_tol: float | None = None,
    title: str | None = None,
    log_mse: bool | None = None,
    bins: int | Sequence[float] = 40,
    xlabel: str = "MSE of best template spectrum (eV$^{-2}$)",
    fig=None,
) -> Figure:
    """Paper Fig. 4 / 6b-c: SOAP similarity gap (model - template) vs template-matching MSE.

    Purple: the model's structure is more similar to the target (``gap > tie_tol``);
    green: template matching is better (``gap < -tie_tol``); grey: ties.  The right
    panel is the histogram of the gap.  The title gives the win rate = wins / all
    cases (ties are not wins; same rule and default ``tie_tol`` as
    :func:`s2s.retrieval.template.summarize_gaps`).  MSE is between unit-area spectra on the
    eV grid, hence eV^-2.  ``log_mse`` (default: when the positive MSEs span > 2 decades).
    ``fig``: a Figure or SubFigure to draw into (e.g. Fig. 6b and 6c side by side from
    ``plt.figure(layout="constrained").subfigures(1, 2)``); returns the figure drawn into.
    """
    tie_tol = TIE_TOL if tie_tol is None else float(tie_tol)
    m = _as_1d(mse, "mse")
    g = _as_1d(gap, "gap")
    if m.shape != g.shape or m.size == 0:
        raise ValueError(f"plot_similarity_gap: need equal non-empty lengths, got {m.shape} and {g.shape}")
    win, loss = g > tie_tol, g < -tie_tol
    tie = ~(win | loss)
    n = g.size
    rate = float(win.mean())
    if log_mse is None:
        pos = m[m > 0]
        log_mse = bool(pos.size and np.all(m > 0) and pos.max() / pos.min() > 100)

    if fig is None:
        fig = plt.figure(figsize=(7.0, 3.8), layout="constrained")
    ax, axh = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": (3.2, 1.0)})
    ax.axhline(0, color="0.5", lw=0.8, zorder=1)
    for sel, col, lab in (
        (win, COLORS["model"], "model better"),
        (loss, COLORS["template"], "template better"),
        (tie, COLORS["tie"], "tie"),
    ):
        if sel.any():
            ax.scatter(
                m[sel], g[sel], s=14, color=col, alpha=0.75, linewidths=0, zorder=3, label=f"{lab} ({int(sel.sum())})"
            )
    if log_mse:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SOAP similarity gap (model − template)")
    ax.legend(loc="best", markerscale=1.5)
    ax.grid(True, color="0.92", lw=0.6)

    edges = np.histogram_bin_edges(g, bins=bins)
    if edges[0] < 0 < edges[-1] and not np.any(np.isclose(edges, 0.0)):
        edges = np.sort(np.append(edges, 0.0))  # no bin straddles zero: colour by sign
    left = np.zeros(len(edges) - 1)
    for sel, col in ((loss, COLORS["template"]), (win, COLORS["model"]), (tie, COLORS["tie"])):
        cnt, _ = np.histogram(g[sel], bins=edges)
        axh.barh(
            edges[:-1],
            cnt,
            left=left,
            height=np.diff(edges),
            align="edge",
            color=col,
            alpha=0.8,
            edgecolor="white",
            lw=0.3,
        )
        left += cnt
    axh.axhline(0, color="0.5", lw=0.8)
    axh.set_xlabel("Number of cases")
    axh.set_title(f"gap mean {g.mean():.2g}\ns.d. {g.std():.2g}", fontsize=7, loc="left")
    head = f"{title}: " if title else ""
    fig.suptitle(
        f"{head}model better in {100 * rate:.1f}% of {n} cases" + (f" ({int(tie.sum())} ties)" if tie.any() else "")
    )
    return fig


@_styled
def plot_umap(
    embedding: ArrayLike,
    labels: ArrayLike,
    ax=None,
    title: str | None = None,
    palette: Mapping[Any, Any] | None = None,
    order: Sequence[Any] | None = None,
    s: float = 8.0,
    alpha: float = 0.75,
    colorbar_label: str = "x in SiO$_x$",
    legend_title: str | None = None,
) -> Figure:
    """Paper Fig. 6a: scatter of a precomputed 2-D embedding (e.g. UMAP of spectra).

    ``labels`` (one per row): categories (strings / compositions) drawn as legend
    entries, or, when numeric with more than 12 distinct values, a continuous colour
    with a colour bar.  Category colours: ``palette``, else grey for labels containing
    "train"/"crystal", :func:`composition_color` for labels that read as a number x
    (e.g. "1.25", "SiO1.25"), else the default cycle.  Categories are drawn in
    ``order`` (default: training first, then sorted), so later ones lie on top.
    UMAP axes have no physical unit (arb. units).
    """
    emb = np.asarray(embedding, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ValueError(f"plot_umap: embedding must be (N, 2), got {emb.shape}")
    lab = np.asarray(labels)
    if lab.shape != (emb.shape[0],):
        raise ValueError(f"plot_umap: labels must have shape ({emb.shape[0]},), got {lab.shape}")
    fig, ax = _new_ax(ax, (5.6, 4.2))
    numeric = np.issubdtype(lab.dtype, np.number)
    if numeric and np.unique(lab).size > 12:
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=lab.astype(float), s=s, alpha=alpha, linewidths=0, cmap="viridis")
        fig.colorbar(sc, ax=ax, pad=0.02).set_label(colorbar_label)
    else:
        cats = list(dict.fromkeys(lab.tolist()))

        def is_bg(c) -> bool:
            return any(w in str(c).lower() for w in ("train", "crystal"))

        def as_x(c) -> float | None:
            try:
                return float(str(c).lower().replace("sio", "").replace("_", "").strip())
            except ValueError:
                return None

        if order is None:
            order = sorted(cats, key=lambda c: (not is_bg(c), as_x(c) if as_x(c) is not None else np.inf, str(c)))
        missing = set(cats) - set(order)
        if missing:
            raise ValueError(f"plot_umap: order lacks label(s) {sorted(map(str, missing))}")
        for i, c in enumerate(order):
            sel = lab == c
            if not sel.any():
                continue
            if palette and c in palette:
                col = palette[c]
            elif is_bg(c):
                col = COLORS["train"]
            elif as_x(c) is not None:
                col = composition_color(as_x(c))
            else:
                col = CYCLE[i % len(CYCLE)]
            name = f"SiO$_{{{as_x(c):g}}}$" if as_x(c) is not None else str(c)
            ax.scatter(
                emb[sel, 0],
                emb[sel, 1],
                s=s * (0.7 if is_bg(c) else 1.0),
                color=col,
                alpha=alpha * (0.6 if is_bg(c) else 1.0),
                linewidths=0,
                label=f"{name} ({int(sel.sum())})",
                zorder=1 if is_bg(c) else 2 + i * 0.01,
            )
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=2.0, title=legend_title, handletextpad=0.2)
    ax.set_xlabel("UMAP 1 (arb. units)")
    ax.set_ylabel("UMAP 2 (arb. units)")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return fig
