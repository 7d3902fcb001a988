"""Figures of the paper, in one consistent style (matplotlib; headless-safe).

Every ``plot_*`` function takes plain arrays / :class:`~s2s.environment.Environment`
objects, draws one figure (or into a given ``ax``) and returns the ``Figure``; the
notebooks only compute numbers, call these and :func:`save_figure`.

Conventions: Si is blue and O red everywhere (:data:`COLORS`); the generative model
is purple and template matching green (paper, Fig. 4); amorphous compositions SiO_x
are coloured along one colour map (:func:`composition_color`: Si-rich purple ->
SiO2 green, as in Fig. 5a).  Distances are in Å, energies in eV relative to the edge
onset.  Figures are created with ``pyplot`` (which falls back to the Agg backend
without a display), so they show inline in notebooks; close them with
``plt.close(fig)`` or ``save_figure(..., close=True)``.

Paper figure -> function:
  Fig. 2a, 5a, Supp. 3a  :func:`plot_rmsd_sorted`
  Fig. 2b, 5b, 7c, Supp. 3b  :func:`plot_overlay_panel`, :func:`plot_overlay_grid`,
                          :func:`plot_environment_overlay` (after :func:`align_for_plot`)
  Fig. 3, Supp. 2        :func:`plot_oxygen_fraction`, :func:`plot_species_accuracy_by_composition`
  Fig. 4, 6b-c           :func:`plot_similarity_gap`
  Fig. 5 (summary)       :func:`plot_rmsd_by_composition`
  Fig. 6a                :func:`plot_umap` (takes a precomputed 2-D embedding)
  Fig. 7a, 7b            :func:`plot_spectra`, :func:`plot_rdf` (with :mod:`s2s.evaluation.rdf`)
  Supp. Fig. 1           :func:`plot_composition_histogram`
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from s2s.environment import SPECIES, Environment

# ----------------------------------------------------------------------------- style

#: Colours used by every figure.
COLORS: dict[str, str] = {
    "Si": "#2B5DAA",  # blue
    "O": "#D1342B",  # red
    "excited": "#111111",  # asterisk on the excited O
    "target": "#222222",
    "generated": "#7B3294",  # purple: the generative model
    "model": "#7B3294",
    "template": "#1B9E77",  # green: template matching
    "tie": "#9A9A9A",
    "train": "#B0B0B0",  # crystalline training data (background in UMAP)
    "mark": "#E41A1C",  # red circles marking cases A/B/C
    "shell1": "#E69F00",  # Okabe-Ito orange
    "shell2": "#009E73",  # Okabe-Ito bluish green
    "shell3": "#CC79A7",  # Okabe-Ito reddish purple
    "all": "#444444",
    "bond": "#8C8C8C",
}
#: Default cycle for curves that are neither species nor shells (spectra, series).
CYCLE: tuple[str, ...] = ("#222222", "#7B3294", "#1B9E77", "#E69F00", "#56B4E9", "#CC79A7", "#D55E00", "#0072B2")
#: Ball radii (Å) used in the 3-D structure plots (about 0.45 x covalent radius).
BALL_RADIUS: dict[str, float] = {"Si": 0.50, "O": 0.36}
#: Bonds are drawn between atoms closer than this (Å); the paper's neighbour cutoff.
BOND_CUTOFF: float = 2.0
#: Composition range (x in SiO_x) of the amorphous set, for :func:`composition_color`.
X_RANGE: tuple[float, float] = (0.25, 2.0)

#: rcParams applied while a figure is built (see :func:`style`).
STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.4,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "svg.hashsalt": "s2s",  # deterministic SVG ids
    "image.cmap": "viridis",
    "mathtext.default": "regular",
}


def style():
    """Context manager with :data:`STYLE` (``with style(): ...``)."""
    return mpl.rc_context(STYLE)


def _styled(func):
    """Run a plotting function under :data:`STYLE`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with style():
            return func(*args, **kwargs)

    return wrapper


def composition_color(x: float, x_range: tuple[float, float] = X_RANGE) -> tuple[float, float, float, float]:
    """Colour of composition SiO_x: viridis from purple (Si-rich) to green (SiO2); x clipped to ``x_range``."""
    lo, hi = x_range
    t = 0.0 if hi <= lo else float(np.clip((float(x) - lo) / (hi - lo), 0.0, 1.0))
    return mpl.colormaps["viridis"](0.82 * t)


def _series_color(name: str, i: int, colors: Mapping[str, Any] | None) -> Any:
    if colors and name in colors:
        return colors[name]
    if name in COLORS:
        return COLORS[name]
    low = str(name).lower()
    for k in ("1", "2", "3"):
        if "shell" in low and k in low or low.startswith(k):
            return COLORS[f"shell{k}"]
    if low in ("all", "overall", "all shells"):
        return COLORS["all"]
    return CYCLE[i % len(CYCLE)]


def _new_ax(ax, figsize: tuple[float, float], **subplot_kw):
    if ax is not None:
        return ax.figure, ax
    fig = plt.figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(**subplot_kw)


def _as_1d(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"plots: {name} must be 1-D, got shape {a.shape}")
    return a


def _x_key(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"plots: composition keys must be numbers x (as in SiO_x), got {x!r}") from exc


def _fmt_x(x) -> str:
    return f"{_x_key(x):g}"


# ----------------------------------------------------------------------------- saving


