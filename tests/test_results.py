"""figures/results.json helpers: atomic per-key updates, strict JSON, the README headline table."""

import json
import math

import numpy as np
import pytest

from s2s.studies.results import PAPER, headline_table, read_results, replace_block, update_results


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
        "test_generation": {
            "rmsd_shell1": 0.1234,
            "n_test": 53,
            "species_accuracy": 0.9,
            "first_shell": {"rmsd_shell1_radial": 0.0281, "angle_shell1_error_deg": 8.42},
            "ci95": {"rmsd_shell1": [0.1, 0.15], "species_accuracy": [0.8, 0.95], "rmsd_all": "broken"},
            "mirror_images_equal": {"rmsd_shell1": 0.101, "ci95": {"rmsd_shell1": [0.08, 0.12]}},
            "reference_input": {
                "rmsd_shell1": 0.61,
                "validity": 0.9,
                "n_test": 41,
                "n_structures": 4,
                "ci95": {"rmsd_shell1": [0.5, 0.7]},
                "xtb_input": {"rmsd_shell1": 0.52, "ci95": {"rmsd_shell1": [0.4, 0.6]}},
            },
        },
        "template_matching": {
            "model_win_rate": 0.4,
            "model_win_rate_ci95": [0.3, 0.5],
            "reference_input": {"model_win_rate": 0.25, "model_win_rate_ci95": [0.1, 0.4]},
        },
        "amorphous_generation": {"rmsd_shell1": {"0.25": 0.9, "2.0": 0.2}, "network": {"rmsd_shell1": {"2.00": 0.31}}},
    }
    table = headline_table(res)
    assert "905 sites, 53 test" in table
    row = next(line for line in table.splitlines() if line.startswith("| 1st-shell RMSD"))
    assert row == f"| 1st-shell RMSD, test crystals (Å) | xTB | {PAPER['rmsd_shell1']:.3f} | 0.123 | 0.100-0.150 |"
    assert "| 1st-shell RMSD, mirror images counted equal (Å) | xTB | — | 0.101 | 0.080-0.120 |" in table
    assert "| species accuracy (O fraction exact) | xTB | 0.949 | 0.900 | 0.800-0.950 |" in table
    assert "| wins over template matching (SOAP) | xTB | 0.521 | 0.400 | 0.300-0.500 |" in table
    assert "| RMSD, all atoms to the 3rd shell (Å) | xTB | 0.804 | — | — |" in table  # a malformed interval is left out
    assert "| CN error, 1st shell (%) | xTB | 1.86 | — | — |" in table  # missing -> dash, never a made-up number
    assert "| amorphous SiO0.25: 1st-shell RMSD (Å) | xTB | 0.778 | 0.900 | — |" in table
    assert "| amorphous SiO2, network glasses: 1st-shell RMSD (Å) | xTB | — | 0.310 | — |" in table
    assert "| consensus of 8 samples (what s2s predict writes first): species accuracy | xTB | — | — | — |" in table
    assert "| 1st shell on its own: radial RMSD, as EXAFS fits (Å) | xTB | — | 0.028 | — |" in table
    assert "| 1st shell on its own: Si-O-Si angle error (°) | xTB | — | 8.4 | — |" in table
    assert "| 1st shell on its own: RMSD aligned on itself (Å) | xTB | — | — | — |" in table
    # the rows that read first-principles spectra say so, beside the same sites read from xTB spectra
    assert (
        "| 1st-shell RMSD, the 41 test sites of 4 structures with a GPAW spectrum (Å) | GPAW | — | 0.610 "
        "| 0.500-0.700 |" in table
    )
    assert "| 1st-shell RMSD, the same sites from their xTB spectra (Å) | xTB | — | 0.520 | 0.400-0.600 |" in table
    assert "| validity, the same sites | GPAW | — | 0.900 | — |" in table
    assert "| wins over template matching in a GPAW library, the 41 sites | GPAW | — | 0.250 | 0.100-0.400 |" in table
    assert "SiO2 sites" not in table  # no subsets recorded: no SiO2 rows
    assert "| GPAW alpha-quartz spectrum: RMSD all, median of the ensemble (Å) | GPAW | — | — | — |" in table
    assert "| 1st-shell RMSD, the same sites (Å) | GPAW + map | — | — | — |" in table  # no mapped_input yet: dashes
    # with the mapped rows: the same sites through the fidelity map, and quartz read both ways
    res["test_generation"]["reference_input"]["mapped_input"] = {
        "rmsd_shell1": 0.55,
        "species_accuracy": 0.7,
        "ci95": {"rmsd_shell1": [0.45, 0.66]},
    }
    res["experimental_quartz"] = {"rmsd_all": 1.29, "mapped_input": {"rmsd_all": 0.81}}
    res["test_generation"]["reference_input"]["subsets"] = {
        "SiO2": {
            "rmsd_shell1": 0.33,
            "species_accuracy": 0.95,
            "n_test": 12,
            "n_structures": 2,
            "ci95": {"rmsd_shell1": [0.2, 0.5]},
        }
    }
    t2 = headline_table(res)
    assert "| 1st-shell RMSD, the 12 SiO2 sites (2 structures) among them (Å) | GPAW | — | 0.330 | 0.200-0.500 |" in t2
    assert "| species accuracy, the same SiO2 sites | GPAW | — | 0.950 | — |" in t2
    assert "| 1st-shell RMSD, the same sites (Å) | GPAW + map | — | 0.550 | 0.450-0.660 |" in t2
    assert "| species accuracy, the same sites | GPAW + map | — | 0.700 | — |" in t2
    assert "| GPAW alpha-quartz spectrum: RMSD all, median of the ensemble (Å) | GPAW | — | 1.290 | — |" in t2
    assert "| GPAW alpha-quartz spectrum: RMSD all, median of the ensemble (Å) | GPAW + map | — | 0.810 | — |" in t2
    # where the results say which generator read the spectra, the input column names it
    res["test_generation"]["model"] = "s2s_open_v6"
    res["test_generation"]["reference_input"].update(model="s2s_open_v9")
    res["test_generation"]["reference_input"]["mapped_input"]["model"] = "s2s_open_v6"
    t3 = headline_table(res)
    assert "| species accuracy (O fraction exact) | xTB (s2s_open_v6) | 0.949 | 0.900 | 0.800-0.950 |" in t3
    assert "| validity, the same sites | GPAW (s2s_open_v9) | — | 0.900 | — |" in t3
    assert "| 1st-shell RMSD, the same sites from their xTB spectra (Å) | xTB (s2s_open_v9) | — | 0.520 |" in t3
    assert "| 1st-shell RMSD, the same sites (Å) | GPAW + map (s2s_open_v6) | — | 0.550 | 0.450-0.660 |" in t3
    assert "GPAW (s2s_open_v6)" not in t3  # no row of the xTB generator reading GPAW spectra as they are yet
    res["test_generation"]["reference_input"]["xtb_model_input"] = {
        "model": "s2s_open_v6",
        "rmsd_shell1": 0.66,
        "species_accuracy": 0.4,
        "ci95": {"rmsd_shell1": [0.5, 0.8]},
    }
    t4 = headline_table(res)
    assert "| 1st-shell RMSD, the same sites (Å) | GPAW (s2s_open_v6) | — | 0.660 | 0.500-0.800 |" in t4
    assert "| validity, the same sites | GPAW (s2s_open_v6) | — | — | — |" in t4
    assert table.splitlines()[0].startswith("| quantity | input spectra | paper")
    text = "intro\n<!-- headline:begin -->\nold\n<!-- headline:end -->\nrest\n"
    new = replace_block(text, table)
    assert new.startswith("intro\n<!-- headline:begin -->\n| quantity") and new.endswith(
        "<!-- headline:end -->\nrest\n"
    )
    assert "\nold\n" not in new
    with pytest.raises(ValueError, match="headline:begin"):
        replace_block("no markers", table)


