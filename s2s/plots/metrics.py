"""Figures of the per-case metrics: RMSD after alignment (Å) and species accuracy.

* :func:`plot_rmsd_sorted` - Fig. 2a / 5a / Supp. 3a: RMSD per case sorted, one series per shell.
* :func:`plot_rmsd_by_composition` - Fig. 5 summary: box + strip plot of RMSD per x of SiO_x.
* :func:`plot_oxygen_fraction` - Fig. 3: generated vs target O fraction n_O/N.
* :func:`plot_species_accuracy_by_composition` - Supp. Fig. 2: species accuracy per x.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

from s2s.plots.style import (
    COLORS,
    _as_1d,
    _fmt_x,
    _new_ax,
    _series_color,
    _styled,
    _x_key,
    composition_color,
)

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
        ax.scatter(
            x,
            y,
            s=9,
            color=_series_color(name, i, colors),
            alpha=0.85,
            linewidths=0,
            label=f"{name}  (mean {mean:.3f} Å, n = {idx.size})",
            zorder=2 + i * 0.01,
        )
    if marks:
        default = mark_series or next((n for n in names if str(n).lower() in ("all", "overall")), names[0])
        for lab, spec in marks.items():
            series, case = spec if isinstance(spec, tuple) else (default, spec)
            if series not in ranks:
                raise ValueError(f"plot_rmsd_sorted: mark {lab!r} names unknown series {series!r}; have {names}")
            if int(case) not in ranks[series]:
                raise ValueError(f"plot_rmsd_sorted: mark {lab!r}: case {case} has no finite RMSD in {series!r}")
            r, y = ranks[series][int(case)]
            ax.scatter(
                [r], [y], s=110, facecolors="none", edgecolors=COLORS["mark"], linewidths=1.5, zorder=5, clip_on=False
            )
            ax.annotate(
                lab,
                (r, y),
                xytext=(-8, 8),
                textcoords="offset points",
                color=COLORS["mark"],
                fontweight="bold",
                ha="right",
                va="bottom",
                fontsize=10,
                zorder=6,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
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
    bp = ax.boxplot(
        [values],
        positions=[pos],
        widths=width,
        showfliers=not points,
        patch_artist=True,
        medianprops={"color": "black", "lw": 1.2},
        whiskerprops={"color": "0.3"},
        capprops={"color": "0.3"},
        boxprops={"edgecolor": "0.3", "lw": 0.8},
        flierprops={"marker": ".", "ms": 3, "mfc": "0.4", "mec": "none"},
    )
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
    handles = [
        mpl.patches.Patch(facecolor=mpl.colors.to_rgba(_series_color(s, j, colors), 0.5), edgecolor="0.3", label=str(s))
        for j, s in enumerate(series)
    ]
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
    integer comparison of :func:`s2s.geometry.metrics.species_match`).  Axes span the data
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
    sc = ax.scatter(
        pairs[order, 0],
        pairs[order, 1],
        s=size[order],
        c=counts[order],
        cmap="viridis",
        norm=norm,
        edgecolors="black",
        linewidths=0.4,
        alpha=0.9,
        zorder=3,
    )
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
            (
                (o_frac_target, "target", COLORS["target"], "s"),
                (o_frac_generated, "generated", COLORS["generated"], "o"),
            )
        ):
            xx = [x for x in xs if x in data]
            m = [np.nanmean(_as_1d(data[x], f"o_frac_{name}[{x!r}]")) for x in xx]
            s = [np.nanstd(_as_1d(data[x], f"o_frac_{name}[{x!r}]")) for x in xx]
            pos = np.array([xs.index(x) for x in xx]) + (k - 0.5) * 0.18
            ax2.errorbar(
                pos, m, yerr=s, fmt=mk + "-", color=col, ms=5, lw=1.0, capsize=2, label=f"{name} (mean ± s.d.)"
            )
        ax2.set_xticks(range(len(xs)), [_fmt_x(x) for x in xs])
        ax2.set_ylim(0, 1)
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("O fraction of the environment $n_O/N$")
        ax2.legend(loc="lower right")
        ax2.set_title("O content of the environments")
    if title:
        fig.suptitle(title)
    return fig


#: Panels of :func:`plot_families_by_composition`: (result key, axis label, template key or None).
FAMILY_PANELS: tuple[tuple[str, str, str | None], ...] = (
    ("rmsd_shell1", "1st-shell RMSD (Å)", "rmsd_shell1"),
    ("species_accuracy", "Species accuracy", "species_accuracy"),
    ("model_win_rate", "Model wins over template", None),
)


@_styled
def plot_families_by_composition(results: Mapping[str, Mapping], title: str | None = None) -> Figure:
    """Glass families side by side against x of SiO_x: 1st-shell RMSD, species accuracy (model solid,
    template matching dashed) and the model's win rate over template matching.

    ``results``: family name -> the block of :func:`s2s.studies.by_composition.family_result`
    (maps x -> value, null where undefined).  One colour per family.
    """
    if not results:
        raise ValueError("plot_families_by_composition: no families")
    fig, axes = plt.subplots(1, len(FAMILY_PANELS), figsize=(3.6 * len(FAMILY_PANELS), 3.3))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, tkey) in zip(axes, FAMILY_PANELS):
        for i, (name, res) in enumerate(results.items()):
            color = cycle[i % len(cycle)]
            series = [(res[key], "-", "o", name)]
            if tkey is not None and "template" in res:
                series.append((res["template"][tkey], "--", "s", f"{name}, template"))
            for values, ls, marker, lab in series:
                pts = sorted((float(x), v) for x, v in values.items() if v is not None)
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, ls=ls, marker=marker, ms=4, lw=1.3, color=color, label=lab)
        ax.set_xlabel("x in SiO$_x$")
        ax.set_ylabel(label)
        if key != "rmsd_shell1":
            ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
