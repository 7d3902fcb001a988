"""Tables and markdown of the simulator comparison (:mod:`s2s.simulate.comparison`).

Rows are the dicts of :func:`s2s.simulate.comparison.sweep` (variant, widths in eV, onset, mean /
median / min Pearson r, mean cosine, failures, seconds per site).  The figures are drawn by
:mod:`s2s.plots.simulators`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from s2s.simulate.comparison import GAUSS, LORENTZ, ONSETS, SLOPES, VARIANTS

DOC_BEGIN, DOC_END = "<!-- comparison:begin -->", "<!-- comparison:end -->"


def format_table(rows: list[dict]) -> str:
    """Fixed-width text table of the first 40 rows."""
    lines = [
        f"{'variant':10s} {'gauss':>5s} {'lor':>4s} {'slope':>5s} {'onset':>6s} {'r_mean':>7s} {'r_med':>6s} "
        f"{'r_min':>6s} {'cos':>6s} {'fail':>4s} {'s/site':>7s}"
    ]
    for r in rows[:40]:
        lines.append(
            f"{r['variant']:10s} {r['gauss_fwhm']:5.2f} {r['lorentz_fwhm']:4.1f} {r['lorentz_slope']:5.2f} "
            f"{r['onset']:>6s} {r['pearson_mean']:7.3f} {r['pearson_median']:6.3f} {r['pearson_min']:6.3f} "
            f"{r['cosine_mean']:6.3f} {r['n_failed']:4d} {r['seconds_per_site']:7.2f}"
        )
    return "\n".join(lines)


def format_pivot(rows: list[dict]) -> str:
    """Mean Pearson r for each (variant, onset) and Gaussian width (best Lorentzian/slope at that width)."""
    lines = [
        "\nmean Pearson r vs GPAW (best Lorentzian/slope per cell), by Gaussian FWHM (eV):",
        f"{'variant':10s} {'onset':>6s} " + " ".join(f"{g:>6.2f}" for g in GAUSS),
    ]
    for vname in VARIANTS:
        for on in ONSETS:
            cells = []
            for g in GAUSS:
                sel = [
                    r["pearson_mean"]
                    for r in rows
                    if r["variant"] == vname and r["onset"] == on and r["gauss_fwhm"] == g
                ]
                cells.append(f"{max(sel):6.3f}" if sel else "   -  ")
            lines.append(f"{vname:10s} {on:>6s} " + " ".join(cells))
    return "\n".join(lines)


def format_dev(
    spectra: dict[str, dict], timing: dict[str, dict], keys: list[tuple[str, int]], variants: list[str]
) -> str:
    """Dev mode: cost (s), atoms, gap (eV) per site and variant, then each variant's Pearson matrix."""
    lines = [f"{'site':34s} " + " ".join(f"{v:>22s}" for v in variants)]
    for k in keys:
        cells = []
        for v in variants:
            c, n, g = timing[v][k]
            ok = spectra[v][k].ok
            cells.append(f"{c:6.1f}s {n:4d}at gap{g:5.2f}{'' if ok else ' X'}")
        lines.append(f"{k[0] + ':' + str(k[1]):34s} " + " ".join(f"{c:>22s}" for c in cells))
    for v in variants:
        ok = [k for k in keys if spectra[v][k].ok]
        Y = np.array([spectra[v][k].spectrum for k in ok])
        R = np.corrcoef(Y)
        sid = np.array([k[0] for k in ok])
        same = sid[:, None] == sid[None, :]
        off = ~np.eye(len(ok), dtype=bool)
        lines.append(
            f"\n{v}: Pearson between sites of the same structure: mean "
            f"{R[same & off].mean() if (same & off).any() else float('nan'):.3f}; "
            f"between different structures: mean {R[~same].mean():.3f}, max {R[~same].max():.3f}"
        )
        labels = [f"{a.replace('dev-', '')[:14]}:{b}" for a, b in ok]
        lines.append(" " * 20 + " ".join(f"{lab[:7]:>7s}" for lab in labels))
        for i, lab in enumerate(labels):
            lines.append(f"{lab:20s}" + " ".join(f"{x:7.2f}" for x in R[i]))
    return "\n".join(lines)


