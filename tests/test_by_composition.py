"""Per-composition scoring of a glass family (notebook 05) and its figure."""

import numpy as np
import pytest

from s2s import plots
from s2s.environment import Environment
from s2s.spectrum import GRID, normalize
from s2s.studies.by_composition import evaluate_family, family_result


def _env(d_sio: float, n_si: int = 2) -> Environment:
    coords = [[0.0, 0.0, 0.0]] + [[d_sio * np.cos(a), d_sio * np.sin(a), 0.0] for a in np.linspace(0, np.pi, n_si)]
    return Environment(np.array([1] + [0] * n_si), np.array(coords), np.array([0] + [1] * n_si))


def _spec(c: float) -> np.ndarray:
    return normalize(np.exp(-0.5 * ((GRID - c) / 0.7) ** 2) + 1e-6)


def test_a_perfect_generator_and_a_perfect_template_per_composition():
    targets = [_env(1.60), _env(1.62), _env(1.70, 3)]
    keys = ["2.00", "2.00", "0.50"]
    spectra = np.stack([_spec(3.0), _spec(5.0), _spec(8.0)])
    perfect = [[t] for t in targets]
    ev = evaluate_family(targets, perfect, keys, spectra, spectra, targets)
    assert sorted(ev.groups) == ["0.50", "2.00"] and ev.groups["2.00"].tolist() == [0, 1]
    assert ev.per_comp["paper"]["2.00"]["rmsd_shell1"] == pytest.approx(0.0, abs=1e-6)
    assert ev.template_per_comp["0.50"]["species_accuracy"] == 1.0
    assert all(w == 0.0 for w in ev.win_rate.values())  # a tie with a perfect template is not a win
    res = family_result(ev, n_steps=50)
    assert res["n"] == {"2.00": 2, "0.50": 1} and res["n_steps"] == 50
    assert res["species_accuracy"]["2.00"] == 1.0 and res["template"]["rmsd_shell1"]["0.50"] == 0.0
    assert res["first_shell"]["rmsd_shell1_radial"] == {"2.00": 0.0, "0.50": 0.0}
    assert res["first_shell"]["same_shell1_count"]["0.50"] == 1.0
    # bonds 0.05 Å too long at x = 2.00: the radial error sees it, per composition
    stretched = [[_env(1.65)], [_env(1.67)], [targets[2]]]
    fs = family_result(evaluate_family(targets, stretched, keys, spectra, spectra, targets))["first_shell"]
    assert fs["rmsd_shell1_radial"]["2.00"] == pytest.approx(0.05) and fs["rmsd_shell1_radial"]["0.50"] == 0.0
    # a wrong generator (a three-fold O for a two-fold target) loses species accuracy at that x
    wrong = [[_env(1.60, 3)], [targets[1]], [targets[2]]]
    assert family_result(evaluate_family(targets, wrong, keys, spectra, spectra, targets))["species_accuracy"][
        "2.00"
    ] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one of each per site"):
        evaluate_family(targets, perfect[:2], keys, spectra, spectra, targets)


def test_families_figure_draws_model_and_template_per_family():
    res = {
        "rmsd_shell1": {"0.50": 0.8, "2.00": 0.2},
        "species_accuracy": {"0.50": 0.3, "2.00": None},
        "model_win_rate": {"0.50": 0.1, "2.00": 0.4},
        "template": {"rmsd_shell1": {"0.50": 0.6, "2.00": 0.3}, "species_accuracy": {"0.50": 0.5, "2.00": 0.9}},
    }
    fig = plots.plot_families_by_composition({"Tersoff": res, "network": res})
    assert len(fig.axes) == 3
    assert [ln.get_label() for ln in fig.axes[0].lines] == [
        "Tersoff",
        "Tersoff, template",
        "network",
        "network, template",
    ]
    assert fig.axes[1].lines[0].get_xdata().tolist() == [0.5]  # null values are not drawn
    assert len(fig.axes[2].lines) == 2  # the win rate has no template line
    with pytest.raises(ValueError, match="no families"):
        plots.plot_families_by_composition({})
