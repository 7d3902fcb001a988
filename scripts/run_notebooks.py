"""Run the numbered jupytext notebooks (notebooks/NN_*.py) in order with papermill.

    python scripts/run_notebooks.py                # full size, every notebook
    python scripts/run_notebooks.py --small        # the small parameters CI uses
    python scripts/run_notebooks.py 01 03          # only these numbers
    python scripts/run_notebooks.py --html         # also export each executed notebook to HTML

Full size: executed notebooks go to runs/notebooks/NN_*.ipynb (ignored by git; ``--html`` adds
NN_*.html beside them), figures and figures/results.json are written by the notebooks themselves.
``--small``: executed notebooks go to runs/ci/notebooks/ and the notebooks' figures to
runs/ci/figures/ (their ``figures_dir`` parameter), so a test run never touches a tracked file.
Each executed notebook starts with a cell (tagged ``injected-cwd``) that changes into notebooks/,
so its relative paths work wherever it is re-executed (nbval runs it from its own folder).
Prints the time each notebook took.  ``--prepare-only`` only converts and injects the parameters
(CI then executes them under nbval).  The logic lives in :mod:`s2s.notebooks`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from s2s.notebooks import notebooks, output_dirs, record_timing, run


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
    a = ap.parse_args(argv)
    a.out, a.figures = output_dirs(a.small, a.out, a.figures)
    nbs = notebooks([re.sub(r"\D", "", n).zfill(2) for n in a.numbers])
    if not nbs:
        print("no notebooks to run in notebooks/ (yet)")
        return 0
    total = 0.0
    times = {}
    for nb in nbs:
        dt = run(nb, a.small, a.out, a.prepare_only, a.parameter, a.figures, a.html)
        total += dt
        times[nb.stem] = round(dt, 1)
        print(f"{nb.name}: {dt:.1f} s")
    print(f"all notebooks: {total:.1f} s; executed notebooks in {a.out}")
    if not a.small and not a.prepare_only and not a.parameter and a.figures is None:
        record_timing(times)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