def markdown(out: dict, rows: list[dict], refs: list[dict]) -> str:
    """The markdown tables of docs/simulator.md's comparison section from the comparison dict ``out``."""
    d = out["default_settings"]
    lines = [
        f"Reference: {out['n_reference_sites']} GPAW half-core-hole sites "
        f"({len({r['structure_id'] for r in refs})} structures, `data/reference/gpaw/`). "
        "The GPAW sticks are broadened exactly like the xTB sticks (same Voigt) before comparing on the grid; "
        "both spectra have 0 eV at their lowest empty level unless the onset says otherwise.",
        "",
        f"**At the defaults** (Gaussian {d['gauss_fwhm']} eV, Lorentzian {d['lorentz_fwhm']} + "
        f"{d['lorentz_slope']}·E eV, onset `{d['onset']}`, min image {out['min_length']} Å):",
        "",
        "| variant | Pearson r mean | median | min | cosine mean | s/site | atoms (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for v, r in out["at_default"].items():
        lines.append(
            f"| {v} | {r['pearson_mean']:.3f} | {r['pearson_median']:.3f} | {r['pearson_min']:.3f} | "
            f"{r['cosine_mean']:.3f} | {r['seconds_per_site']:.1f} | {r['atoms_mean']:.0f} |"
        )
    lines += [
        "",
        "**Mean Pearson r by onset and Gaussian FWHM** (best Lorentzian/slope of the sweep "
        f"{list(LORENTZ)} eV / {list(SLOPES)} eV/eV in each cell):",
        "",
        "| variant | onset | " + " | ".join(f"{g} eV" for g in GAUSS) + " |",
        "|---|---|" + "---|" * len(GAUSS),
    ]
    for v in VARIANTS:
        for on in ONSETS:
            cells = [
                max(r["pearson_mean"] for r in rows if r["variant"] == v and r["onset"] == on and r["gauss_fwhm"] == g)
                for g in GAUSS
            ]
            lines.append(f"| {v} | {on} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    lines += [
        "",
        "**Best setting per variant** (over the whole sweep):",
        "",
        "| variant | Gaussian | Lorentzian | slope | onset | Pearson r mean | min | cosine mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, r in out["best"].items():
        lines.append(
            f"| {v} | {r['gauss_fwhm']} | {r['lorentz_fwhm']} | {r['lorentz_slope']} | {r['onset']} | "
            f"{r['pearson_mean']:.3f} | {r['pearson_min']:.3f} | {r['cosine_mean']:.3f} |"
        )
    lines += [
        "",
        "**Against the fixed reference** (GPAW `grid_spectrum` as shipped: Gaussian 0.5 eV), "
        "which tunes the xTB broadening alone; mean Pearson r by Gaussian FWHM (best Lorentzian/slope):",
        "",
        "| variant | onset | " + " | ".join(f"{g} eV" for g in GAUSS) + " |",
        "|---|---|" + "---|" * len(GAUSS),
    ]
    for v in VARIANTS:
        for on in ("lumo", "edge"):
            cells = [
                max(
                    r["pearson_shipped_mean"]
                    for r in rows
                    if r["variant"] == v and r["onset"] == on and r["gauss_fwhm"] == g
                )
                for g in GAUSS
            ]
            lines.append(f"| {v} | {on} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    lines += [
        "",
        "| variant | best vs fixed reference: Gaussian | Lorentzian | slope | onset | Pearson r mean |",
        "|---|---|---|---|---|---|",
    ]
    for v, r in out["best_vs_shipped"].items():
        lines.append(
            f"| {v} | {r['gauss_fwhm']} | {r['lorentz_fwhm']} | {r['lorentz_slope']} | {r['onset']} | "
            f"{r['pearson_shipped_mean']:.3f} |"
        )
    lines += [
        "",
        "At the defaults against the fixed reference: "
        + ", ".join(f"{v} {r['pearson_shipped_mean']:.3f}" for v, r in out["at_default"].items())
        + ".",
    ]
    pd = out["per_site_default"]
    vs = list(VARIANTS)
    lines += [
        "",
        "**Per site at the defaults** (Pearson r):",
        "",
        "| site | " + " | ".join(vs) + " |",
        "|---|" + "---|" * len(vs),
    ]
    for lab in out["reference"]:
        lines.append(f"| {lab} | " + " | ".join(f"{pd[v]['pearson'][lab]:.2f}" for v in vs) + " |")
    sc = out.get("similarity")
    if sc:
        lines += [
            "",
            f"**Relations between environments** ({out['chosen_variant']}, defaults, {sc['n_sites']} sites, "
            f"{sc['n_structures']} structures): the site-by-site Pearson matrices of xTB and GPAW correlate "
            f"with r = {sc['similarity_pearson']:.3f} (Spearman {sc['similarity_spearman']:.3f}); mean "
            f"pairwise r {sc['pairwise_mean_xtb']:.3f} (xTB) vs {sc['pairwise_mean_gpaw']:.3f} (GPAW). "
            f"Matching each xTB spectrum to the closest GPAW spectrum finds the same site in "
            f"{100 * sc['retrieval_site_top1']:.0f} % and the same structure in "
            f"{100 * sc['retrieval_structure_top1']:.0f} % of the sites.",
        ]
    lines += [
        "",
        "![xTB vs GPAW, per site](figures/simulator_vs_gpaw.png)",
        "",
        "![Pearson r per site and vs broadening](figures/simulator_summary.png)",
    ]
    return "\n".join(lines)


def write_doc(doc: Path, out: dict, rows: list[dict], refs: list[dict]) -> None:
    """Replace the text between the comparison markers of ``doc`` with :func:`markdown`."""
    text = doc.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise SystemExit(f"{doc}: markers {DOC_BEGIN} / {DOC_END} not found")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)

    tmp = doc.with_name(f".{doc.name}.tmp")
    tmp.write_text(head + DOC_BEGIN + "\n" + markdown(out, rows, refs) + "\n" + DOC_END + tail)
    tmp.replace(doc)
    print(f"updated {doc}", file=sys.stderr)