def test_families_table_per_composition():
    """Both glass families per x from notebook 05's keys; an x a family lacks reads '—'; no data is an error."""
    from s2s.studies.results import families_table

    res = {
        "amorphous_generation": {
            "n": {"0.25": 3, "2.00": 5},
            "rmsd_shell1": {"0.25": 1.5, "2.00": 0.9},
            "species_accuracy": {"0.25": 0.3, "2.00": 0.5},
            "network": {
                "n": {"0.25": 4, "0.50": 6, "2.00": 7},
                "rmsd_shell1": {"0.25": 0.6, "0.50": 0.8, "2.00": 0.35},
                "species_accuracy": {"0.25": 1.0, "0.50": 0.95, "2.00": 0.99},
                "model_win_rate": {"0.25": 0.8, "0.50": 0.7, "2.00": 0.5},
                "template": {"species_accuracy": {"0.25": 0.2, "0.50": 0.3, "2.00": 0.98}},
            },
        }
    }
    lines = families_table(res).splitlines()
    assert [ln.split(" | ")[0] for ln in lines[2:]] == ["| 0.25", "| 0.50", "| 2.00"]
    assert lines[3] == "| 0.50 | 0 | — | — | 6 | 0.800 | 0.95 | 0.30 | 0.70 |"
    assert lines[4] == "| 2.00 | 5 | 0.900 | 0.50 | 7 | 0.350 | 0.99 | 0.98 | 0.50 |"
    with pytest.raises(ValueError, match="notebook 05"):
        families_table({})