def save_figure(
    fig: Figure,
    path_stem: str | os.PathLike,
    formats: Sequence[str] = ("png", "svg"),
    dpi: int = 300,
    close: bool = False,
) -> list[Path]:
    """Write ``fig`` as ``<path_stem>.<fmt>`` for each format (PNG at ``dpi``, SVG/PDF vector).

    Each file is written to a temporary file in the target folder, then moved into
    place with ``os.replace`` (atomic); folders are created.  A suffix on
    ``path_stem`` that names one of ``formats`` is dropped.  Returns the paths written.
    """
    if not formats:
        raise ValueError("save_figure: formats is empty")
    stem = Path(path_stem)
    if stem.suffix.lstrip(".").lower() in {f.lower() for f in formats}:
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with style():
        for fmt in formats:
            fmt = fmt.lower().lstrip(".")
            if fmt not in ("png", "svg", "pdf"):
                raise ValueError(f"save_figure: format must be png, svg or pdf; got {fmt!r}")
            out = stem.parent / f"{stem.name}.{fmt}"
            fd, tmp = tempfile.mkstemp(prefix=f".{stem.name}.", suffix=f".{fmt}.tmp", dir=stem.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    # No timestamps: identical inputs give identical files.
                    meta = {"Date": None} if fmt == "svg" else {"CreationDate": None} if fmt == "pdf" else None
                    fig.savefig(fh, format=fmt, dpi=dpi, metadata=meta)
                os.replace(tmp, out)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            written.append(out)
    if close:
        plt.close(fig)
    return written


# ----------------------------------------------------------------------------- 3-D structures


def align_for_plot(target: Environment, generated: Environment, method: str = "paper", **kwargs) -> Environment:
    """``generated`` rotated onto ``target`` (:func:`s2s.evaluation.align.align`), ready for an overlay.

    Coordinates are relative to the excited O (Å); ``meta['rmsd']`` holds the alignment RMSD (Å).
    """
    from s2s.evaluation.align import align

    a = align(target, generated, method=method, **kwargs)
    meta = {**generated.meta, "rmsd": a.rmsd, "alignment": a.method}
    return Environment(generated.species, a.generated_rotated + target.coords[0], generated.shell, meta)


def _view_rotation(coords: np.ndarray) -> np.ndarray:
    """Proper rotation putting the principal axes of ``coords`` along x, y, z (largest spread first)."""
    c = coords - coords.mean(axis=0)
    if len(c) < 3:
        return np.eye(3)
    _, vecs = np.linalg.eigh(c.T @ c)
    r = vecs[:, ::-1].T
    if np.linalg.det(r) < 0:
        r[2] *= -1
    return r


def _bonds(coords: np.ndarray, cutoff: float) -> np.ndarray:
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    i, j = np.nonzero(np.triu(d < cutoff, k=1))
    return np.stack([i, j], axis=1)


def _ball_size(ax, span: float, radius: float, zoom: float = 1.0) -> float:
    """Scatter marker area (pt^2) of a ball of ``radius`` Å in a 3-D box of edge ``span`` Å."""
    bbox = ax.get_window_extent()  # display pixels (works inside SubFigures)
    w_pt = min(bbox.width, bbox.height) * 72.0 / ax.figure.dpi
    # the default 3-D projection draws the cube's edge at about 0.55 of the axes size
    d_pt = 2.0 * radius / span * 0.55 * zoom * w_pt
    return float(max(d_pt, 2.0) ** 2)


def _draw_env(
    ax,
    coords: np.ndarray,
    species: np.ndarray,
    span: float,
    kind: str,
    bond_cutoff: float,
    zbase: float,
    zoom: float = 1.0,
) -> None:
    """Balls and half-coloured bonds of one environment; kind 'solid', 'hollow' or 'cloud'."""
    from mpl_toolkits.mplot3d.art3d import Line3DCollection

    names = [SPECIES[s] for s in species]
    if kind != "cloud" and bond_cutoff > 0 and len(coords) > 1:
        pairs = _bonds(coords, bond_cutoff)
        if len(pairs):
            mid = 0.5 * (coords[pairs[:, 0]] + coords[pairs[:, 1]])
            segs = np.concatenate(
                [np.stack([coords[pairs[:, 0]], mid], 1), np.stack([coords[pairs[:, 1]], mid], 1)]
            )
            cols = [COLORS[names[i]] for i in pairs[:, 0]] + [COLORS[names[j]] for j in pairs[:, 1]]
            lc = Line3DCollection(
                segs,
                colors=cols,
                linewidths=2.6 if kind == "solid" else 1.4,
                linestyles="solid" if kind == "solid" else (0, (3, 2)),
                alpha=0.85 if kind == "solid" else 0.9,
            )
            lc.set_zorder(zbase)
            ax.add_collection3d(lc)
    for s, name in enumerate(SPECIES):
        sel = species == s
        if not sel.any():
            continue
        size = _ball_size(ax, span, BALL_RADIUS[name], zoom)
        xyz = coords[sel]
        if kind == "solid":
            kw = dict(s=size, c=COLORS[name], edgecolors="#1a1a1a", linewidths=0.5, alpha=1.0, depthshade=False)
        elif kind == "hollow":  # light translucent disc with a coloured ring, a bit smaller than the target ball
            kw = dict(s=0.72 * size, facecolors=[_tint(COLORS[name], 0.7, 0.55)], edgecolors=COLORS[name],
                      linewidths=1.5, depthshade=False)
        else:  # cloud of an ensemble
            kw = dict(s=0.25 * size, c=COLORS[name], alpha=0.25, linewidths=0, depthshade=False)
        sc = ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], **kw)
        sc.set_zorder(zbase + 1)


