"""Run the numbered jupytext notebooks (notebooks/NN_*.py) in order with papermill.

    python scripts/run_notebooks.py                # full size, every notebook
    python scripts/run_notebooks.py --small        # the small parameters CI uses
    python scripts/run_notebooks.py 01 03          # only these numbers

Executed notebooks are written next to their sources as notebooks/NN_*.ipynb (ignored by git),
so that relative paths inside them work; figures and figures/results.json are written by the
notebooks themselves.  Prints the time each notebook took.  ``--prepare-only`` only converts and
injects the parameters (CI then executes them under nbval).
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


def run(nb: Path, small: bool, out_dir: Path, prepare_only: bool = False, params: list | None = None) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb = out_dir / (nb.stem + ".ipynb")
    subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--set-kernel", "python3", "-o", str(ipynb), str(nb)], check=True, cwd=ROOT)
    args = [sys.executable, "-m", "papermill", str(ipynb), str(ipynb), "--cwd", str(nb.parent), "-k", "python3", "--log-level", "WARNING"]
    if small:
        args += ["-p", "small", "True"]
    for name, value in params or []:
        args += ["-p", name, value]
    if prepare_only:
        args += ["--prepare-only"]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("numbers", nargs="*", help="two-digit notebook numbers to run (default: all)")
    ap.add_argument("--small", action="store_true", help="small parameters (CI)")
    ap.add_argument("--out", type=Path, default=ROOT / "notebooks", help="where executed notebooks go (default: next to the sources)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                    help="papermill parameter for the notebooks run, e.g. -p retrain True (repeatable)")
    ap.add_argument("--prepare-only", action="store_true", help="convert and inject parameters only, do not execute")
    a = ap.parse_args()
    nbs = notebooks([re.sub(r"\D", "", n).zfill(2) for n in a.numbers])
    if not nbs:
        print("no notebooks to run in notebooks/ (yet)")
        return 0
    total = 0.0
    times = {}
    for nb in nbs:
        dt = run(nb, a.small, a.out, a.prepare_only, a.parameter)
        total += dt
        times[nb.stem] = round(dt, 1)
        print(f"{nb.name}: {dt:.1f} s")
    print(f"all notebooks: {total:.1f} s")
    if not a.small and not a.prepare_only and not a.parameter:
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
    from s2s.results import read_results, update_results

    path = ROOT / "figures" / "results.json"
    timing = read_results(path).get("timing", {})
    notebooks = {**timing.get("notebooks_s", {}), **times}
    update_results("timing", {
        "notebooks_s": notebooks, "total_s": round(sum(notebooks.values()), 1), "machine": machine(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }, path)


if __name__ == "__main__":
    raise SystemExit(main())
