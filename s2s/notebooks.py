"""Run the numbered jupytext notebooks (``notebooks/NN_*.py`` of a checkout) with papermill.

Each notebook is converted to ``.ipynb``, gets a first cell (tagged :data:`CWD_TAG`) that changes
into ``notebooks/`` so its relative paths work wherever it is re-executed, then papermill injects
the parameters (``small``, ``figures_dir``, any ``-p NAME VALUE``) and executes it.  The checkout is
:func:`s2s.resources.home` unless ``root`` is given.  ``scripts/run_notebooks.py`` is the command line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def _root(root: Path | None) -> Path:
    """The checkout holding notebooks/ (``root``, else :func:`s2s.resources.home`)."""
    if root is not None:
        return Path(root)
    from s2s.resources import HOME_VARIABLE, home

    h = home()
    if h is None:
        raise FileNotFoundError(f"no checkout with notebooks/ found: set {HOME_VARIABLE}")
    return h


def notebooks(selected: list[str], root: Path | None = None) -> list[Path]:
    """The numbered notebooks ``notebooks/NN_*.py`` in order; only the two-digit numbers ``selected`` if any."""
    nbs = sorted(p for p in (_root(root) / "notebooks").glob("[0-9][0-9]_*.py"))
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
        metadata={"tags": [CWD_TAG], "jupyter": {"source_hidden": True}},
    )
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


def run(
    nb: Path,
    small: bool,
    out_dir: Path,
    prepare_only: bool = False,
    params: list | None = None,
    figures_dir: Path | None = None,
    html: bool = False,
    root: Path | None = None,
) -> float:
    """Convert ``nb`` to ``out_dir``/NAME.ipynb, inject the parameters and execute it (papermill).

    Returns the wall time (s) of the papermill step."""
    root = _root(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    ipynb = out_dir / (nb.stem + ".ipynb")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "jupytext",
            "--quiet",
            "--to",
            "ipynb",
            "--set-kernel",
            "python3",
            "-o",
            str(ipynb),
            str(nb),
        ],
        check=True,
        cwd=root,
    )
    inject_cwd_cell(ipynb, nb.parent.resolve())
    args = [
        sys.executable,
        "-m",
        "papermill",
        str(ipynb),
        str(ipynb),
        "--cwd",
        str(nb.parent),
        "-k",
        "python3",
        "--log-level",
        "WARNING",
    ]
    if small:
        args += ["-p", "small", "True"]
    if figures_dir is not None:
        args += ["-p", "figures_dir", str(figures_dir.resolve())]
    for name, value in params or []:
        args += ["-p", name, value]
    if prepare_only:
        args += ["--prepare-only"]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, cwd=root)
    dt = time.perf_counter() - t0
    if html and not prepare_only:
        print(f"  html: {export_html(ipynb)}")
    return dt


def output_dirs(
    small: bool, out: Path | None = None, figures: Path | None = None, root: Path | None = None
) -> tuple[Path, Path | None]:
    """(folder of the executed notebooks, figures_dir passed to the notebooks or None: their own).

    Full size: runs/notebooks and the notebooks' own ../figures; small: runs/ci/notebooks and
    runs/ci/figures (both ignored by git).  ``out``/``figures`` given are kept."""
    if out is None or (figures is None and small):
        root = _root(root)
    if out is None:
        out = root / "runs" / "ci" / "notebooks" if small else root / "runs" / "notebooks"
    if figures is None and small:
        figures = root / "runs" / "ci" / "figures"
    return out, figures


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
        kb = int(
            next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1]
        )
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores{mem}"


def record_timing(times: dict[str, float], path: Path | None = None) -> None:
    """Full-size wall times per notebook (s) -> key ``timing`` of results.json (merged; default:
    the ``results`` resource, figures/results.json of the checkout)."""
    import datetime

    from s2s.evaluation.results import read_results, update_results
    from s2s.resources import resolve

    path = resolve("results", path, must_exist=False)
    timing = read_results(path).get("timing", {})
    notebooks = {**timing.get("notebooks_s", {}), **times}
    update_results(
        "timing",
        {
            "notebooks_s": notebooks,
            "total_s": round(sum(notebooks.values()), 1),
            "machine": machine(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        path,
    )
