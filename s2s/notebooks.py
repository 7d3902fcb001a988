"""Run the numbered jupytext notebooks (``notebooks/NN_*.py`` of a checkout) with papermill.

Each notebook is converted to ``.ipynb``, gets a first cell (tagged :data:`CWD_TAG`) that changes
into ``notebooks/`` so its relative paths work wherever it is re-executed, then papermill injects
the parameters (``small``, ``figures_dir``, any ``-p NAME VALUE``) and executes it.  The checkout is
:func:`s2s.resources.home` unless ``root`` is given.  ``scripts/run_notebooks.py`` is the command line.

Fixed references: the small-mode outputs of the checked cells (:data:`CHECK_MARKERS`) are committed in
notebooks/references/ and every small run is compared with them (:func:`check_reference`: the same text,
numbers within a tolerance, timings masked), so a changed number fails until someone looks and updates
the reference on purpose (``scripts/run_notebooks.py --small --update-references``).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from s2s.resources import HOME_VARIABLE, home, resolve
from s2s.studies.results import read_results, update_results


def _root(root: Path | None) -> Path:
    """The checkout holding notebooks/ (``root``, else :func:`s2s.resources.home`)."""
    if root is not None:
        return Path(root)

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


# ----------------------------------------------------------------------------- fixed references (issue 34)
#: Cells whose outputs are compared with the committed references: nbval's check marker, or this one for a
#: cell nbval must not compare (its output holds a timing) whose numbers are still checked.
CHECK_MARKERS = ("NBVAL_CHECK_OUTPUT", "REFERENCE_NUMBERS")
#: Where the small-mode references live (one JSON per notebook), relative to the checkout.
REFERENCE_DIR = Path("notebooks") / "references"
#: Default tolerance of a decimal number: ``rel`` of its value plus ``digits`` units of its last printed digit.
TOLERANCE = {"rel": 0.005, "digits": 1.5}
#: Timings are not science: "12.3 s", "8 s CPU", "0.012 s each", "(3.1 ms)" are masked before comparing.
VOLATILE = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*(?:s|ms|min)\b(?:\s+(?:CPU|wall))?")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def reference_path(nb: Path, root: Path | None = None) -> Path:
    """The committed reference of notebook ``nb`` (notebooks/references/NN_name.json)."""
    return _root(root) / REFERENCE_DIR / f"{Path(nb).stem}.json"


def checked_outputs(ipynb: Path) -> list[dict]:
    """``[{"cell": first code line, "text": stdout and text results}]`` of the cells carrying a
    :data:`CHECK_MARKERS` comment, in order (stderr, e.g. progress bars, and images are left out)."""
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not any(m in cell.source for m in CHECK_MARKERS):
            continue
        code = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        texts = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout":
                texts.append(o.get("text", ""))
            elif o.get("output_type") in ("execute_result", "display_data") and "text/plain" in o.get("data", {}):
                texts.append(o["data"]["text/plain"] + "\n")
            elif o.get("output_type") == "error":
                texts.append(f"{o.get('ename')}: {o.get('evalue')}\n")
        out.append({"cell": code[0] if code else "", "text": "".join(texts)})
    return out


def _tokens(text: str) -> tuple[str, list[str]]:
    """(the text with timings masked and every number replaced by #, the numbers in order)."""
    masked = VOLATILE.sub("<time>", text)
    return _NUMBER.sub("#", masked), _NUMBER.findall(masked)


def _close(ref: str, new: str, tol: dict) -> bool:
    """Integers exactly; decimals within ``tol`` (:data:`TOLERANCE`)."""
    if not re.search(r"[.eE]", ref):
        return ref.lstrip("+") == new.lstrip("+")
    a, b = float(ref), float(new)
    if a == b:
        return True
    mantissa, _, exponent = ref.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    unit = 10.0 ** (int(exponent or 0) - decimals)  # one unit of the last printed digit
    return abs(a - b) <= tol["rel"] * abs(a) + tol["digits"] * unit


def compare_outputs(reference: list[dict], outputs: list[dict], tol: dict | None = None) -> list[str]:
    """The differences of checked outputs from their reference, one line each (empty: they agree).

    Cell by cell: the same cells (first code lines), the same text once numbers and timings are masked,
    and every number within the tolerance (integers exactly)."""
    tol = {**TOLERANCE, **(tol or {})}
    if [c["cell"] for c in reference] != [c["cell"] for c in outputs]:
        return [
            f"the checked cells changed: reference {[c['cell'] for c in reference]}, now {[c['cell'] for c in outputs]}"
        ]
    diffs = []
    for k, (r, o) in enumerate(zip(reference, outputs)):
        r_lines, o_lines = r["text"].splitlines(), o["text"].splitlines()
        if len(r_lines) != len(o_lines):
            diffs.append(f"cell {k} ({r['cell']!r}): {len(o_lines)} lines, reference {len(r_lines)}")
            continue
        for rl, ol in zip(r_lines, o_lines):
            (r_shape, r_nums), (o_shape, o_nums) = _tokens(rl), _tokens(ol)
            if r_shape != o_shape or len(r_nums) != len(o_nums):
                diffs.append(f"cell {k} ({r['cell']!r}): {ol.strip()!r} (reference {rl.strip()!r})")
            elif not all(_close(a, b, tol) for a, b in zip(r_nums, o_nums)):
                bad = [(a, b) for a, b in zip(r_nums, o_nums) if not _close(a, b, tol)]
                diffs.append(
                    f"cell {k} ({r['cell']!r}): {ol.strip()!r} (reference {rl.strip()!r}; differs: "
                    + ", ".join(f"{b} vs {a}" for a, b in bad)
                    + ")"
                )
    return diffs


def check_reference(nb: Path, ipynb: Path, update: bool = False, root: Path | None = None) -> list[str]:
    """Compare an executed small-mode notebook's checked outputs with its committed reference (or, with
    ``update``, write them as the new reference).  Returns the differences (empty: agree or updated)."""
    import json

    ref_file = reference_path(nb, root)
    home = str(_root(root).resolve())  # paths printed under the checkout do not depend on where it is
    outputs = [{**c, "text": c["text"].replace(home, "<checkout>")} for c in checked_outputs(ipynb)]
    if update:
        ref_file.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "notebook": Path(nb).name,
            "about": "small-mode outputs of the checked cells (scripts/run_notebooks.py --small --update-references)",
            "tolerance": TOLERANCE,
            "cells": outputs,
        }
        ref_file.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return []
    if not ref_file.exists():
        return [f"no reference {ref_file}: run scripts/run_notebooks.py --small --update-references"]
    doc = json.loads(ref_file.read_text(encoding="utf-8"))
    return compare_outputs(doc["cells"], outputs, doc.get("tolerance"))