def _tint(color, amount: float, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """``color`` mixed with white (``amount`` = share of white), with ``alpha``."""
    rgb = np.asarray(mpl.colors.to_rgb(color))
    return (*(rgb + (1.0 - rgb) * amount), alpha)


def _legend_handles(target: bool, generated: str | None) -> list[Line2D]:
    h = []
    for name in SPECIES:
        if target:
            h.append(Line2D([], [], ls="", marker="o", ms=7, mfc=COLORS[name], mec="#1a1a1a", mew=0.5,
                            label=f"{name} target"))
        if generated == "hollow":
            h.append(Line2D([], [], ls="", marker="o", ms=6, mfc=_tint(COLORS[name], 0.7, 0.55),
                            mec=COLORS[name], mew=1.4, label=f"{name} generated"))
        elif generated == "cloud":
            h.append(Line2D([], [], ls="", marker="o", ms=4, mfc=COLORS[name], mec="none", alpha=0.4,
                            label=f"{name} generated (ensemble)"))
        elif generated == "solid":
            h.append(Line2D([], [], ls="", marker="o", ms=7, mfc=COLORS[name], mec="#1a1a1a", mew=0.5,
                            label=f"{name} generated"))
    h.append(Line2D([], [], ls="", marker="*", ms=9, color=COLORS["excited"], label="excited O"))
    return h


def _cube(coords_all: np.ndarray, pad: float) -> tuple[np.ndarray, float]:
    """Centre and edge (Å) of a cube holding all atoms plus ``pad``."""
    lo, hi = coords_all.min(axis=0), coords_all.max(axis=0)
    return 0.5 * (lo + hi), float(max((hi - lo).max(), 1.0)) + 2 * pad


def _setup_3d(
    ax, centre: np.ndarray, span: float, elev: float, azim: float, axes_labels: bool | None, zoom: float
) -> None:
    """Equal-aspect cube; axes with ticks in Å (True), Å labels only (False) or no axes (None)."""
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
        setter(c - span / 2, c + span / 2)
    ax.set_box_aspect((1, 1, 1), zoom=zoom)
    ax.view_init(elev=elev, azim=azim)
    ax.computed_zorder = False
    if axes_labels is None:
        ax.set_axis_off()
        return
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color((0.97, 0.97, 0.97, 1.0))
        axis._axinfo["grid"]["color"] = (0.85, 0.85, 0.85, 1.0)
        axis._axinfo["grid"]["linewidth"] = 0.4
    if axes_labels:
        ax.set_xlabel("x (Å)", labelpad=-8)
        ax.set_ylabel("y (Å)", labelpad=-8)
        ax.set_zlabel("z (Å)", labelpad=-9)
        ax.tick_params(labelsize=6, pad=-3)
        step = 2.0 if span <= 14 else 4.0
        ticks = lambda c: np.arange(np.ceil((c - span / 2) / step) * step, c + span / 2 + 1e-9, step)  # noqa: E731
        ax.set_xticks(ticks(centre[0]))
        ax.set_yticks(ticks(centre[1]))
        ax.set_zticks(ticks(centre[2]))
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
        ax.set_xlabel("x (Å)", labelpad=-14)
        ax.set_ylabel("y (Å)", labelpad=-14)
        ax.set_zlabel("z (Å)", labelpad=-14)


def _check_env(env, name: str) -> Environment:
    if not isinstance(env, Environment):
        raise TypeError(f"plots: {name} must be an s2s.environment.Environment, got {type(env).__name__}")
    if not np.all(np.isfinite(env.coords)):
        raise ValueError(f"plots: {name}.coords contains NaN/inf")
    return env


def _render(ax, tc, t_species, gcs, g_species, gen_kind, cube, bond_cutoff, elev, azim, axes_labels, zoom,
            legend, title) -> None:
    centre, span = cube
    _setup_3d(ax, centre, span, elev, azim, axes_labels, zoom)
    if tc is not None:
        _draw_env(ax, tc, t_species, span, "solid", bond_cutoff, zbase=1, zoom=zoom)
    for gc, gs in zip(gcs, g_species):
        _draw_env(ax, gc, gs, span, gen_kind, bond_cutoff, zbase=4, zoom=zoom)
    ax.scatter([0], [0], [0], marker="*", s=_ball_size(ax, span, 0.45, zoom), c=COLORS["excited"],
               edgecolors="white", linewidths=0.6, depthshade=False, zorder=10)
    if title:
        ax.set_title(title, pad=0)
    if legend:
        ax.legend(handles=_legend_handles(tc is not None, gen_kind if gcs else None), loc="upper left",
                  bbox_to_anchor=(0.0, 1.0), fontsize=6.5, handletextpad=0.2, borderaxespad=0.0,
                  labelspacing=0.3)


def _frame(target, generated, orient: bool):
    """Checked inputs in a common frame: (target coords | None, species), [gen coords], [gen species], kind."""
    if target is None and generated is None:
        raise ValueError("plots: target and generated are both None")
    ensemble = generated is not None and not isinstance(generated, Environment)
    gens = [] if generated is None else (list(generated) if ensemble else [generated])
    if ensemble and not gens:
        raise ValueError("plots: empty ensemble of generated environments")
    if target is not None:
        _check_env(target, "target")
    for k, g in enumerate(gens):
        _check_env(g, f"generated[{k}]" if ensemble else "generated")
    ref = target if target is not None else gens[0]
    origin = ref.coords[0]
    rot = _view_rotation(ref.coords - origin) if orient else np.eye(3)
    tc = None if target is None else (target.coords - origin) @ rot.T
    gcs = [(g.coords - origin) @ rot.T for g in gens]
    kind = "cloud" if ensemble else ("hollow" if target is not None else "solid")
    return tc, (None if target is None else target.species), gcs, [g.species for g in gens], kind


@_styled
def plot_environment_overlay(
    target: Environment | None,
    generated: Environment | Sequence[Environment] | None,
    ax=None,
    title: str | None = "Overlay: target (solid) and generated (hollow)",
    bond_cutoff: float = BOND_CUTOFF,
    orient: bool = True,
    elev: float = 22.0,
    azim: float = -62.0,
    legend: bool = True,
    axes_labels: bool | None = True,
    zoom: float = 1.0,
) -> Figure:
    """3-D overlay of a target and an aligned generated environment (paper, Fig. 2b left).

    Target atoms are solid balls with solid bonds, generated atoms translucent hollow
    balls with dashed bonds (bonds: pairs closer than ``bond_cutoff`` Å, each half in
    its atom's colour), the excited O (atom 0) is marked with an asterisk; Si blue, O
    red, equal aspect, axes in Å (``axes_labels=None`` hides the axes).  ``generated``
    must already be aligned onto ``target`` (:func:`align_for_plot`).  A sequence of
    generated environments is drawn as a faint point cloud (an ensemble).  Either may
    be None to draw one structure alone (drawn solid).  ``orient`` rotates everything
    by one rotation (principal axes of the target, else of the generated structure) so
    the structure spreads across the view; distances are unchanged.
    """
    tc, ts, gcs, gsp, kind = _frame(target, generated, orient)
    fig, ax = _new_ax(ax, (4.6, 4.4), projection="3d")
    cube = _cube(np.concatenate([c for c in [tc, *gcs] if c is not None]), BALL_RADIUS["Si"] + 0.2)
    _render(ax, tc, ts, gcs, gsp, kind, cube, bond_cutoff, elev, azim, axes_labels, zoom, legend, title)
    return fig


@_styled
def plot_environment(env: Environment, ax=None, title: str | None = None, **kwargs) -> Figure:
    """One environment in 3-D (solid balls, bonds, asterisk on the excited O); see :func:`plot_environment_overlay`."""
    return plot_environment_overlay(env, None, ax=ax, title=title, **kwargs)


@_styled
def plot_overlay_panel(
    target: Environment,
    generated: Environment,
    label: str = "",
    rmsd: float | None = None,
    fig=None,
    bond_cutoff: float = BOND_CUTOFF,
    elev: float = 22.0,
    azim: float = -62.0,
) -> Figure:
    """Paper Fig. 2b frame: overlay (left, large), target (upper right), generated (lower right).

    ``generated`` must be aligned onto ``target`` (:func:`align_for_plot`); the three
    views share one orientation and one scale (axes in Å on the overlay).  ``label``
    (e.g. "A") and ``rmsd`` (Å; from ``generated.meta['rmsd']`` if not given) head the
    overlay.  ``fig`` may be a Figure or SubFigure to draw into (see
    :func:`plot_overlay_grid`).  Returns the figure drawn into.
    """
    _check_env(target, "target")
    _check_env(generated, "generated")
    if rmsd is None:
        rmsd = generated.meta.get("rmsd")
    if fig is None:
        fig = plt.figure(figsize=(6.0, 3.8))
    gs = fig.add_gridspec(2, 2, width_ratios=(1.6, 1.0), wspace=0.0, hspace=0.0,
                          left=0.0, right=1.0, bottom=0.0, top=0.92)
    ax_o = fig.add_subplot(gs[:, 0], projection="3d")
    ax_t = fig.add_subplot(gs[0, 1], projection="3d")
    ax_g = fig.add_subplot(gs[1, 1], projection="3d")
    tc, ts, gcs, gsp, _ = _frame(target, generated, orient=True)
    cube = _cube(np.concatenate([tc, *gcs]), BALL_RADIUS["Si"] + 0.2)
    view = dict(cube=cube, bond_cutoff=bond_cutoff, elev=elev, azim=azim)
    _render(ax_o, tc, ts, gcs, gsp, "hollow", axes_labels=True, zoom=1.0, legend=True, title=None, **view)
    _render(ax_t, tc, ts, [], [], "solid", axes_labels=None, zoom=1.3, legend=False, title=None, **view)
    _render(ax_g, None, None, gcs, gsp, "solid", axes_labels=None, zoom=1.3, legend=False, title=None, **view)
    for a, name in ((ax_t, "target"), (ax_g, "generated")):
        a.text2D(0.02, 0.9, name, transform=a.transAxes, fontsize=8, ha="left", va="top")
    head = f"{label}   " if label else ""
    head += "overlay" if rmsd is None else f"overlay, RMSD = {rmsd:.3f} Å"
    ax_o.set_title(head, pad=0, fontsize=9, loc="left", fontweight="bold" if label else "normal")
    return fig


@_styled
def plot_overlay_grid(
    cases: Sequence[tuple[str, Environment, Environment]],
    rmsd: Sequence[float | None] | None = None,
    ncols: int = 1,
    panel_size: tuple[float, float] = (5.6, 3.5),
    **kwargs,
) -> Figure:
    """Several :func:`plot_overlay_panel` frames, e.g. cases A/B/C of Fig. 2b.

    ``cases``: (label, target, aligned generated) triples; ``rmsd`` optional per case (Å).
    """
    cases = list(cases)
    if not cases:
        raise ValueError("plot_overlay_grid: no cases")
    if rmsd is not None and len(rmsd) != len(cases):
        raise ValueError(f"plot_overlay_grid: {len(rmsd)} rmsd values for {len(cases)} cases")
    ncols = max(1, min(ncols, len(cases)))
    nrows = -(-len(cases) // ncols)
    fig = plt.figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows))
    subs = np.atleast_1d(fig.subfigures(nrows, ncols, wspace=0.0, hspace=0.0)).ravel()
    for k, (label, t, g) in enumerate(cases):
        plot_overlay_panel(t, g, label, None if rmsd is None else rmsd[k], fig=subs[k], **kwargs)
    return fig


