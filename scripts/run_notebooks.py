"""Run the numbered jupytext notebooks (notebooks/NN_*.py) in order with papermill.

    python scripts/run_notebooks.py                # full size, every notebook
    python scripts/run_notebooks.py --small        # the small parameters CI uses
    python scripts/run_notebooks.py 01 03          # only these numbers
    python scripts/run_notebooks.py --html         # also export each executed notebook to HTML
    python scripts/run_notebooks.py --small --update-references   # accept the small run's checked numbers

Full size: executed notebooks go to runs/notebooks/NN_*.ipynb (ignored by git; ``--html`` adds
NN_*.html beside them), figures and figures/results.json are written by the notebooks themselves.
``--small``: executed notebooks go to runs/ci/notebooks/ and the notebooks' figures to
runs/ci/figures/ (their ``figures_dir`` parameter), so a test run never touches a tracked file.
Each executed notebook starts with a cell (tagged ``injected-cwd``) that changes into notebooks/,
so its relative paths work wherever it is re-executed (nbval runs it from its own folder).
Prints the time each notebook took.  ``--prepare-only`` only converts and injects the parameters
(CI then executes them under nbval).  The logic lives in :mod:`s2s.notebooks`.

``--small`` compares the checked cells' outputs (``NBVAL_CHECK_OUTPUT`` and ``REFERENCE_NUMBERS`` cells)
of every executed notebook with the committed references in notebooks/references/ (same text, numbers
within a tolerance, timings masked) and exits with status 1 naming each difference; nbval afterwards
only checks that a re-execution reproduces the run.  After a deliberate change, look at the differences
and accept them with ``--update-references`` (writes notebooks/references/NN_*.json; commit them).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from s2s.notebooks import check_reference, notebooks, output_dirs, record_timing, run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("numbers", nargs="*", help="two-digit notebook numbers to run (default: all)")
    ap.add_argument("--small", action="store_true", help="small parameters (CI)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where executed notebooks go (default: runs/notebooks, with --small runs/ci/notebooks)",
    )
    ap.add_argument(
        "--figures",
        type=Path,
        default=None,
        help="the notebooks' figures_dir (default: their own, ../figures; with --small runs/ci/figures)",
    )
    ap.add_argument(
        "--html", action="store_true", help="also export each executed notebook to HTML beside it (nbconvert)"
    )
    ap.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="papermill parameter for the notebooks run, e.g. -p retrain True (repeatable)",
    )
    ap.add_argument("--prepare-only", action="store_true", help="convert and inject parameters only, do not execute")
    ap.add_argument(
        "--update-references",
        action="store_true",
        help="with --small: write the checked cells' outputs as the new references (notebooks/references/)",
    )
    ap.add_argument(
        "--no-references", action="store_true", help="with --small: do not compare with the committed references"
    )
    ap.add_argument(
        "--references-only",
        action="store_true",
        help="with --small: compare (or update) the notebooks already executed in --out, without running them",
    )
    a = ap.parse_args(argv)
    if a.small:
        # the references are the outputs under the non-interactive backend CI uses (scripts/test.sh): under
        # the inline one, a figure left open shows as an extra "<Figure ...>" output and the comparison fails
        os.environ["MPLBACKEND"] = "Agg"
    if (a.update_references or a.references_only) and (not a.small or a.parameter or a.prepare_only):
        ap.error("--update-references and --references-only need --small, without -p parameters or --prepare-only")
    compare = a.small and not a.prepare_only and not a.parameter and not a.no_references
    a.out, a.figures = output_dirs(a.small, a.out, a.figures)
    nbs = notebooks([re.sub(r"\D", "", n).zfill(2) for n in a.numbers])
    if not nbs:
        print("no notebooks to run in notebooks/ (yet)")
        return 0
    total = 0.0
    times = {}
    differences = {}
    for nb in nbs:
        dt = 0.0 if a.references_only else run(nb, a.small, a.out, a.prepare_only, a.parameter, a.figures, a.html)
        total += dt
        times[nb.stem] = round(dt, 1)
        print(f"{nb.name}: {dt:.1f} s")
        if compare:
            diffs = check_reference(nb, a.out / (nb.stem + ".ipynb"), update=a.update_references)
            if a.update_references:
                print("  reference updated")
            elif diffs:
                differences[nb.name] = diffs
                print("  DIFFERS from its reference:\n    " + "\n    ".join(diffs))
            else:
                print("  agrees with its reference")
    print(f"all notebooks: {total:.1f} s; executed notebooks in {a.out}")
    if not a.small and not a.prepare_only and not a.parameter and a.figures is None and not a.references_only:
        record_timing(times)
    if differences:
        print(
            f"{len(differences)} notebook(s) differ from notebooks/references/ ({', '.join(differences)}); if the "
            "change is meant, accept it: python scripts/run_notebooks.py --small --update-references"
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
