"""Style of every figure: colours, rcParams, composition colour map, and :func:`save_figure`.

Conventions: Si is blue and O red everywhere (:data:`COLORS`); the generative model is purple
and template matching green (paper, Fig. 4); amorphous compositions SiO_x are coloured along
one colour map (:func:`composition_color`: Si-rich purple -> SiO2 green, as in Fig. 5a).
Figures are built under :data:`STYLE` (:func:`style`, the ``_styled`` decorator) and written
by :func:`save_figure` (PNG at 300 dpi, SVG/PDF vector, no timestamps, atomic).
The underscore helpers here (``_new_ax``, ``_as_1d``, ...) are shared by the figure modules.
"""

from __future__ import annotations

import functools
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from s2s.files import atomic_path

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


def _stable_svg_ids(svg: bytes) -> bytes:
    """Renumber matplotlib's clip-path ids (``p`` + 10 hex digits) in order of definition.

    ``svg.hashsalt`` makes most ids deterministic, but the id of a path-shaped clip (subfigures)
    hashes the clip object's memory address, so the same figure gave different bytes on every run.
    Definitions (``<clipPath id="...">``) and references (``url(#...)``) are renamed together."""
    found = re.findall(rb'<clipPath id="(p[0-9a-f]{10})"', svg)
    ids = {old: b"c%010x" % i for i, old in enumerate(dict.fromkeys(found))}
    if ids:
        svg = re.sub(rb"\bp[0-9a-f]{10}\b", lambda m: ids.get(m.group(0), m.group(0)), svg)
    return _stable_glyph_ids(svg)


def _stable_glyph_ids(svg: bytes) -> bytes:
    """Renumber the glyph ids (``<font>-<hex>``, e.g. ``DejaVuSans-c9d``) in order of definition.

    matplotlib names a text glyph by its index in the font file, which differs between builds of the same
    font (an en dash was ``DejaVuSans-af6`` on one machine and ``-af5`` on another, the outline identical), so
    a rerun elsewhere rewrote every SVG with such a character.  Definitions (``<path id=...>``) and uses
    (``xlink:href="#..."``) are renamed together to ``<font>-g<n>``."""
    found = re.findall(rb'<path id="([A-Za-z][\w.]*(?:-[A-Za-z][\w.]*)*-[0-9a-f]+)"', svg)
    if not found:
        return svg
    ids = {old: old.rsplit(b"-", 1)[0] + b"-g%d" % i for i, old in enumerate(dict.fromkeys(found))}
    pattern = re.compile(rb'(id="|href="#)(' + b"|".join(re.escape(k) for k in ids) + rb')"')
    return pattern.sub(lambda m: m.group(1) + ids[m.group(2)] + b'"', svg)


def save_figure(
    fig: Figure,
    path_stem: str | os.PathLike,
    formats: Sequence[str] = ("png", "svg"),
    dpi: int = 300,
    close: bool = False,
) -> list[Path]:
    """Write ``fig`` as ``<path_stem>.<fmt>`` for each format (PNG at ``dpi``, SVG/PDF vector).

    Each file is written through :func:`s2s.files.atomic_path` (a temporary file in the target
    folder, then ``os.replace``); folders are created.  A suffix on
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
            with atomic_path(out) as tmp, open(tmp, "wb") as fh:
                # No timestamps: identical inputs give identical files.
                meta = {"Date": None} if fmt == "svg" else {"CreationDate": None} if fmt == "pdf" else None
                if fmt == "svg":
                    buf = io.BytesIO()
                    fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
                    fh.write(_stable_svg_ids(buf.getvalue()))
                else:
                    fig.savefig(fh, format=fmt, dpi=dpi, metadata=meta)
            written.append(out)
    if close:
        plt.close(fig)
    return written