# ----------------------------------------------------------------------------- RMSD


@_styled
def plot_rmsd_sorted(
    rmsd_by_shell: Mapping[str, ArrayLike],
    marks: Mapping[str, int | tuple[str, int]] | None = None,
    ax=None,
    title: str | None = None,
    colors: Mapping[str, Any] | None = None,
    mark_series: str | None = None,
    floor: float = 1e-3,
    xlabel: str = "Case (sorted by RMSD)",
    ylabel: str = "RMSD (Å)",
) -> Figure:
    """Paper Fig. 2a / 5a: RMSD of each case sorted ascending, one series per shell, log y.

    ``rmsd_by_shell``: name -> per-case RMSD (Å; NaN = shell empty, left out).  Values
    below ``floor`` Å are drawn at ``floor`` (log axis).  ``marks``: label -> case
    index (into the arrays as given), marked with a red circle on ``mark_series``
    (default: a series named "all"/"overall" if present, else the first), or label ->
    (series name, case index).  The legend gives each series' mean and count.
    """
    if not rmsd_by_shell:
        raise ValueError("plot_rmsd_sorted: rmsd_by_shell is empty")
    fig, ax = _new_ax(ax, (5.2, 4.0))
    names = list(rmsd_by_shell)
    ranks: dict[str, dict[int, tuple[int, float]]] = {}
    for i, name in enumerate(names):
        v = _as_1d(rmsd_by_shell[name], f"rmsd_by_shell[{name!r}]")
        idx = np.flatnonzero(np.isfinite(v))
        order = idx[np.argsort(v[idx], kind="stable")]
        y = np.maximum(v[order], floor)
        x = np.arange(1, len(order) + 1)
        ranks[name] = {int(c): (int(r), float(yy)) for c, r, yy in zip(order, x, y)}
        mean = float(np.mean(v[idx])) if idx.size else float("nan")
        ax.scatter(x, y, s=9, color=_series_color(name, i, colors), alpha=0.85, linewidths=0,
                   label=f"{name}  (mean {mean:.3f} Å, n = {idx.size})", zorder=2 + i * 0.01)
    if marks:
        default = mark_series or next((n for n in names if str(n).lower() in ("all", "overall")), names[0])
        for lab, spec in marks.items():
            series, case = (spec if isinstance(spec, tuple) else (default, spec))
            if series not in ranks:
                raise ValueError(f"plot_rmsd_sorted: mark {lab!r} names unknown series {series!r}; have {names}")
            if int(case) not in ranks[series]:
                raise ValueError(f"plot_rmsd_sorted: mark {lab!r}: case {case} has no finite RMSD in {series!r}")
            r, y = ranks[series][int(case)]
            ax.scatter([r], [y], s=110, facecolors="none", edgecolors=COLORS["mark"], linewidths=1.5, zorder=5,
                       clip_on=False)
            ax.annotate(lab, (r, y), xytext=(-8, 8), textcoords="offset points", color=COLORS["mark"],
                        fontweight="bold", ha="right", va="bottom", fontsize=10, zorder=6,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", axis="y", color="0.9", lw=0.6)
    n_max = max(len(r) for r in ranks.values())
    ax.set_xlim(1 - 0.03 * n_max - 0.5, 1.03 * n_max + 0.5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, markerscale=1.8, columnspacing=1.0)
    if title:
        ax.set_title(title)
    return fig


def _box_strip(ax, pos: float, values: np.ndarray, color, width: float, rng: np.random.Generator, points: bool):
    if values.size == 0:
        return
    bp = ax.boxplot([values], positions=[pos], widths=width, showfliers=not points, patch_artist=True,
                    medianprops=dict(color="black", lw=1.2), whiskerprops=dict(color="0.3"),
                    capprops=dict(color="0.3"), boxprops=dict(edgecolor="0.3", lw=0.8),
                    flierprops=dict(marker=".", ms=3, mfc="0.4", mec="none"))
    for b in bp["boxes"]:
        b.set_facecolor(mpl.colors.to_rgba(color, 0.35))
    if points:
        jitter = rng.uniform(-0.32, 0.32, values.size) * width
        ax.scatter(pos + jitter, values, s=5, color=color, alpha=0.55, linewidths=0, zorder=3)
    ax.scatter([pos], [values.mean()], marker="D", s=18, color="white", edgecolors="black", linewidths=0.8, zorder=4)


@_styled
def plot_rmsd_by_composition(
    rmsd_by_x: Mapping[Any, ArrayLike | Mapping[str, ArrayLike]],
    ax=None,
    title: str | None = None,
    log: bool = True,
    floor: float = 1e-3,
    points: bool = True,
    colors: Mapping[str, Any] | None = None,
    seed: int = 0,
    ylabel: str = "RMSD (Å)",
    xlabel: str = "x in SiO$_x$",
) -> Figure:
    """Amorphous set (Fig. 5 / Supp. Fig. 3 summary): box + strip plot of RMSD per composition x.

    ``rmsd_by_x``: x -> per-site RMSD array (Å; one box per x, coloured by
    :func:`composition_color`), or x -> {series name (e.g. "shell 1") -> array} (grouped
    boxes, coloured per series).  NaNs are dropped; values below ``floor`` are drawn at
    ``floor`` on a log axis.  White diamonds are means; tick labels give n.  ``seed``
    fixes the jitter of the points.
    """
    if not rmsd_by_x:
        raise ValueError("plot_rmsd_by_composition: rmsd_by_x is empty")
    xs = sorted(rmsd_by_x, key=_x_key)
    nested = isinstance(rmsd_by_x[xs[0]], Mapping)
    series = []
    if nested:
        for x in xs:
            for s in rmsd_by_x[x]:
                if s not in series:
                    series.append(s)
    per_x = 0.6 if not nested else 0.5 + 0.3 * (len(series) - 1)
    fig, ax = _new_ax(ax, (max(4.0, per_x * len(xs) + 1.4), 3.6))
    rng = np.random.default_rng(seed)
    ticks = []
    for i, x in enumerate(xs):
        groups = rmsd_by_x[x] if nested else {None: rmsd_by_x[x]}
        k = len(series) if nested else 1
        width = 0.75 / k
        counts = []
        for j, s in enumerate(series if nested else [None]):
            if s not in groups:
                continue
            v = _as_1d(groups[s], f"rmsd_by_x[{x!r}]" + ("" if s is None else f"[{s!r}]"))
            v = v[np.isfinite(v)]
            counts.append(v.size)
            if log:
                v = np.maximum(v, floor)
            color = composition_color(_x_key(x)) if s is None else _series_color(s, j, colors)
            _box_strip(ax, i + (j - (k - 1) / 2) * width, v, color, width * 0.85, rng, points)
        ticks.append(f"{_fmt_x(x)}\nn = {max(counts) if counts else 0}")
    ax.set_xticks(range(len(xs)), ticks)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    if log:
        ax.set_yscale("log")
    ax.grid(True, axis="y", color="0.9", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles = [mpl.patches.Patch(facecolor=mpl.colors.to_rgba(_series_color(s, j, colors), 0.5),
                                 edgecolor="0.3", label=str(s)) for j, s in enumerate(series)]
    handles.append(Line2D([], [], ls="", marker="D", ms=4.5, mfc="white", mec="black", label="mean"))
    handles.append(Line2D([], [], color="black", lw=1.2, label="median, box: quartiles"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(handles))
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- species


@_styled
def plot_oxygen_fraction(
    target_frac: ArrayLike,
    generated_frac: ArrayLike,
    ax=None,
    title: str | None = None,
    match: ArrayLike | None = None,
    atol: float = 1e-9,
    full_range: bool = False,
) -> Figure:
    """Paper Fig. 3: O fraction n_O/N of the generated vs the target environment, one point per distinct pair.

    Marker area and colour give the number of cases at each (target, generated)
    pair; the diagonal is an exact match.  Accuracy (in the title) = fraction of cases
    whose fractions are equal (``|diff| <= atol``, or ``match`` if given, e.g. the
    integer comparison of :func:`s2s.evaluation.metrics.species_match`).  Axes span the data
    (equal aspect), or 0..1 with ``full_range``.
    """
    t = _as_1d(target_frac, "target_frac")
    g = _as_1d(generated_frac, "generated_frac")
    if t.shape != g.shape or t.size == 0:
        raise ValueError(f"plot_oxygen_fraction: need equal non-empty lengths, got {t.shape} and {g.shape}")
    if np.any((t < 0) | (t > 1) | (g < 0) | (g > 1)) or not np.all(np.isfinite(t) & np.isfinite(g)):
        raise ValueError("plot_oxygen_fraction: O fractions must be finite and in [0, 1]")
    ok = np.abs(t - g) <= atol if match is None else np.asarray(match, dtype=bool).reshape(-1)
    if ok.shape != t.shape:
        raise ValueError(f"plot_oxygen_fraction: match has shape {ok.shape}, expected {t.shape}")
    acc = float(ok.mean())
    pairs, counts = np.unique(np.round(np.stack([t, g], 1), 6), axis=0, return_counts=True)

    fig, ax = _new_ax(ax, (4.4, 3.9))
    if full_range:
        lo, hi = -0.03, 1.03
    else:  # zoom onto the data (crystalline SiO2 sites cluster near 2/3)
        pad = max(0.04, 0.08 * float(pairs.max() - pairs.min()))
        lo, hi = max(-0.03, pairs.min() - pad), min(1.03, pairs.max() + pad)
    ax.plot([lo, hi], [lo, hi], ls="--", lw=0.9, color="0.55", zorder=1, label="generated = target")
    norm = mpl.colors.LogNorm(vmin=1, vmax=max(2, counts.max()))
    size = 14 + 160 * np.sqrt(counts / counts.max())
    order = np.argsort(-counts)  # big markers first, small ones stay visible on top
    sc = ax.scatter(pairs[order, 0], pairs[order, 1], s=size[order], c=counts[order], cmap="viridis", norm=norm,
                    edgecolors="black", linewidths=0.4, alpha=0.9, zorder=3)
    cb = fig.colorbar(sc, ax=ax, pad=0.02, fraction=0.05)
    cb.set_label("Number of cases")
    cb.ax.yaxis.set_major_locator(mpl.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    cb.ax.yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter("%d"))
    cb.ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("Target O fraction $n_O/N$")
    ax.set_ylabel("Generated O fraction $n_O/N$")
    ax.legend(loc="upper left")
    head = f"{title}\n" if title else ""
    ax.set_title(f"{head}Species accuracy {acc:.3f} ({int(ok.sum())}/{ok.size} exact)")
    return fig


def _accuracy(v) -> tuple[float, int | None]:
    a = np.asarray(v)
    if a.ndim == 0:
        return float(a), None
    a = a.astype(bool).reshape(-1)
    return (float(a.mean()) if a.size else float("nan")), int(a.size)


@_styled
def plot_species_accuracy_by_composition(
    accuracy: Mapping[Any, float | ArrayLike],
    n: Mapping[Any, int] | None = None,
    reference: float | None = None,
    reference_label: str = "crystalline test split",
    o_frac_target: Mapping[Any, ArrayLike] | None = None,
    o_frac_generated: Mapping[Any, ArrayLike] | None = None,
    title: str | None = None,
    xlabel: str = "x in SiO$_x$",
) -> Figure:
    """Species accuracy per amorphous composition (bars), optionally with O fractions.

    ``accuracy``: x -> accuracy in [0, 1], or x -> per-site booleans (then n is their
    count).  ``reference``: a horizontal line (e.g. the crystalline test accuracy).  With
    ``o_frac_target`` and ``o_frac_generated`` (x -> per-site O fractions) a second
    panel shows their mean ± s.d. per x (does the model over- or under-estimate O?).
    """
    if not accuracy:
        raise ValueError("plot_species_accuracy_by_composition: accuracy is empty")
    xs = sorted(accuracy, key=_x_key)
    two = o_frac_target is not None and o_frac_generated is not None
    fig = plt.figure(figsize=(8.4 if two else 4.6, 3.6), layout="constrained")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    ax = axes[0]
    vals = []
    for i, x in enumerate(xs):
        acc, cnt = _accuracy(accuracy[x])
        cnt = n.get(x, cnt) if n else cnt
        vals.append(acc)
        ax.bar(i, acc, width=0.7, color=composition_color(_x_key(x)), edgecolor="0.25", lw=0.6)
        txt = f"{100 * acc:.1f}%" + ("" if cnt is None else f"\nn={cnt}")
        ax.text(i, min(acc, 1.0) + 0.015, txt, ha="center", va="bottom", fontsize=7)
    if reference is not None:
        ax.axhline(reference, ls="--", lw=1.0, color=COLORS["target"], label=f"{reference_label} ({reference:.3f})")
        ax.legend(loc="upper left")
    ax.set_xticks(range(len(xs)), [_fmt_x(x) for x in xs])
    ax.set_ylim(0, 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Species accuracy (fraction of sites)")
    ax.set_title("O fraction exactly reproduced")
    if two:
        ax2 = axes[1]
        for k, (data, name, col, mk) in enumerate(
            ((o_frac_target, "target", COLORS["target"], "s"), (o_frac_generated, "generated", COLORS["generated"], "o"))
        ):
            xx = [x for x in xs if x in data]
            m = [np.nanmean(_as_1d(data[x], f"o_frac_{name}[{x!r}]")) for x in xx]
            s = [np.nanstd(_as_1d(data[x], f"o_frac_{name}[{x!r}]")) for x in xx]
            pos = np.array([xs.index(x) for x in xx]) + (k - 0.5) * 0.18
            ax2.errorbar(pos, m, yerr=s, fmt=mk + "-", color=col, ms=5, lw=1.0, capsize=2, label=f"{name} (mean ± s.d.)")
        ax2.set_xticks(range(len(xs)), [_fmt_x(x) for x in xs])
        ax2.set_ylim(0, 1)
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("O fraction of the environment $n_O/N$")
        ax2.legend(loc="lower right")
        ax2.set_title("O content of the environments")
    if title:
        fig.suptitle(title)
    return fig


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
    :func:`s2s.evaluation.template.summarize_gaps`).  MSE is between unit-area spectra on the
    eV grid, hence eV^-2.  ``log_mse`` (default: when the positive MSEs span > 2 decades).
    ``fig``: a Figure or SubFigure to draw into (e.g. Fig. 6b and 6c side by side from
    ``plt.figure(layout="constrained").subfigures(1, 2)``); returns the figure drawn into.
    """
    from s2s.evaluation.template import TIE_TOL

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
    ax, axh = fig.subplots(1, 2, sharey=True, gridspec_kw=dict(width_ratios=(3.2, 1.0)))
    ax.axhline(0, color="0.5", lw=0.8, zorder=1)
    for sel, col, lab in ((win, COLORS["model"], "model better"), (loss, COLORS["template"], "template better"),
                          (tie, COLORS["tie"], "tie")):
        if sel.any():
            ax.scatter(m[sel], g[sel], s=14, color=col, alpha=0.75, linewidths=0, zorder=3,
                       label=f"{lab} ({int(sel.sum())})")
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
        axh.barh(edges[:-1], cnt, left=left, height=np.diff(edges), align="edge", color=col, alpha=0.8,
                 edgecolor="white", lw=0.3)
        left += cnt
    axh.axhline(0, color="0.5", lw=0.8)
    axh.set_xlabel("Number of cases")
    axh.set_title(f"gap mean {g.mean():.2g}\ns.d. {g.std():.2g}", fontsize=7, loc="left")
    head = f"{title}: " if title else ""
    fig.suptitle(f"{head}model better in {100 * rate:.1f}% of {n} cases"
                 + (f" ({int(tie.sum())} ties)" if tie.any() else ""))
    return fig


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
        ax.annotate(f"{int(c)}", (v, c), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, cnt.max() * 1.12)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (total {int(np.sum(cnt))})" if title else f"Total {int(np.sum(cnt))}")
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
            ax.scatter(emb[sel, 0], emb[sel, 1], s=s * (0.7 if is_bg(c) else 1.0), color=col,
                       alpha=alpha * (0.6 if is_bg(c) else 1.0), linewidths=0, label=f"{name} ({int(sel.sum())})",
                       zorder=1 if is_bg(c) else 2 + i * 0.01)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=2.0, title=legend_title,
                  handletextpad=0.2)
    ax.set_xlabel("UMAP 1 (arb. units)")
    ax.set_ylabel("UMAP 2 (arb. units)")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return fig


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

    ``g_generated_mean`` is an array, or an :class:`s2s.evaluation.rdf.RDFEnsemble` (then its
    mean and quantile band are used).  ``g_generated_spread``: None, an array s
    (shaded mean ± s, e.g. the ensemble s.d.) or a (low, high) pair of arrays.  Curves
    are n(r) from :func:`s2s.evaluation.rdf.radial_distribution` (atoms per Å).
    """
    from s2s.evaluation.rdf import RDFEnsemble

    r = _as_1d(r, "r")
    if isinstance(g_generated_mean, RDFEnsemble):
        ens = g_generated_mean
        g_generated_mean = ens.mean
        if g_generated_spread is None:
            g_generated_spread = (ens.lo, ens.hi)
            spread_label = spread_label or (
                f"generated {100 * ens.quantiles[0]:.0f}–{100 * ens.quantiles[1]:.0f}% (n = {ens.n})")
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


# ----------------------------------------------------------------------------- training


def read_loss_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a training ``loss.csv`` (written by :func:`s2s.model.train.train`) as float arrays."""
    import csv

    path = Path(path)
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path}: no rows (expected a header 'step,epoch,loss,...' and one row per log step)")
    if "step" not in rows[0] or "loss" not in rows[0]:
        raise ValueError(f"{path}: expected columns 'step' and 'loss', found {list(rows[0])}")
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in rows[0]}


@_styled
def plot_loss_curve(history: Mapping[str, ArrayLike] | str | Path, title: str | None = None) -> Figure:
    """Training curves: the denoising loss (L2 on ε and h, log y) and, when logged, the
    cross entropy of the atom-count head p(N | spectrum), against the optimiser step; a dashed
    line where a continued run (``stage`` column) changed the training set."""
    h = read_loss_csv(history) if isinstance(history, (str, Path)) else {k: np.asarray(v, float) for k, v in history.items()}
    has_ce = "natoms_ce" in h and np.isfinite(h["natoms_ce"]).any()
    fig, axes = plt.subplots(1, 2 if has_ce else 1, figsize=(9.0 if has_ce else 5.0, 3.6), squeeze=False)
    ax = axes[0, 0]
    ax.plot(h["step"], h["loss"], color=COLORS["model"], lw=1.2)
    if "stage" in h:  # continued runs (training set changed at these steps)
        for k in np.flatnonzero(np.diff(h["stage"]) != 0) + 1:
            for a in axes[0]:
                a.axvline(h["step"][k - 1], color="0.5", ls="--", lw=0.8)
            ax.text(h["step"][k - 1], 0.98, " continued on a new training set", transform=ax.get_xaxis_transform(),
                    fontsize=7, color="0.4", va="top")
    ax.set_yscale("log")
    ax.set_xlabel("Optimiser step")
    ax.set_ylabel("Denoising loss (L2)")
    ax.grid(True, which="major", color="0.9", lw=0.6)
    if has_ce:
        ax2 = axes[0, 1]
        ax2.plot(h["step"], h["natoms_ce"], color=COLORS["template"], lw=1.2)
        ax2.set_xlabel("Optimiser step")
        ax2.set_ylabel("Atom-count cross entropy (nats)")
        ax2.grid(True, which="major", color="0.9", lw=0.6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
