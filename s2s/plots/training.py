"""Training curves: the ``loss.csv`` of :func:`s2s.model.train.train` and its figure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from s2s.plots.style import COLORS, _styled

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
    h = (
        read_loss_csv(history)
        if isinstance(history, (str, Path))
        else {k: np.asarray(v, float) for k, v in history.items()}
    )
    has_ce = "natoms_ce" in h and np.isfinite(h["natoms_ce"]).any()
    fig, axes = plt.subplots(1, 2 if has_ce else 1, figsize=(9.0 if has_ce else 5.0, 3.6), squeeze=False)
    ax = axes[0, 0]
    ax.plot(h["step"], h["loss"], color=COLORS["model"], lw=1.2)
    if "stage" in h:  # continued runs (training set changed at these steps)
        for k in np.flatnonzero(np.diff(h["stage"]) != 0) + 1:
            for a in axes[0]:
                a.axvline(h["step"][k - 1], color="0.5", ls="--", lw=0.8)
            ax.text(
                h["step"][k - 1],
                0.98,
                " continued on a new training set",
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                color="0.4",
                va="top",
            )
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


#: Validation metrics of :func:`plot_validation_curve`: (key, axis label, lower is better).
VALIDATION_PANELS: tuple[tuple[str, str, bool], ...] = (
    ("rmsd_shell1", "1st-shell RMSD (Å)", True),
    ("species_accuracy", "Species accuracy", False),
    ("validity", "Chemically valid", False),
)


@_styled
def plot_validation_curve(
    rows: list[Mapping],
    weights: str = "ema",
    title: str | None = None,
) -> Figure:
    """Validation metrics against training CPU time, one line per recipe.

    ``rows``: evaluation records of :func:`s2s.studies.ablation.evaluate_run` (keys ``variant``,
    ``weights``, ``guidance``, ``cpu_minutes`` and the metrics of :data:`VALIDATION_PANELS`); only
    the ``weights`` ones without guidance are drawn, one panel per metric, x = CPU minutes of one core.
    """
    keep = [r for r in rows if r.get("weights") == weights and not r.get("guidance")]
    if not keep:
        raise ValueError(f"plot_validation_curve: no rows with weights={weights!r} and no guidance")
    variants = sorted({r["variant"] for r in keep})
    fig, axes = plt.subplots(1, len(VALIDATION_PANELS), figsize=(3.4 * len(VALIDATION_PANELS), 3.2))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (key, label, _lower) in zip(axes, VALIDATION_PANELS):
        for k, v in enumerate(variants):
            pts = sorted((r["cpu_minutes"], r[key]) for r in keep if r["variant"] == v)
            x, y = zip(*pts)
            ax.plot(x, y, "o-", ms=3.5, lw=1.2, color=cycle[k % len(cycle)], label=v)
        ax.set_xlabel("Training CPU time (min, one core)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
