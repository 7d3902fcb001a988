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
(CI then executes them under nbval).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebooks(selected: list[str]) -> list[Path]:
    nbs = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    if selected:
        nbs = [p for p in nbs if p.name[:2] in selected]
    return nbs


#: Tag of the first cell of every executed notebook: ``os.chdir`` into notebooks/.
CWD_TAG = "injected-cwd"


def inject_cwd_cell(ipynb: Path, cwd: Path) -> None:
    """Insert (or replace) a first code cell that changes into ``cwd`` (tagged ``CWD_TAG``)."""
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    nb.cells = [c for c in nb.cells if CWD_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_code_cell(
        f"import os\nos.chdir({str(cwd)!r})  # the notebook's relative paths are relative to notebooks/",
        metadata={"tags": [CWD_TAG], "jupyter": {"source_hidden": True}})
    nb.cells.insert(0, cell)
    nbformat.write(nb, ipynb)


def export_html(ipynb: Path) -> Path:
    """``ipynb`` -> the same name with ``.html`` (nbconvert; the injected cwd cell left out)."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {CWD_TAG}
    body, _ = HTMLExporter(config=config).from_filename(str(ipynb))
    out = ipynb.with_suffix(".html")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)
    return out


def run(nb: Path, small: bool, out_dir: Path, prepare_only: bool = False, params: list | None = None,
        figures_dir: Path | None = None, html: bool = False) -> float:
    """Convert ``nb`` to ``out_dir``/NAME.ipynb, inject the parameters and execute it (papermill).

    Returns the wall time (s) of the papermill step."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb = out_dir / (nb.stem + ".ipynb")
    subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--set-kernel", "python3", "-o", str(ipynb), str(nb)], check=True, cwd=ROOT)
    inject_cwd_cell(ipynb, nb.parent.resolve())
    args = [sys.executable, "-m", "papermill", str(ipynb), str(ipynb), "--cwd", str(nb.parent), "-k", "python3", "--log-level", "WARNING"]
    if small:
        args += ["-p", "small", "True"]
    if figures_dir is not None:
        args += ["-p", "figures_dir", str(figures_dir.resolve())]
    for name, value in params or []:
        args += ["-p", name, value]
    if prepare_only:
        args += ["--prepare-only"]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, cwd=ROOT)
    dt = time.perf_counter() - t0
    if html and not prepare_only:
        print(f"  html: {export_html(ipynb)}")
    return dt


def output_dirs(small: bool, out: Path | None = None, figures: Path | None = None) -> tuple[Path, Path | None]:
    """(folder of the executed notebooks, figures_dir passed to the notebooks or None: their own).

    Full size: runs/notebooks and the notebooks' own ../figures; small: runs/ci/notebooks and
    runs/ci/figures (both ignored by git).  ``out``/``figures`` given are kept."""
    if out is None:
        out = ROOT / "runs" / "ci" / "notebooks" if small else ROOT / "runs" / "notebooks"
    if figures is None and small:
        figures = ROOT / "runs" / "ci" / "figures"
    return out, figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("numbers", nargs="*", help="two-digit notebook numbers to run (default: all)")
    ap.add_argument("--small", action="store_true", help="small parameters (CI)")
    ap.add_argument("--out", type=Path, default=None,
                    help="where executed notebooks go (default: runs/notebooks, with --small runs/ci/notebooks)")
    ap.add_argument("--figures", type=Path, default=None,
                    help="the notebooks' figures_dir (default: their own, ../figures; with --small runs/ci/figures)")
    ap.add_argument("--html", action="store_true", help="also export each executed notebook to HTML beside it (nbconvert)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                    help="papermill parameter for the notebooks run, e.g. -p retrain True (repeatable)")
    ap.add_argument("--prepare-only", action="store_true", help="convert and inject parameters only, do not execute")
    a = ap.parse_args()
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


def machine() -> str:
    """A one-line description of this machine (CPU model, cores, memory)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores{mem}"


def record_timing(times: dict[str, float]) -> None:
    """Full-size wall times per notebook -> figures/results.json key ``timing`` (merged)."""
    import datetime

    sys.path.insert(0, str(ROOT))
    from s2s.evaluation.results import read_results, update_results

    path = ROOT / "figures" / "results.json"
    timing = read_results(path).get("timing", {})
    notebooks = {**timing.get("notebooks_s", {}), **times}
    update_results("timing", {
        "notebooks_s": notebooks, "total_s": round(sum(notebooks.values()), 1), "machine": machine(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }, path)


if __name__ == "__main__":
    raise SystemExit(main())
