"""The simulator comparison run and its report: :func:`compare_with_reference` (the sweep of
:mod:`s2s.simulate.comparison` against the GPAW references, tables on stdout,
``simulator_comparison.json``, optionally the tables of a markdown document) and
:func:`compare_environments` (no references), with their tables and markdown.

Rows are the dicts of :func:`s2s.simulate.comparison.sweep` (variant, widths in eV, onset, mean /
median / min Pearson r, mean cosine, failures, seconds per site).  The figures are drawn by
:mod:`s2s.plots.simulators`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from s2s.environment import unique_o_sites
from s2s.files import atomic_write_text
from s2s.simulate import build as B
from s2s.simulate.comparison import (
    GAUSS,
    LORENTZ,
    ONSETS,
    SLOPES,
    VARIANTS,
    compute_variant,
    dev_structures,
    load_references,
    reference_broadener,
    similarity_check,
    site_cost,
    sweep,
)
from s2s.simulate.xtb import XtbSettings, finalize

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


def write_tables(table_dir: Path, out: dict, rows: list[dict], refs: list[dict]) -> Path:
    """Write :func:`markdown` to ``table_dir``/simulator_comparison.md (no doc is edited: docs/simulator.md's
    block between :data:`DOC_BEGIN` and :data:`DOC_END` is pasted from it)."""
    path = Path(table_dir) / "simulator_comparison.md"
    atomic_write_text(path, markdown(out, rows, refs) + "\n")
    print(f"comparison tables -> {path}", file=sys.stderr)
    return path


def compare_with_reference(
    reference: Path,
    structures: Path | None,
    cache: Path,
    figures: Path,
    workers: int = 1,
    min_length: float = XtbSettings.min_length,
    table_dir: Path | None = None,
    ref_as_shipped: bool = False,
) -> dict:
    """The whole comparison: sweep, tables on stdout, ``figures/simulator_comparison.json`` and, with
    ``table_dir``, the markdown tables in ``table_dir``/simulator_comparison.md (:func:`write_tables`).  Its
    figures ``simulator_vs_gpaw.png`` / ``simulator_summary.png`` are drawn by :mod:`s2s.plots.simulators`
    (``scripts/compare_simulators.py`` calls both).

    Returns the dict written to ``simulator_comparison.json``.
    """
    refs = load_references(reference, structures)
    if not refs:
        raise SystemExit(f"no reference sites with structures under {reference}")
    base = XtbSettings(min_length=min_length)
    ref_grid = reference_broadener(ref_as_shipped)
    rows, per_site = sweep(refs, base, cache, workers, ref_grid)
    print(format_table(rows))
    best = {}
    for vname in VARIANTS:
        best[vname] = max((r for r in rows if r["variant"] == vname), key=lambda r: r["pearson_mean"])
    best_shipped = {
        v: max((r for r in rows if r["variant"] == v), key=lambda r: r["pearson_shipped_mean"]) for v in VARIANTS
    }
    print(format_pivot(rows))
    print("\nbest per variant:")
    print(format_table(list(best.values())))
    figures.mkdir(parents=True, exist_ok=True)
    d0 = XtbSettings()
    dkey = (d0.gauss_fwhm, d0.lorentz_fwhm, d0.lorentz_slope, d0.onset)
    at_default = {
        v: next(
            r
            for r in rows
            if r["variant"] == v and (r["gauss_fwhm"], r["lorentz_fwhm"], r["lorentz_slope"], r["onset"]) == dkey
        )
        for v in VARIANTS
    }
    print("\nat the default broadening/onset:")
    print(format_table(list(at_default.values())))
    labels = [f"{r['structure_id']}:{r['site_index']}" for r in refs]
    out = dict(
        n_reference_sites=len(refs),
        reference=labels,
        rows=rows,
        best=best,
        best_vs_shipped=best_shipped,
        at_default=at_default,
        default_settings=d0.to_dict(),
        min_length=min_length,
        per_site_default={
            v: {
                "pearson": dict(zip(labels, map(float, per_site[(v, *dkey)][0]))),
                "cosine": dict(zip(labels, map(float, per_site[(v, *dkey)][1]))),
            }
            for v in VARIANTS
        },
        per_site_best={
            v: dict(
                zip(
                    labels,
                    map(float, per_site[(v, b["gauss_fwhm"], b["lorentz_fwhm"], b["lorentz_slope"], b["onset"])][0]),
                )
            )
            for v, b in best.items()
        },
    )
    # the figure of record for the chosen default variant
    chosen = next(v for v, kw in VARIANTS.items() if XtbSettings().with_(**kw).calc_key() == XtbSettings().calc_key())
    out["chosen_variant"] = chosen
    out["simulator_vs_dft_pearson_mean"] = at_default[chosen]["pearson_mean"]
    out["simulator_vs_dft_cosine_mean"] = at_default[chosen]["cosine_mean"]
    out["similarity"] = similarity_check(refs, base.with_(**VARIANTS[chosen]), cache)
    print(f"similarity check: {out['similarity']}")
    B.atomic_write_json(figures / "simulator_comparison.json", out)
    if table_dir is not None:
        write_tables(table_dir, out, rows, refs)
    return out


def compare_environments(
    variants: list[str],
    cache: Path,
    structures: Path | None = None,
    workers: int = 1,
    min_length: float = XtbSettings.min_length,
) -> dict[str, dict]:
    """No references: do clearly different environments (:func:`dev_structures`) give clearly
    different spectra?  Prints cost / size / gap per site and the site-by-site Pearson matrices.
    Returns {variant: {(sid, site): SiteResult}}, the sites in the same order for every variant
    (:func:`s2s.plots.simulators.plot_simulator_dev` draws them)."""
    items = dev_structures(structures)
    sites_by_id = {sid: unique_o_sites(s, structure_id=sid) for sid, s in items}
    base = XtbSettings(min_length=min_length)
    spectra: dict[str, dict] = {}
    timing = {}
    for vname in variants:
        st = base.with_(**VARIANTS[vname])
        t0 = time.perf_counter()
        raw = compute_variant(items, sites_by_id, st, cache, workers)
        spectra[vname] = {k: finalize(v, st) for k, v in raw.items()}
        timing[vname] = {k: (site_cost(v), v.n_atoms, v.gap) for k, v in raw.items()}
        print(f"{vname}: {time.perf_counter() - t0:.1f} s wall (cached items cost nothing)", file=sys.stderr)
    keys = [(sid, s) for sid, _ in items for s in sites_by_id[sid]]
    print(format_dev(spectra, timing, keys, variants))
    return spectra
