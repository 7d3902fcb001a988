"""3-D drawings of local environments (paper Fig. 2b, 5b, 7c, Supp. 3b).

:func:`align_for_plot` rotates a generated environment onto its target; :func:`plot_environment`
draws one environment, :func:`plot_environment_overlay` a target with a generated structure (or
an ensemble cloud), :func:`plot_overlay_panel` the Fig. 2b frame (overlay, target, generated) and
:func:`plot_overlay_grid` several frames.  Coordinates are in Å relative to the excited O;
balls sized by :data:`~s2s.plots.style.BALL_RADIUS`, bonds below
:data:`~s2s.plots.style.BOND_CUTOFF`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from s2s.environment import SPECIES, Environment
from s2s.geometry.align import align
from s2s.plots.style import BALL_RADIUS, BOND_CUTOFF, COLORS, _new_ax, _styled

# ----------------------------------------------------------------------------- 3-D structures


def align_for_plot(target: Environment, generated: Environment, method: str = "paper", **kwargs) -> Environment:
    """``generated`` rotated onto ``target`` (:func:`s2s.geometry.align.align`), ready for an overlay.

    Coordinates are relative to the excited O (Å); ``meta['rmsd']`` holds the alignment RMSD (Å).
    """
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
            segs = np.concatenate([np.stack([coords[pairs[:, 0]], mid], 1), np.stack([coords[pairs[:, 1]], mid], 1)])
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
            kw = {
                "s": size,
                "c": COLORS[name],
                "edgecolors": "#1a1a1a",
                "linewidths": 0.5,
                "alpha": 1.0,
                "depthshade": False,
            }
        elif kind == "hollow":  # light translucent disc with a coloured ring, a bit smaller than the target ball
            kw = {
                "s": 0.72 * size,
                "facecolors": [_tint(COLORS[name], 0.7, 0.55)],
                "edgecolors": COLORS[name],
                "linewidths": 1.5,
                "depthshade": False,
            }
        else:  # cloud of an ensemble
            kw = {"s": 0.25 * size, "c": COLORS[name], "alpha": 0.25, "linewidths": 0, "depthshade": False}
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
            h.append(
                Line2D(
                    [], [], ls="", marker="o", ms=7, mfc=COLORS[name], mec="#1a1a1a", mew=0.5, label=f"{name} target"
                )
            )
        if generated == "hollow":
            h.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    marker="o",
                    ms=6,
                    mfc=_tint(COLORS[name], 0.7, 0.55),
                    mec=COLORS[name],
                    mew=1.4,
                    label=f"{name} generated",
                )
            )
        elif generated == "cloud":
            h.append(
                Line2D(
                    [],
                    [],
                    ls="",
                    marker="o",
                    ms=4,
                    mfc=COLORS[name],
                    mec="none",
                    alpha=0.4,
                    label=f"{name} generated (ensemble)",
                )
            )
        elif generated == "solid":
            h.append(
                Line2D(
                    [], [], ls="", marker="o", ms=7, mfc=COLORS[name], mec="#1a1a1a", mew=0.5, label=f"{name} generated"
                )
            )
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

        def ticks(c: float) -> np.ndarray:
            return np.arange(np.ceil((c - span / 2) / step) * step, c + span / 2 + 1e-9, step)

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


def _render(
    ax, tc, t_species, gcs, g_species, gen_kind, cube, bond_cutoff, elev, azim, axes_labels, zoom, legend, title
) -> None:
    centre, span = cube
    _setup_3d(ax, centre, span, elev, azim, axes_labels, zoom)
    if tc is not None:
        _draw_env(ax, tc, t_species, span, "solid", bond_cutoff, zbase=1, zoom=zoom)
    for gc, gs in zip(gcs, g_species):
        _draw_env(ax, gc, gs, span, gen_kind, bond_cutoff, zbase=4, zoom=zoom)
    ax.scatter(
        [0],
        [0],
        [0],
        marker="*",
        s=_ball_size(ax, span, 0.45, zoom),
        c=COLORS["excited"],
        edgecolors="white",
        linewidths=0.6,
        depthshade=False,
        zorder=10,
    )
    if title:
        ax.set_title(title, pad=0)
    if legend:
        ax.legend(
            handles=_legend_handles(tc is not None, gen_kind if gcs else None),
            loc="upper left",
            bbox_to_anchor=(0.0, 1.0),
            fontsize=6.5,
            handletextpad=0.2,
            borderaxespad=0.0,
            labelspacing=0.3,
        )


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
    gs = fig.add_gridspec(
        2, 2, width_ratios=(1.6, 1.0), wspace=0.0, hspace=0.0, left=0.0, right=1.0, bottom=0.0, top=0.92
    )
    ax_o = fig.add_subplot(gs[:, 0], projection="3d")
    ax_t = fig.add_subplot(gs[0, 1], projection="3d")
    ax_g = fig.add_subplot(gs[1, 1], projection="3d")
    tc, ts, gcs, gsp, _ = _frame(target, generated, orient=True)
    cube = _cube(np.concatenate([tc, *gcs]), BALL_RADIUS["Si"] + 0.2)
    view = {"cube": cube, "bond_cutoff": bond_cutoff, "elev": elev, "azim": azim}
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
