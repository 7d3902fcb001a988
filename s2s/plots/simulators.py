"""Figures of the simulator comparison (:mod:`s2s.simulate.comparison`): xTB variants against the GPAW
reference, and, without references, the spectra of clearly different environments (PNG files).

Energies in eV on the 200-point grid of :data:`s2s.spectrum.GRID`; Pearson r is unitless.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from s2s.simulate import build as B
from s2s.simulate.compare import pearson
from s2s.simulate.comparison import GAUSS, VARIANTS
from s2s.simulate.xtb import XtbSettings
from s2s.spectrum import GRID


def plot_simulator_summary(out: Mapping[str, Any], figures: Path) -> None:
    """``simulator_summary.png`` from the comparison record ``out`` (``simulator_comparison.json`` of
    :func:`s2s.simulate.comparison_report.compare_with_reference`): Pearson r per reference site at the default
    broadening and onset (bars), and the best mean Pearson r against the Gaussian FWHM (eV)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(out["reference"])
    onset = out["default_settings"]["onset"]
    rows = out["rows"]
    at_default = {v: np.array(list(out["per_site_default"][v]["pearson"].values())) for v in VARIANTS}
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    x = np.arange(len(labels))
    wdt = 0.8 / len(VARIANTS)
    for i, v in enumerate(VARIANTS):
        a1.bar(x + i * wdt, at_default[v], wdt, label=v)
    a1.set_xticks(x + 0.4 - wdt / 2, labels, rotation=90, fontsize=7)
    a1.set_ylabel("Pearson r vs GPAW (defaults)")
    a1.set_ylim(min(0.0, np.nanmin([at_default[v] for v in VARIANTS])), 1.0)
    a1.legend(fontsize=7)
    for v in VARIANTS:
        ys = [
            max(r["pearson_mean"] for r in rows if r["variant"] == v and r["onset"] == onset and r["gauss_fwhm"] == g)
            for g in GAUSS
        ]
        a2.plot(GAUSS, ys, "o-", label=v)
    a2.set_xlabel("Gaussian FWHM (eV)")
    a2.set_ylabel(f"mean Pearson r (onset {onset})")
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figures / "simulator_summary.png", dpi=110)
    plt.close(fig)


def plot_simulator_vs_reference(
    refs: list[dict],
    best: dict[str, dict],
    base: XtbSettings,
    cache: Path,
    figures: Path,
    ref_grid: Callable[[dict, float, float, float], np.ndarray],
) -> None:
    """``simulator_vs_gpaw.png``: up to 12 sites, GPAW and each variant at its row of ``best``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(refs), 12)
    fig, axes = plt.subplots((n + 3) // 4, 4, figsize=(14, 3 * ((n + 3) // 4)), squeeze=False)
    top = max(best.values(), key=lambda b: b["pearson_mean"])
    step = max(1, len(refs) // n)
    for ax, r in zip(axes.flat, refs[::step][:n]):
        ax.plot(
            GRID, ref_grid(r, top["gauss_fwhm"], top["lorentz_fwhm"], top["lorentz_slope"]), "k", lw=2, label="GPAW"
        )
        for vname, b in best.items():
            st = base.with_(**VARIANTS[vname]).with_(
                gauss_fwhm=b["gauss_fwhm"],
                lorentz_fwhm=b["lorentz_fwhm"],
                lorentz_slope=b["lorentz_slope"],
                onset=b["onset"],
            )
            res = B.load_site(cache, st, r["structure_id"], r["site_index"])
            if res is not None and res.ok:
                ref = ref_grid(r, b["gauss_fwhm"], b["lorentz_fwhm"], b["lorentz_slope"])
                ax.plot(GRID, res.spectrum, lw=1, label=f"{vname} r={pearson(res.spectrum, ref):.2f}")
        ax.set_title(f"{r['structure_id']} O{r['site_index']}", fontsize=8)
        ax.legend(fontsize=6)
    for ax in axes.flat[n:]:
        ax.axis("off")
    fig.supxlabel("energy (eV)")
    fig.tight_layout()
    fig.savefig(figures / "simulator_vs_gpaw.png", dpi=110)
    print(f"wrote {figures / 'simulator_vs_gpaw.png'}", file=sys.stderr)


def plot_simulator_dev(spectra: dict[str, dict], keys: list[tuple[str, int]], figures: Path) -> None:
    """``simulator_dev_environments.png``: every site's spectrum, one panel per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(spectra), figsize=(5 * len(spectra), 4), squeeze=False)
    for ax, (v, sp) in zip(axes[0], spectra.items()):
        for k in keys:
            if sp[k].ok:
                ax.plot(GRID, sp[k].spectrum, lw=1, label=f"{k[0].replace('dev-', '')} O{k[1]}")
        ax.set_title(v)
        ax.set_xlabel("energy (eV, 0 = lowest empty level)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(figures / "simulator_dev_environments.png", dpi=110)
    print(f"wrote {figures / 'simulator_dev_environments.png'}", file=sys.stderr)
