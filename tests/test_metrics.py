"""Tests for s2s.geometry.metrics: graph-hop shells, per-shell RMSD, CN error, species accuracy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import random_orthogonal, random_permutation, rotate_permute

from s2s.environment import SI, Environment, O
from s2s.geometry.metrics import cn_relative_error_pct, evaluate_pair, first_shell_errors, species_match, summarize
from s2s.geometry.shells import assign_shells, coordination_numbers


def test_assign_shells_hand_built_chain():
    coords = np.array(
        [
            [0.0, 0.0, 0.0],  # excited O
            [1.6, 0.0, 0.0],  # Si, 1.6 Å -> shell 1
            [0.0, 2.0, 0.0],  # exactly at the cutoff (inclusive) -> shell 1
            [1.6, 1.6, 0.0],  # 1.6 from the Si, 2.26 from O* -> shell 2
            [1.6, 1.6, 1.6],  # 1.6 from the shell-2 atom -> shell 3
            [1.6, 1.6, 3.2],  # 4th hop -> unassigned (4)
            [10.0, 0.0, 0.0],  # not connected -> unassigned (4)
        ]
    )
    np.testing.assert_array_equal(assign_shells(coords), [0, 1, 1, 2, 3, 4, 4])
    np.testing.assert_array_equal(assign_shells(coords, n_shells=2), [0, 1, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(assign_shells(coords, cutoff=1.0), [0, 4, 4, 4, 4, 4, 4])
    np.testing.assert_array_equal(assign_shells(np.zeros((1, 3))), [0])
    with pytest.raises(ValueError, match="assign_shells"):
        assign_shells(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        assign_shells(np.array([[0, 0, 0], [np.nan, 0, 0]]))


def test_assign_shells_reproduces_builder_labels(alpha_quartz):
    from s2s.environment import environment_from_structure

    for site in range(3, 9):  # the O sites
        env = environment_from_structure(alpha_quartz, site)
        np.testing.assert_array_equal(assign_shells(env.coords), env.shell)
        np.testing.assert_array_equal(coordination_numbers(env.shell), [2, 6, 6])


def test_cn_relative_error_and_species_match_by_hand():
    assert cn_relative_error_pct(3, 2) == pytest.approx(50.0)
    assert cn_relative_error_pct(2, 2) == 0.0
    assert cn_relative_error_pct(5, 6) == pytest.approx(100 / 6)
    assert math.isnan(cn_relative_error_pct(1, 0))
    z = lambda n: np.zeros((n, 3))  # noqa: E731
    t = Environment([O, SI, SI, O], z(4), [0, 1, 1, 2])
    assert species_match(t, Environment([O, O, SI, SI], z(4), [0] * 4))
    assert not species_match(t, Environment([O, O, O, SI], z(4), [0] * 4))
    assert species_match(t, Environment([O, O, O, SI, SI, SI], z(6), [0] * 6))  # 3/6 == 2/4
    assert not species_match(t, Environment([O, O, SI], z(3), [0] * 3))


def _toy_target() -> Environment:
    # O*, two Si on the x axis (shell 1), two O bonded to them (shell 2); inversion-symmetric
    c = np.array([[0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0], [1.6, 0, 1.6], [-1.6, 0, -1.6]], float)
    return Environment([O, SI, SI, O, O], c, [0, 1, 1, 2, 2])


@pytest.mark.parametrize("method", ["paper", "best"])
def test_evaluate_pair_hand_computed_scaled_copy(method):
    t = _toy_target()
    p = np.array([0, 3, 1, 4, 2])
    # generated = target scaled by 1.0625 about O* (optimal rotation: identity), rotated, permuted
    g = rotate_permute(t, random_orthogonal(1), p, scale=1.0625)
    g = Environment(g.species, g.coords, [0] * 5)
    r = evaluate_pair(t, g, method=method)
    assert r["rmsd_shell1"] == pytest.approx(0.0625 * 1.6, abs=1e-9)
    assert r["rmsd_shell2"] == pytest.approx(0.0625 * 1.6 * np.sqrt(2), abs=1e-9)
    assert math.isnan(r["rmsd_shell3"])
    assert r["rmsd_all"] == pytest.approx(np.sqrt((2 * 0.1**2 + 2 * 0.02) / 5), abs=1e-9)
    assert r["rmsd_neighbours"] == pytest.approx(np.sqrt((2 * 0.1**2 + 2 * 0.02) / 4), abs=1e-9)
    assert (r["cn_gen_shell1"], r["cn_gen_shell2"], r["cn_gen_shell3"]) == (2, 2, 0)
    assert r["cn_error_shell1_pct"] == 0.0 and r["cn_error_shell2_pct"] == 0.0
    assert math.isnan(r["cn_error_shell3_pct"])
    assert r["species_match"] and r["n_matched"] == 5


def test_evaluate_pair_cn_error_and_species_mismatch():
    t = _toy_target()
    c = t.coords.copy()
    c[4] = [6.0, 6.0, 6.0]  # one shell-2 O far away: generated CN2 = 1
    g = Environment([O, SI, SI, O, SI], c, [0] * 5)  # and one O -> Si
    r = evaluate_pair(t, g)
    assert (r["cn_gen_shell1"], r["cn_gen_shell2"]) == (2, 1)
    assert r["cn_error_shell1_pct"] == 0.0
    assert r["cn_error_shell2_pct"] == pytest.approx(50.0)
    assert not r["species_match"]
    assert r["o_frac_target"] == pytest.approx(0.6) and r["o_frac_gen"] == pytest.approx(0.4)
    assert r["rmsd_all"] > 0.5


def test_evaluate_pair_identical_rotated_quartz_and_unequal_counts(alpha_quartz):
    from s2s.environment import environment_from_structure

    t = environment_from_structure(alpha_quartz, 3)
    rng = np.random.default_rng(5)
    p = random_permutation(t.n_atoms, rng)
    g = rotate_permute(t, random_orthogonal(6), p)
    g = Environment(g.species, g.coords, np.zeros(t.n_atoms, int))
    r = evaluate_pair(t, g)
    for k in ("rmsd_all", "rmsd_shell1", "rmsd_shell2", "rmsd_shell3"):
        assert r[k] < 1e-6
    for k in (1, 2, 3):
        assert r[f"cn_error_shell{k}_pct"] == 0.0
    assert r["species_match"]
    # drop one shell-3 atom from the generated environment
    first_shell3 = np.flatnonzero(t.shell[p] == 3)[0]  # index in the generated order
    keep = np.delete(np.arange(t.n_atoms), first_shell3)
    g2 = Environment(g.species[keep], g.coords[keep], g.shell[keep])
    r2 = evaluate_pair(t, g2, method="best")
    assert r2["n_matched"] == 14 and r2["n_generated"] == 14
    assert r2["rmsd_shell3"] < 1e-6  # RMSD over the matched atoms only
    assert r2["cn_gen_shell3"] == 5
    assert r2["cn_error_shell3_pct"] == pytest.approx(100 / 6)
    assert not r2["species_match"]  # 7/14 O vs 7/15 O


def test_summarize_means_and_nan_handling():
    base = {"rmsd_neighbours": 0.0, "cn_error_shell3_pct": math.nan}
    rs = [
        dict(
            base,
            rmsd_all=0.1,
            rmsd_shell1=0.05,
            rmsd_shell2=0.2,
            rmsd_shell3=math.nan,
            cn_error_shell1_pct=0.0,
            cn_error_shell2_pct=50.0,
            species_match=True,
        ),
        dict(
            base,
            rmsd_all=0.3,
            rmsd_shell1=0.15,
            rmsd_shell2=0.4,
            rmsd_shell3=1.0,
            cn_error_shell1_pct=50.0,
            cn_error_shell2_pct=math.nan,
            species_match=False,
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = summarize(rs)
    assert s["rmsd_all"] == pytest.approx(0.2)
    assert s["rmsd_shell1"] == pytest.approx(0.1)
    assert s["rmsd_shell2"] == pytest.approx(0.3)
    assert s["rmsd_shell3"] == pytest.approx(1.0)
    assert s["cn_error_shell1_pct"] == pytest.approx(25.0)
    assert s["cn_error_shell2_pct"] == pytest.approx(50.0)
    assert math.isnan(s["cn_error_shell3_pct"])
    assert s["species_accuracy"] == 0.5 and s["n"] == 2
    with pytest.raises(ValueError, match="summarize"):
        summarize([])


def _bridge(angle_deg: float, r1: float = 1.6, r2: float = 1.6, outer: np.ndarray | None = None) -> Environment:
    """O* with two Si at r1, r2 (Å) making angle_deg, plus optional outer O atoms (shell 2)."""
    h = math.radians(angle_deg) / 2
    si = [[r1 * math.sin(h), r1 * math.cos(h), 0.0], [-r2 * math.sin(h), r2 * math.cos(h), 0.0]]
    coords = np.array([[0.0, 0.0, 0.0], *si, *([] if outer is None else outer)])
    n_out = 0 if outer is None else len(outer)
    return Environment(species=[O, SI, SI] + [O] * n_out, coords=coords, shell=[0, 1, 1] + [2] * n_out)


def test_first_shell_errors_by_hand():
    """Radial, local and angle errors of a Si-O-Si bridge against hand-computed values."""
    t = _bridge(144.0)
    # same bridge, rotated and with the two Si swapped: all three errors are zero
    g = Environment(species=t.species, coords=t.coords[[0, 2, 1]] @ random_orthogonal(3).T, shell=t.shell)
    e = first_shell_errors(t, g)
    assert e["rmsd_shell1_radial"] == pytest.approx(0.0, abs=1e-9)
    assert e["rmsd_shell1_local"] == pytest.approx(0.0, abs=1e-7)
    assert e["angle_shell1_error_deg"] == pytest.approx(0.0, abs=1e-6)
    # 150° instead of 144°: two atoms at 1.6 Å, the best rotation splits the 6° (each atom off by 3°)
    e = first_shell_errors(t, _bridge(150.0))
    assert e["angle_shell1_error_deg"] == pytest.approx(6.0)
    assert e["rmsd_shell1_radial"] == pytest.approx(0.0, abs=1e-12)
    assert e["rmsd_shell1_local"] == pytest.approx(2 * 1.6 * math.sin(math.radians(6.0) / 4))
    # bonds 1.60/1.60 vs 1.65/1.55 at the same angle: the sorted distances differ by 0.05 each
    e = first_shell_errors(t, _bridge(144.0, 1.65, 1.55))
    assert e["rmsd_shell1_radial"] == pytest.approx(0.05)
    # a different first-shell count gives NaN everywhere
    one = Environment(species=[O, SI], coords=[[0, 0, 0], [1.6, 0, 0]], shell=[0, 1])
    assert all(math.isnan(v) for v in first_shell_errors(t, one).values())


def test_first_shell_errors_ignore_the_outer_shells_that_the_paper_rmsd_sees():
    """An outer shell put elsewhere moves the paper-aligned 1st-shell RMSD but not the first shell's own errors."""
    outer_t = np.array([[2.5, 2.6, 1.0], [-2.5, 2.6, -1.0], [0.3, 3.2, 2.2]])
    outer_g = np.array([[2.4, 2.0, -1.9], [-2.6, 2.4, 1.5], [-0.5, 3.0, -2.4]])
    t, g = _bridge(144.0, outer=outer_t), _bridge(144.0, outer=outer_g)
    r = evaluate_pair(t, g, method="paper")
    assert r["rmsd_shell1"] > 0.05  # the whole-environment alignment rotates the bridge off
    assert r["rmsd_shell1_radial"] == pytest.approx(0.0, abs=1e-9)
    assert r["rmsd_shell1_local"] == pytest.approx(0.0, abs=1e-7)
    assert r["angle_shell1_error_deg"] == pytest.approx(0.0, abs=1e-6)
    s = summarize([r, evaluate_pair(t, _bridge(150.0, outer=outer_t))])
    assert s["angle_shell1_error_deg"] == pytest.approx(3.0, abs=1e-6)
