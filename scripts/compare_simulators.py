"""Compare xTB O K-edge variants with the GPAW half-core-hole reference (or, without one, with each other).

Usage (from the repository root, niced, single-threaded)::

    OMP_NUM_THREADS=1 nice -n 15 python scripts/compare_simulators.py \
        --reference data/reference/gpaw --cache data/cache/xtb --figures docs/figures

    # before the references exist: different environments must give different spectra
    OMP_NUM_THREADS=1 nice -n 15 python scripts/compare_simulators.py --dev --cache data/cache/xtb

For every variant (ground state; Z+1 at charge +1; Z+1 at charge 0) the stick
spectra of the reference sites are computed once (cached through
:func:`s2s.simulate.build.build`), then re-broadened for a sweep of Gaussian /
Lorentzian widths and onset definitions, and compared with the reference on the
200-point grid (Pearson r and cosine similarity per site; mean over sites).
The cost per site is the SCF wall time (ground state: per structure divided by
its number of unique O sites).  Prints a table, writes
``<figures>/simulator_comparison.json`` and the figures.
The logic lives in :mod:`s2s.simulate.comparison` (the run and its tables:
:mod:`s2s.simulate.comparison_report`; figures:
:mod:`s2s.plots.simulators`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from s2s.plots.simulators import plot_simulator_dev, plot_simulator_summary, plot_simulator_vs_reference
from s2s.simulate.comparison import VARIANTS, load_references, reference_broadener
from s2s.simulate.comparison_report import compare_environments, compare_with_reference
from s2s.simulate.xtb import XtbSettings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=Path("data/reference/gpaw"))
    ap.add_argument("--structures", type=Path, default=None, help="structure folder (records) for ids of references")
    ap.add_argument("--cache", type=Path, default=Path("data/cache/xtb"))
    ap.add_argument("--figures", type=Path, default=Path("docs/figures"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--min-length", type=float, default=XtbSettings.min_length)
    ap.add_argument(
        "--table-dir",
        type=Path,
        default=None,
        help="also write the markdown tables to DIR/simulator_comparison.md (e.g. runs/; no doc is edited)",
    )
    ap.add_argument(
        "--ref-as-shipped",
        action="store_true",
        help="compare with the references' own grid_spectrum instead of re-broadening their sticks",
    )
    ap.add_argument("--dev", action="store_true", help="no references: compare environments with each other")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args(argv)
    if args.dev:
        spectra = compare_environments(args.variants, args.cache, args.structures, args.workers, args.min_length)
        if args.figures:  # the sites come in the same order for every variant
            plot_simulator_dev(spectra, list(next(iter(spectra.values()))), args.figures)
    else:
        out = compare_with_reference(
            args.reference,
            args.structures,
            args.cache,
            args.figures,
            args.workers,
            args.min_length,
            args.table_dir,
            args.ref_as_shipped,
        )
        refs = load_references(args.reference, args.structures)
        base = XtbSettings(min_length=args.min_length)
        ref_grid = reference_broadener(args.ref_as_shipped)
        plot_simulator_vs_reference(refs, out["at_default"], base, args.cache, args.figures, ref_grid)
        plot_simulator_summary(out, args.figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
