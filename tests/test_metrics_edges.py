"""Edge cases of s2s.geometry.metrics that the mutation run (docs/testing.md section 4) showed untested:
bond-length boundaries of validity / bond_sanity, the O-O exemption, the first-shell size limits and the
summary's optional keys.  Every expected value is set by hand from the documented rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from s2s.environment import DEFAULT_CUTOFF, SI, Environment, O
from s2s.geometry import metrics as M


def _env(species, coords, shell=None) -> Environment:
    c = np.asarray(coords, dtype=float)
    return Environment(species, c, np.zeros(len(c), int) if shell is None else shell)


def test_assign_shells_refuses_an_empty_set_and_stops_when_nothing_new_is_reached():
    with pytest.raises(ValueError, match="N >= 1"):
        M.assign_shells(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="assign_shells"):
        M.assign_shells(np.zeros((2, 3, 1)))
    # O* - Si, then nothing within reach: the Si is shell 1, the far atom unassigned (n_shells + 1)
    np.testing.assert_array_equal(M.assign_shells([[0, 0, 0], [1.6, 0, 0], [9, 0, 0]], n_shells=5), [0, 1, 6])


def test_si_o_bond_range_is_inclusive_and_pairs_at_the_cutoff_are_not_bonds():
    def one_bond(r):
        return _env([O, SI], [[0, 0, 0], [r, 0, 0]])

    for r in M.SI_O_RANGE:  # the ends of the accepted range (distances exact in floating point)
        assert cdist([[0, 0, 0]], [[r, 0, 0]])[0, 0] == r
        assert M.bond_sanity(one_bond(r))["si_o"]
    assert not M.bond_sanity(one_bond(1.44))["si_o"]
    assert not M.bond_sanity(one_bond(1.86))["si_o"]
    # at 2.0 Å (BOND_CUTOFF, exclusive: the environments' own cutoff) the pair is no bond, so it is not
    # checked against the range; farther pairs neither
    assert M.BOND_CUTOFF == DEFAULT_CUTOFF == 2.0
    assert M.bond_sanity(one_bond(2.0))["si_o"]
    assert M.bond_sanity(one_bond(2.5))["si_o"]
    assert not M.bond_sanity(one_bond(1.99))["si_o"]
    # the Si-O check sees pairs in both orders (Si before O in the list)
    assert not M.bond_sanity(_env([O, O, SI], [[0, 0, 0], [5, 0, 0], [5, 1.9, 0]]))["si_o"]
    assert not M.bond_sanity(_env([O, SI, O], [[0, 0, 0], [5, 0, 0], [5, 1.9, 0]]))["si_o"]


def test_o_o_minimum_is_exclusive_and_only_o_o_pairs_count():
    def pair(a, b, r):
        return _env([O, a, b], [[0, 0, 0], [5, 0, 0], [5, r, 0]])

    assert M.bond_sanity(pair(O, O, 2.0))["o_o"]  # exactly 2.0 Å (the documented minimum): allowed
    assert M.bond_sanity(pair(O, O, 2.5))["o_o"]
    assert not M.bond_sanity(pair(O, O, 1.99))["o_o"]
    assert M.bond_sanity(pair(SI, SI, 1.0))["o_o"]  # a short Si-Si pair is not an O-O pair
    out = M.bond_sanity(pair(O, O, 1.2))
    assert out == {"sane": False, "si_o": True, "o_o": False}
    assert M.bond_sanity(_env([O], [[0, 0, 0]]))["sane"]  # no pairs at all


def test_bond_sanity_and_validity_of_non_finite_environments():
    # (an Environment cannot be empty, so the n_atoms == 0 guards are unreachable)
    nan = _env([O, SI], [[0, 0, 0], [np.nan, 0, 0]])
    assert M.bond_sanity(nan) == {"sane": False, "si_o": False, "o_o": False}
    t = _env([O, SI], [[0, 0, 0], [1.6, 0, 0]], [0, 1])
    assert M.validity(t, nan) == {"valid": False, "shell1_count": False, "si_o": False, "o_o": False}


def test_validity_exempts_short_o_o_pairs_only_when_the_target_has_one():
    # target: O*, Si at 1.6 Å, and a peroxide-like O-O pair 1.5 Å apart far out
    t = _env([O, SI, O, O], [[0, 0, 0], [1.6, 0, 0], [6, 0, 0], [6, 1.5, 0]], [0, 1, 4, 4])
    plain = _env([O, SI, O, O], [[0, 0, 0], [1.6, 0, 0], [6, 0, 0], [6, 3.0, 0]], [0, 1, 4, 4])
    g_short = _env([O, SI, O, O], [[0, 0, 0], [0, 1.6, 0], [0, 6, 0], [1.5, 6, 0]])
    v = M.validity(t, g_short)
    assert v["o_o"] and v["valid"]
    v = M.validity(plain, g_short)
    assert not v["o_o"] and not v["valid"]
    assert v["shell1_count"] and v["si_o"]
    # one first-shell atom too many: counts differ, bonds fine
    g_two = _env([O, SI, SI, O], [[0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0], [6, 3.0, 0]])
    v = M.validity(plain, g_two)
    assert v == {"shell1_count": False, "si_o": True, "o_o": True, "valid": False}
    # the generated shells are found about its own excited O, wherever that sits
    shifted = _env(plain.species, plain.coords + [10.0, -3.0, 2.0])
    assert M.validity(plain, shifted)["valid"]


def test_first_shell_errors_size_limits_and_angle_only_for_two_neighbours():
    # n1 = 3 (no angle), n1 = 7 (> LOCAL_MAX_ATOMS: no local RMSD), the radial RMSD in both
    dirs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1], [1, 1, 1]], float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    for n1 in (1, 3, 6, 7):
        c = np.vstack([[0, 0, 0], 1.6 * dirs[:n1]])
        t = _env([O] + [SI] * n1, c, [0] + [1] * n1)
        g = _env([O] + [SI] * n1, np.vstack([[0, 0, 0], 1.7 * dirs[:n1]]))
        e = M.first_shell_errors(t, g)
        assert e["rmsd_shell1_radial"] == pytest.approx(0.1)
        assert math.isnan(e["angle_shell1_error_deg"])
        if n1 <= 6:  # the documented limit: 6! = 720 pairings
            assert e["rmsd_shell1_local"] == pytest.approx(0.1)  # a uniform stretch: nothing to rotate away
        else:
            assert math.isnan(e["rmsd_shell1_local"])
    # no first shell at all: NaN (nothing to compare), also for an empty or non-finite generated set
    t0 = _env([O, SI], [[0, 0, 0], [5, 0, 0]], [0, 4])
    assert all(math.isnan(v) for v in M.first_shell_errors(t0, t0).values())
    t1 = _env([O, SI], [[0, 0, 0], [1.6, 0, 0]], [0, 1])
    nan = _env([O, SI], [[0, 0, 0], [np.nan, 0, 0]])
    assert all(math.isnan(v) for v in M.first_shell_errors(t1, nan).values())


def test_first_shell_errors_are_taken_about_each_excited_o():
    # the same bridge, target and generated each moved away from the origin: no error at all
    c = np.array([[0, 0, 0], [1.6, 0, 0], [-1.3, 0.93, 0]])
    t = _env([O, SI, SI], c + [3.0, -2.0, 1.0], [0, 1, 1])
    g = _env([O, SI, SI], c + [-5.0, 4.0, 2.0])
    e = M.first_shell_errors(t, g)
    assert e["rmsd_shell1_radial"] == pytest.approx(0.0, abs=1e-12)
    assert e["rmsd_shell1_local"] == pytest.approx(0.0, abs=1e-7)
    assert e["angle_shell1_error_deg"] == pytest.approx(0.0, abs=1e-6)


def test_angles_deg_by_hand():
    ends = np.array([[1.0, 0, 0], [0, 2.0, 0], [-3.0, 0, 0]])
    np.testing.assert_allclose(M.angles_deg(np.zeros(3), ends), [90.0, 180.0, 90.0])
    np.testing.assert_allclose(M.angles_deg(np.array([1.0, 0, 0]), np.array([[2.0, 0, 0], [1.0, 1.0, 0]])), [90.0])


def test_summarize_adds_validity_and_first_shell_means_only_when_every_row_has_them():
    base = dict.fromkeys(M._MEAN_KEYS, 1.0)
    rows = [dict(base, species_match=True, valid=True, rmsd_shell1_radial=0.1), dict(base, species_match=False)]
    s = M.summarize(rows)
    assert "validity" not in s and "rmsd_shell1_radial" not in s
    rows[1].update(valid=False, rmsd_shell1_radial=math.nan)
    s = M.summarize(iter(rows))  # any iterable
    assert s["validity"] == 0.5
    assert s["rmsd_shell1_radial"] == pytest.approx(0.1)  # the NaN row skipped
    assert s["n"] == 2 and s["species_accuracy"] == 0.5
    assert math.isnan(M.summarize([dict(base, species_match=True, rmsd_all=math.nan)])["rmsd_all"])


def test_evaluate_pair_takes_the_target_about_its_own_excited_o():
    # a target stored away from the origin scores exactly as the same target at the origin
    c = np.array([[0, 0, 0], [1.6, 0, 0], [-1.3, 0.93, 0], [2.2, 1.4, 0.3]])
    t0 = _env([O, SI, SI, O], c, [0, 1, 1, 2])
    t = _env([O, SI, SI, O], c + [4.0, -1.0, 2.5], [0, 1, 1, 2])
    g = _env([O, SI, SI, O], c * 1.05)
    r0, r = M.evaluate_pair(t0, g), M.evaluate_pair(t, g)
    assert r0["rmsd_shell1"] > 0.01
    for k in ("rmsd_all", "rmsd_neighbours", "rmsd_shell1", "rmsd_shell2"):
        assert r[k] == pytest.approx(r0[k], abs=1e-9)


def test_angles_of_collinear_vectors_are_exactly_0_and_180_degrees():
    # unit vectors of parallel or opposite directions: their dot product rounds past +-1 in ~12 % of cases
    rng = np.random.default_rng(3)
    for _ in range(60):
        v = rng.normal(size=3)
        s = rng.uniform(0.5, 3.0)
        assert M.angles_deg(np.zeros(3), np.array([v, s * v]))[0] == pytest.approx(0.0, abs=1e-5)
        assert M.angles_deg(np.zeros(3), np.array([v, -s * v]))[0] == pytest.approx(180.0, abs=1e-5)


def test_first_shell_local_rmsd_counts_a_mirror_image_equal():
    # three neighbours at different distances (a chiral set with O*); the generated set is its mirror image
    c = np.array([[0, 0, 0], [1.6, 0, 0], [0.2, 1.7, 0], [0.3, 0.4, 1.8]])
    t = _env([O, SI, SI, SI], c, [0, 1, 1, 1])
    g = _env([O, SI, SI, SI], c * [1.0, 1.0, -1.0])
    assert M.first_shell_errors(t, g)["rmsd_shell1_local"] == pytest.approx(0.0, abs=1e-7)


def test_validity_of_a_lone_excited_o_and_an_o_o_pair_at_exactly_the_minimum_in_the_target():
    lone = _env([O], [[0, 0, 0]], [0])
    assert M.validity(lone, _env([O], [[1.0, 2.0, 3.0]]))["valid"]  # nothing within reach in either
    # a target O-O pair at exactly 2.0 Å is not short, so a generated 1.5 Å pair is not excused
    t = _env([O, SI, O, O], [[0, 0, 0], [1.6, 0, 0], [6, 0, 0], [6, 2.0, 0]], [0, 1, 4, 4])
    g = _env([O, SI, O, O], [[0, 0, 0], [0, 1.6, 0], [0, 6, 0], [1.5, 6, 0]])
    assert not M.validity(t, g)["o_o"]


def test_evaluate_pair_keys_are_the_documented_ones_and_a_moved_generated_set_changes_nothing():
    c = np.array([[0, 0, 0], [1.6, 0, 0], [-1.3, 0.93, 0], [2.2, 1.4, 0.3]])
    t = _env([O, SI, SI, O], c, [0, 1, 1, 2])
    g = _env([O, SI, SI, O], c * 1.05)
    r = M.evaluate_pair(t, g)
    keys = {"rmsd_all", "rmsd_neighbours", "species_match", "valid", "method"}
    keys |= {f"rmsd_shell{k}" for k in (1, 2, 3)}
    keys |= {
        f"{p}_shell{k}{s}" for k in (1, 2, 3) for p, s in (("cn_target", ""), ("cn_gen", ""), ("cn_error", "_pct"))
    }
    keys |= {"rmsd_shell1_radial", "rmsd_shell1_local", "angle_shell1_error_deg"}
    keys |= {"o_frac_target", "o_frac_gen", "n_target", "n_generated", "n_matched"}
    assert set(r) == keys
    assert (r["cn_gen_shell1"], r["cn_gen_shell2"], r["cn_gen_shell3"]) == (2, 1, 0)
    moved = M.evaluate_pair(t, _env(g.species, g.coords + [7.0, -3.0, 1.0]))
    for k in keys - {"method"}:
        assert moved[k] == pytest.approx(r[k], abs=1e-9, nan_ok=True), k


def _shells_2_3_1():
    """O* with two Si (shell 1), three O on them (shell 2) and one Si beyond (shell 3): CN (2, 3, 1)."""
    c = [[0, 0, 0], [1.6, 0, 0], [-1.6, 0.2, 0], [2.2, 1.4, 0], [-2.2, 1.5, 0], [2.3, -1.5, 0.2], [3.0, 2.9, 0.5]]
    return _env([O, SI, SI, O, O, O, SI], c, [0, 1, 1, 2, 2, 2, 3])


def test_evaluate_pair_reports_each_shells_own_coordination_numbers():
    t = _shells_2_3_1()
    assert M.assign_shells(t.coords).tolist() == t.shell.tolist()  # the labels follow the 2.0 Å rule
    g = _env(t.species[:6], t.coords[:6])  # the shell-3 Si left out: CN (2, 3, 0)
    r = M.evaluate_pair(t, g)
    assert [r[f"cn_target_shell{k}"] for k in (1, 2, 3)] == [2, 3, 1]
    assert [r[f"cn_gen_shell{k}"] for k in (1, 2, 3)] == [2, 3, 0]
    assert [r[f"cn_error_shell{k}_pct"] for k in (1, 2, 3)] == [0.0, 0.0, 100.0]


def test_evaluate_pair_scores_a_lone_excited_o_as_an_empty_environment():
    # a generated set of the excited O alone: nothing in any shell, no first-shell geometry; the one matched
    # pair (the excited O with itself) is at distance 0
    t = _shells_2_3_1()
    r = M.evaluate_pair(t, _env([O], [[0.3, -0.2, 0.1]]))
    assert [r[f"cn_gen_shell{k}"] for k in (1, 2, 3)] == [0, 0, 0]
    assert [r[f"cn_error_shell{k}_pct"] for k in (1, 2, 3)] == [100.0, 100.0, 100.0]
    assert r["n_matched"] == 1 and r["rmsd_all"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(r["rmsd_shell1_radial"]) and math.isnan(r["rmsd_shell1_local"])
    assert math.isnan(r["angle_shell1_error_deg"]) and not r["valid"]
    f = M.first_shell_errors(t, _env([O], [[1.0, 2.0, 3.0]]))
    assert all(math.isnan(v) for v in f.values())
