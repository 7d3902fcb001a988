"""Edge cases of s2s.studies.evaluate that the mutation run (docs/testing.md section 4) showed untested:
quiet by default, the optional rounding of the tables, the helpers' boundaries.  No model is trained or
loaded here (fast); expected values come from the per-site rows (s2s.geometry.metrics) or by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2s.environment import SI, Environment, O
from s2s.studies.evaluate import evaluate_generation, first_shell_table, summary_table


def _bridge(outer=((2.5, 2.6, 1.0), (-2.5, 2.6, -1.0), (0.3, 3.2, 2.2)), scale=1.0):
    """O* bridging two Si (1.6 Å) with three second-shell O."""
    c = np.array([[0, 0, 0], [1.52, 0.49, 0], [-1.52, 0.49, 0], *outer], dtype=float) * scale
    return Environment([O, SI, SI] + [O] * len(outer), c, [0, 1, 1] + [2] * len(outer))


def test_evaluate_generation_is_quiet_unless_asked_for_progress(capfd):
    t = _bridge()
    evaluate_generation([t], [t], methods=("paper",))
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    evaluate_generation([t], [t], methods=("paper",), progress=True)
    out, err = capfd.readouterr()
    assert "evaluating" in out + err


def _rows():
    t = _bridge()
    g = _bridge(outer=((2.4, 2.0, -1.9), (-2.6, 2.4, 1.5), (-0.5, 3.0, -2.4)))
    return evaluate_generation([t, t, t], [g, _bridge(scale=1.1), t], methods=("paper",))


def test_summary_table_rounds_only_when_asked():
    rows = _rows()
    for key in ("rmsd_shell1", "rmsd_shell2", "rmsd_all"):
        exact = float(np.nanmean([r["paper"][key] for r in rows]))
        assert 0.01 < exact < 0.5 and round(exact, 2) != exact  # rounding to 0 decimals or 2 would show
        assert summary_table(rows)[key] == pytest.approx(exact, abs=1e-12)
        assert summary_table(rows, digits=2)[key] == round(exact, 2)
    assert summary_table(rows)["n_test"] == summary_table(rows, digits=2)["n_test"] == 3


def test_first_shell_table_rounds_only_when_asked():
    rows = _rows()
    exact = float(np.mean([r["paper"]["rmsd_shell1"] for r in rows]))
    assert 0.01 < exact < 0.5 and round(exact, 3) != exact
    assert first_shell_table(rows)["rmsd_shell1"] == pytest.approx(exact, abs=1e-12)
    assert first_shell_table(rows, digits=3)["rmsd_shell1"] == round(exact, 3)
    radial = float(np.mean([r["paper"]["rmsd_shell1_radial"] for r in rows]))  # the stretched bridge's
    assert radial == pytest.approx(0.1 * math.hypot(1.52, 0.49) / 3, abs=1e-9)
    assert first_shell_table(rows)["rmsd_shell1_radial"] == pytest.approx(radial, abs=1e-12)
    assert first_shell_table(rows, digits=3)["rmsd_shell1_radial"] == round(radial, 3)


def test_spread_indices_of_one_is_the_first_index():
    from s2s.studies.evaluate import spread_indices, subsample_groups

    assert spread_indices(7, 1).tolist() == [0]
    assert spread_indices(1, 1).tolist() == [0]
    assert subsample_groups(["a", "b", "a", "b", "a"], 1).tolist() == [0, 1]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="n_max"):
            spread_indices(7, bad)


def test_pick_cases_with_one_or_two_labels():
    from s2s.studies.evaluate import pick_cases

    v = [0.5, np.nan, 0.1, 0.9, 0.3]
    assert pick_cases(v, labels=("best",)) == {"best": 2}  # one label: the lowest value
    assert pick_cases(v, labels=("lo", "hi")) == {"lo": 2, "hi": 3}  # two: the lowest and the highest
    assert pick_cases([0.7, 0.2], labels=("lo", "mid", "hi")) == {"lo": 1, "hi": 0}  # distinct indices only
    assert pick_cases(np.array([[0.4, 0.2], [0.8, 0.6]]), labels=("lo", "hi")) == {"lo": 1, "hi": 2}  # flattened


def test_first_shell_table_names_any_missing_first_shell_key():
    for key in ("rmsd_shell1_local", "rmsd_shell1_radial", "angle_shell1_error_deg"):
        rows = _rows()
        for r in rows:
            del r["paper"][key]
        with pytest.raises(KeyError, match=f"{key}.*first_shell_errors"):
            first_shell_table(rows)
