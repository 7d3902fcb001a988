#!/usr/bin/env python
"""Build the amorphous SiO_x test set: MD cells, glass checks, O K-edge spectra.

Steps (each resumable; ``all`` runs them in order)::

    python scripts/build_amorphous.py md       # melt-quench cells -> data/amorphous/cells + manifest
    python scripts/build_amorphous.py checks   # numbers -> data/amorphous/checks.json,
                                               # figure  -> figures/amorphous_checks.png
    python scripts/build_amorphous.py spectra  # xTB O K-edge of every O site -> data/amorphous/amorphous.h5
    python scripts/build_amorphous.py all

Long steps: run under ``nice -n 15`` with OMP_NUM_THREADS=1 (one process).
The protocol is :class:`s2s.amorphous.md.MeltQuench`; its fields can be set on
the command line (``--melt-ps 20 --quench-ps 100 ...``) and are stored with
every cell, so a changed protocol never silently mixes with stored cells.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.amorphous.md import COMPOSITIONS, MeltQuench  # noqa: E402
from s2s.amorphous.store import atomic_write_text, load_cells, read_manifest  # noqa: E402

DEFAULT_OUT = ROOT / "data" / "amorphous"
DEFAULT_FIGURE = ROOT / "figures" / "amorphous_checks.png"
DEFAULT_CACHE = ROOT / "cache" / "xtb"
DATASET_NAME = "amorphous.h5"
SOURCE = "amorphous-meltquench-tersoff"


def _protocol_args(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(MeltQuench):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                            help=f"MeltQuench.{f.name} (default {f.default})")


def _protocol(args: argparse.Namespace) -> MeltQuench:
    return MeltQuench(**{f.name: getattr(args, f.name) for f in dataclasses.fields(MeltQuench)})


def step_md(args: argparse.Namespace) -> None:
    from s2s.amorphous.build import build_cells

    xs = args.x or list(COMPOSITIONS)
    t0 = time.perf_counter()
    manifest = build_cells(args.out, _protocol(args), xs=xs, n_cells=args.n_cells,
                           base_seed=args.base_seed, force=args.force, progress=not args.quiet)
    walls = [c["md_wall_s"] for c in manifest["cells"] if c.get("md_wall_s")]
    print(f"md: {len(manifest['cells'])} cells in {args.out} ({time.perf_counter() - t0:.0f} s this run; "
          f"MD wall per cell {min(walls):.0f}-{max(walls):.0f} s)")
    print("O sites per x:", manifest["n_o_sites"])


def step_checks(args: argparse.Namespace) -> None:
    from s2s.amorphous.checks import checks_table, plot_checks, plot_md_traces

    cells = load_cells(args.out)
    table = checks_table(cells)
    atomic_write_text(args.out / "checks.json", json.dumps(table, indent=1) + "\n")
    plot_checks(cells, args.figure, table)
    traces = args.figure.with_name("amorphous_md.png")
    plot_md_traces(cells, traces)
    print(f"checks: {args.out / 'checks.json'}, figures {args.figure}, {traces}")
    for key, v in table.items():
        print(f"x={key}: {v['n_cells']} cells, rho {v['density_mean']:.3f}+-{v['density_std']:.3f} g/cm3, "
              f"Si-O {v['si_o_mean']:.3f} A, Si CN4 {v['si_cn_hist'].get(4, 0):.2f}, "
              f"Si-O-Si mode {v['si_o_si_mode']:.0f} mean {v['si_o_si_mean']:.1f}, "
              f"O-Si-O {v['o_si_o_mean']:.1f}, Si-Si frac {v['si_si_bond_fraction']:.3f} "
              f"(RBM {v['si_si_bond_fraction_rbm']:.3f})")


def _all_o_sites(structure, structure_id: str) -> list[int]:
    """Every O site of an amorphous cell is a distinct spectrum (no symmetry)."""
    return [i for i, s in enumerate(structure) if s.specie.symbol == "O"]


def step_spectra(args: argparse.Namespace) -> None:
    try:
        from s2s.simulate.build import build, load_results
        from s2s.simulate.xtb import XtbSettings
    except ImportError as err:
        raise SystemExit(f"spectra: the simulator (s2s.simulate) is not available: {err}") from err
    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import EmptyFirstShellError, environment_from_structure

    settings = XtbSettings.from_dict(json.loads(Path(args.settings).read_text())) if args.settings else XtbSettings()
    variant = getattr(args, "variant", None)
    if variant:
        settings = settings.with_(variant=variant)
    min_gap = getattr(args, "min_gap", None)
    if min_gap is not None:
        # applied on load only (not part of the cache key): a glass's small HOMO-LUMO gap comes
        # from its defect states, not from a broken calculation
        settings = settings.with_(min_gap=min_gap)
    manifest = read_manifest(args.out)
    pairs = [(entry, cell) for entry, cell in zip(manifest["cells"], load_cells(args.out))
             if (args.spectra_cells is None or entry["cell_id"] < args.spectra_cells)
             and (not getattr(args, "x", None) or entry["x"] in args.x)]
    # cell 0 of every composition first (the paper's counts are reached before the extra
    # cells); within a round O-rich first: their SCF is cheaper (fewer Si d functions) and safer
    pairs.sort(key=lambda p: (p[0]["cell_id"], -p[0]["x"]))
    items = [(entry["name"], cell) for entry, cell in pairs]
    if not getattr(args, "no_compute", False):
        report = build(items, settings, args.cache, workers=1, progress=not args.quiet, sites_fn=_all_o_sites)
        print("spectra:", report.summary())
    results = load_results(items, settings, args.cache, sites_fn=_all_o_sites)
    simulator = f"xtb-{settings.method.lower()}-{settings.variant}"
    records, failures, skipped, pending = [], [], [], []
    for (sid, cell), (entry, _) in zip(items, pairs):
        formula = cell.composition.reduced_formula
        for site in _all_o_sites(cell, sid):
            r = results[(sid, site)]
            if r is None:
                pending.append({"cell": sid, "site": site})
                continue
            if not r.ok:
                failures.append({"cell": sid, "site": site, "reason": r.reason})
                continue
            try:
                env = environment_from_structure(cell, site, structure_id=sid)
            except EmptyFirstShellError as err:
                skipped.append({"cell": sid, "site": site, "reason": str(err)})
                continue
            records.append(SiteRecord(
                spectrum=r.spectrum, environment=env, structure_id=sid, site_index=site, multiplicity=1,
                formula=formula, x=float(entry["x"]), source=SOURCE, simulator=simulator,
                settings=settings.to_dict(), split="test",
                meta={"cell_id": entry["cell_id"], "seed": entry["seed"], "composition_x": entry["x"],
                      "gap_eV": r.gap},
            ))
    used = {r.structure_id for r in records}
    ds = Dataset.from_records(records, structures={sid: cell for sid, cell in items if sid in used},
                              meta={"description": "amorphous SiO_x O K-edge test set (never for training)",
                                    "protocol": manifest["protocol"], "failures": failures,
                                    "skipped_empty_first_shell": skipped})
    path = ds.save(args.out / DATASET_NAME)
    n_sites: dict[str, int] = {}
    gaps: dict[str, float] = {}
    for rec in records:
        n_sites[f"{rec.x:.2f}"] = n_sites.get(f"{rec.x:.2f}", 0) + 1
        gaps[rec.structure_id] = round(float(rec.meta["gap_eV"]), 4)
    summary = {"dataset": DATASET_NAME, "simulator": simulator, "settings": settings.to_dict(),
               "cells": [sid for sid, _ in items], "n_sites": n_sites, "n_failed": len(failures),
               "n_pending": len(pending), "n_skipped_empty_first_shell": len(skipped),
               "homo_lumo_gap_eV_per_cell": gaps,
               "failures": failures, "skipped": skipped, "paper_n_sites": manifest["paper_n_sites"]}
    atomic_write_text(args.out / "spectra.json", json.dumps(summary, indent=1) + "\n")
    print(f"spectra: {len(records)} records -> {path}; {len(failures)} failed, {len(skipped)} skipped, "
          f"{len(pending)} pending; "
          f"per x {n_sites}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("md", "checks", "spectra", "all"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="store directory (default data/amorphous)")
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="xTB per-site cache (default cache/xtb)")
    parser.add_argument("--settings", type=Path, default=None,
                        help="JSON of XtbSettings (default: XtbSettings(), the crystal build's defaults, "
                             "with --variant applied)")
    parser.add_argument("--x", type=float, nargs="*", help=f"compositions (default {list(COMPOSITIONS)})")
    parser.add_argument("--n-cells", type=int, default=3, help="independent cells per composition")
    parser.add_argument("--base-seed", type=int, default=20260101)
    parser.add_argument("--variant", choices=("ground", "z+1"), default="ground",
                        help="xTB variant (default ground: one SCF per cell gives every O site; z+1 is one "
                             "SCF per site); every other setting is the simulator's default or --settings")
    parser.add_argument("--min-gap", type=float, default=0.0,
                        help="eV; sites of cells with a smaller HOMO-LUMO gap are flagged as failed "
                             "(default 0: keep them, the gap is stored per record)")
    parser.add_argument("--spectra-cells", type=int, default=None,
                        help="spectra only for cells with cell_id < N (default: every cell)")
    parser.add_argument("--no-compute", action="store_true",
                        help="spectra: only collect what is in the cache (the rest is reported as pending)")
    parser.add_argument("--force", action="store_true", help="recompute cells stored with another protocol")
    parser.add_argument("--quiet", action="store_true")
    _protocol_args(parser)
    args = parser.parse_args(argv)
    steps = ("md", "checks", "spectra") if args.step == "all" else (args.step,)
    for step in steps:
        {"md": step_md, "checks": step_checks, "spectra": step_spectra}[step](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
