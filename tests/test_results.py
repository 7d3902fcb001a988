"""figures/results.json helpers: atomic per-key updates, strict JSON, the README headline table."""

import json
import math

import numpy as np
import pytest

from s2s.evaluation.results import PAPER, headline_table, read_results, replace_block, update_results


def test_update_keeps_other_keys_and_writes_strict_json(tmp_path):
    p = tmp_path / "results.json"
    update_results("a", {"x": 1}, p)
    update_results("b", {"y": float("nan"), "z": [np.float64(2.5), math.inf], "w": np.int64(3)}, p)
    data = json.loads(p.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert data == {"a": {"x": 1}, "b": {"y": None, "z": [2.5, None], "w": 3}}
    assert read_results(p) == data


def test_headline_table_and_block(tmp_path):
    res = {
        "data": {"n_sites": 905},
        "test_generation": {"rmsd_shell1": 0.1234, "n_test": 53, "species_accuracy": 0.9},
        "template_matching": {"model_win_rate": 0.4},
        "amorphous_generation": {"rmsd_shell1": {"0.25": 0.9, "2.0": 0.2}, "network": {"rmsd_shell1": {"2.00": 0.31}}},
    }
    table = headline_table(res)
    assert "905 sites, 53 test" in table
    row = next(line for line in table.splitlines() if line.startswith("| 1st-shell RMSD"))
    assert row == f"| 1st-shell RMSD, test crystals (Å) | {PAPER['rmsd_shell1']:.3f} | 0.123 |"
    assert "| CN error, 1st shell (%) | 1.86 | — |" in table  # missing -> dash, never a made-up number
    assert "| amorphous SiO0.25: 1st-shell RMSD (Å) | 0.778 | 0.900 |" in table
    assert "| amorphous SiO2, network glasses: 1st-shell RMSD (Å) | — | 0.310 |" in table
    assert "| medoid of 8 samples: species accuracy | — | — |" in table
    text = "intro\n<!-- headline:begin -->\nold\n<!-- headline:end -->\nrest\n"
    new = replace_block(text, table)
    assert new.startswith("intro\n<!-- headline:begin -->\n| quantity") and new.endswith(
        "<!-- headline:end -->\nrest\n"
    )
    assert "\nold\n" not in new
    with pytest.raises(ValueError, match="headline:begin"):
        replace_block("no markers", table)
