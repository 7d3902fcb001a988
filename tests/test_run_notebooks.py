"""scripts/run_notebooks.py (s2s.notebooks): where executed notebooks and figures go, the cwd cell, HTML export.

A test run must never write into tracked files: the small (CI) run writes its executed notebooks
and figures under runs/ci/ (ignored), the full-size run keeps figures/ and leaves its executed
notebooks in runs/notebooks/ (ignored).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")
pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_notebooks.py"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _runner():
    """The runner's library module (the script itself only parses arguments)."""
    from s2s import notebooks

    return notebooks


def _code_cells(path: Path) -> list[tuple[list[str], str]]:
    """(tags, source) of each code cell of a percent-format notebook."""
    cells, cur, tags, kind = [], [], [], None
    for line in path.read_text().splitlines() + ["# %%"]:
        if line.startswith("# %%"):
            if kind == "code":
                cells.append((tags, "\n".join(cur)))
            kind = "markdown" if "[markdown]" in line else "code"
            m = re.search(r"tags=\[(.*?)\]", line)
            tags = re.findall(r'"([^"]+)"', m.group(1)) if m else []
            cur = []
        else:
            cur.append(line)
    return cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_figures_follow_figures_dir(path: Path):
    """Every figure/results path of a notebook goes through its ``figures_dir`` parameter."""
    cells = _code_cells(path)
    params = [src for tags, src in cells if "parameters" in tags]
    assert len(params) == 1
    assigned = {
        t.id: n.value.value
        for n in ast.parse(params[0]).body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
    }
    assert assigned.get("figures_dir") == "../figures"
    for tags, src in cells:
        if "parameters" in tags:
            continue
        code = "\n".join(line.split("#", 1)[0] for line in src.splitlines())
        assert "figures" not in re.sub(r"figures_dir|subfigures", "", code).replace('"results.json"', ""), (
            f"{path.name}: a path into figures/ that bypasses figures_dir:\n{src}"
        )


def test_output_dirs_are_ignored_by_git():
    rn = _runner()
    full_out, full_fig = rn.output_dirs(small=False)
    small_out, small_fig = rn.output_dirs(small=True)
    assert full_out == ROOT / "runs" / "notebooks" and full_fig is None  # figures/ as before
    assert small_out == ROOT / "runs" / "ci" / "notebooks" and small_fig == ROOT / "runs" / "ci" / "figures"
    assert rn.output_dirs(True, Path("/x"), Path("/y")) == (Path("/x"), Path("/y"))
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for d in (full_out, small_out, small_fig):
        probe = d.relative_to(ROOT) / "probe.png"
        r = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT)
        assert r.returncode == 0, f"{probe} is not ignored by git"


def test_prepare_only_injects_cwd_and_small_parameters(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "07", "--small", "--prepare-only", "--out", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    nb = nbformat.read(tmp_path / "07_experimental_quartz.ipynb", as_version=4)
    first = nb.cells[0]
    assert "injected-cwd" in first.metadata["tags"]
    assert f"os.chdir({str((ROOT / 'notebooks').resolve())!r})" in first.source
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    src = injected[0].source
    assert "small = True" in src
    assert f'figures_dir = "{(ROOT / "runs" / "ci" / "figures").resolve()}"' in src
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # not executed


def test_small_run_writes_figures_where_told(tmp_path: Path):
    """Notebook 02 at small size (20 training steps): its figure lands in --figures, figures/ untouched."""
    tracked = ROOT / "figures" / "02_loss.png"
    before = tracked.stat().st_mtime_ns if tracked.exists() else None
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    r = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "02",
            "--small",
            "--out",
            str(tmp_path / "nb"),
            "--figures",
            str(tmp_path / "fig"),
            "--html",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert (tmp_path / "fig" / "02_loss.png").stat().st_size > 0 and (tmp_path / "fig" / "02_loss.svg").exists()
    assert (tracked.stat().st_mtime_ns if tracked.exists() else None) == before
    html = (tmp_path / "nb" / "02_train.html").read_text()
    assert "02 " in html and "os.chdir" not in html  # the cwd cell is left out of the HTML
    nb = nbformat.read(tmp_path / "nb" / "02_train.ipynb", as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")  # executed


def test_export_html_leaves_out_the_cwd_cell(tmp_path: Path):
    rn = _runner()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nos.chdir('/somewhere')", metadata={"tags": [rn.CWD_TAG]}),
        nbformat.v4.new_markdown_cell("# A title"),
        nbformat.v4.new_code_cell(
            "print(6 * 7)", outputs=[nbformat.v4.new_output("stream", name="stdout", text="42\n")], execution_count=1
        ),
    ]
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    html = rn.export_html(path).read_text()
    assert "A title" in html and "42" in html and "/somewhere" not in html
    assert not list(tmp_path.glob(".*tmp"))
