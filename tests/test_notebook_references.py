"""Fixed references of the small-mode notebooks (s2s.notebooks.check_reference, issue 34): a changed
number fails until the reference is updated on purpose; timings and last-digit noise do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2s.notebooks import CHECK_MARKERS, check_reference, checked_outputs, compare_outputs, reference_path

nbformat = pytest.importorskip("nbformat")
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))

REF = [
    {"cell": "print(table)", "text": "RMSD 1st shell (Å)   0.634   0.512\nspecies accuracy   0.750\ntest cases   8\n"},
    {"cell": "bok = run()", "text": "K = 2, DDIM 5 steps, 8 test sites; sampling 3 s CPU\nwins   0.375\n"},
]


def _with(k: int, text: str) -> list[dict]:
    out = json.loads(json.dumps(REF))
    out[k]["text"] = text
    return out


def test_identical_outputs_agree_and_last_digit_noise_or_timings_are_tolerated():
    assert compare_outputs(REF, REF) == []
    near = _with(0, "RMSD 1st shell (Å)   0.635   0.511\nspecies accuracy   0.750\ntest cases   8\n")
    assert compare_outputs(REF, near) == []  # one unit of the last printed digit
    assert compare_outputs(REF, _with(1, "K = 2, DDIM 5 steps, 8 test sites; sampling 11 s CPU\nwins   0.375\n")) == []


@pytest.mark.parametrize(
    "k, text, what",
    [
        (0, "RMSD 1st shell (Å)   0.654   0.512\nspecies accuracy   0.750\ntest cases   8\n", "0.654 vs 0.634"),
        (0, "RMSD 1st shell (Å)   0.634   0.512\nspecies accuracy   0.625\ntest cases   8\n", "0.625 vs 0.750"),
        (0, "RMSD 1st shell (Å)   0.634   0.512\nspecies accuracy   0.750\ntest cases   9\n", "9 vs 8"),
        (1, "K = 2, DDIM 5 steps, 8 test sites; sampling 3 s CPU\nwins   0.500\n", "0.500 vs 0.375"),
        (0, "RMSD 1st shell (Å)   0.634\nspecies accuracy   0.750\ntest cases   8\n", "reference"),
        (0, "RMSD all (Å)   0.634   0.512\nspecies accuracy   0.750\ntest cases   8\n", "reference"),
        (0, "RMSD 1st shell (Å)   0.634   0.512\n", "lines"),
    ],
)
def test_a_changed_number_or_text_differs(k, text, what):
    diffs = compare_outputs(REF, _with(k, text))
    assert len(diffs) == 1 and what in diffs[0], diffs


def test_the_last_digit_of_scientific_notation_is_scaled_by_its_exponent():
    ref = [{"cell": "c", "text": "mse 8.73e-05\n"}]
    assert compare_outputs(ref, [{"cell": "c", "text": "mse 8.74e-05\n"}]) == []
    assert "8.93e-05 vs 8.73e-05" in compare_outputs(ref, [{"cell": "c", "text": "mse 8.93e-05\n"}])[0]


def test_changed_cells_differ():
    assert "checked cells changed" in compare_outputs(REF, REF[:1])[0]


def _notebook(tmp_path: Path, cells: list[tuple[str, list]]) -> Path:
    nb = nbformat.v4.new_notebook()
    for src, outputs in cells:
        c = nbformat.v4.new_code_cell(src)
        c.outputs = outputs
        nb.cells.append(c)
    p = tmp_path / "01_x.ipynb"
    nbformat.write(nb, p)
    return p


def test_checked_outputs_read_only_the_marked_cells_stdout_and_text_results(tmp_path):
    stream = nbformat.v4.new_output("stream", name="stdout", text="a 1.5\n")
    err = nbformat.v4.new_output("stream", name="stderr", text="progress 50%\n")
    result = nbformat.v4.new_output("execute_result", data={"text/plain": "0.25"}, execution_count=1)
    p = _notebook(
        tmp_path,
        [
            ("# NBVAL_CHECK_OUTPUT\nx = 1\nprint(x)", [stream, err]),
            ("print('unchecked')", [stream]),
            ("# REFERENCE_NUMBERS\ny", [result]),
        ],
    )
    assert checked_outputs(p) == [{"cell": "x = 1", "text": "a 1.5\n"}, {"cell": "y", "text": "0.25\n"}]


def test_update_then_check_round_trip(tmp_path):
    (tmp_path / "notebooks").mkdir()
    nb = tmp_path / "notebooks" / "01_x.py"
    stream = nbformat.v4.new_output("stream", name="stdout", text="value 0.500\n")
    p = _notebook(tmp_path, [("# NBVAL_CHECK_OUTPUT\nprint(v)", [stream])])
    assert check_reference(nb, p, root=tmp_path)[0].startswith("no reference")
    assert check_reference(nb, p, update=True, root=tmp_path) == []
    assert reference_path(nb, tmp_path).exists()
    assert check_reference(nb, p, root=tmp_path) == []
    changed = _notebook(tmp_path, [("# NBVAL_CHECK_OUTPUT\nprint(v)", [stream.copy()])])
    nbf = nbformat.read(changed, as_version=4)
    nbf.cells[0].outputs[0]["text"] = "value 0.600\n"
    nbformat.write(nbf, changed)
    assert "0.600 vs 0.500" in check_reference(nb, changed, root=tmp_path)[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_a_reference_for_each_checked_cell(path: Path):
    """The committed reference names the notebook's checked cells in order (a new or removed checked cell
    needs ``scripts/run_notebooks.py --small --update-references``)."""
    ref = json.loads(reference_path(path, ROOT).read_text(encoding="utf-8"))
    cells = []
    for chunk in path.read_text().split("# %%")[1:]:
        if chunk.startswith(" [markdown]") or not any(m in chunk for m in CHECK_MARKERS):
            continue
        code = [ln for ln in chunk.splitlines()[1:] if ln.strip() and not ln.lstrip().startswith("#")]
        cells.append(code[0] if code else "")
    assert [c["cell"] for c in ref["cells"]] == cells
    assert all(c["text"].strip() for c in ref["cells"]), "a checked cell with no output"
