"""Tests for s2s.studies.identifiability: spectral twins and the retrieval oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from s2s.environment import SI, Environment, O
from s2s.studies.identifiability import pair_rms, retrieval_oracle, spectral_twins, twin_discrimination, twin_table


def _bridge(angle_deg: float, outer_turn_deg: float = 0.0) -> Environment:
    """O* - two Si at 1.6 Å making angle_deg, and one O 1.6 Å beyond the first Si, 40° off the O*-Si
    axis and turned about it by outer_turn_deg (always > 2.8 Å from O*: shell 2)."""
    h = math.radians(angle_deg) / 2
    s1 = np.array([1.6 * math.sin(h), 1.6 * math.cos(h), 0.0])
    s2 = np.array([-1.6 * math.sin(h), 1.6 * math.cos(h), 0.0])
    axis = s1 / 1.6
    e1 = np.cross(axis, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    a, u = math.radians(40.0), math.radians(outer_turn_deg)
    o = s1 + 1.6 * (math.cos(a) * axis + math.sin(a) * (math.cos(u) * e1 + math.sin(u) * e2))
    return Environment(species=[O, SI, SI, O], coords=[[0, 0, 0], s1, s2, o], shell=[0, 1, 1, 2])


def test_pair_rms_matches_brute_force_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    s = rng.random((7, 20))
    brute = np.sqrt(((s[:, None, :] - s[None, :, :]) ** 2).mean(-1))
    np.testing.assert_allclose(pair_rms(s, chunk=3), brute, atol=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        pair_rms(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        pair_rms(np.zeros(5))


def test_spectral_twins_bins_pairs_of_other_groups_only():
    s = np.array([[0.0, 0.0], [0.0, 0.0], [0.1, 0.1], [0.0, 0.001]])
    groups = ["a", "a", "b", "c"]  # 0 and 1 share a structure: never paired
    bins = spectral_twins(s, groups, edges=(0.0, 0.01, 1.0), n_per_bin=None)
    near = {tuple(p) for p in bins[0]["pairs"]}
    far = {tuple(p) for p in bins[1]["pairs"]}
    assert near == {(0, 3), (1, 3)}
    assert far == {(0, 2), (1, 2), (2, 3)}
    assert bins[0]["n_pairs"] == 2 and bins[1]["n_pairs"] == 3
    capped = spectral_twins(s, groups, edges=(0.0, 1.0), n_per_bin=2, seed=1)
    assert capped[0]["n_pairs"] == 5 and len(capped[0]["pairs"]) == 2
    with pytest.raises(ValueError, match="increasing"):
        spectral_twins(s, groups, edges=(0.1, 0.0))
    with pytest.raises(ValueError, match="groups"):
        spectral_twins(s, groups[:3])


def test_twin_table_sees_the_outer_shell_the_spectrum_misses():
    """Equal spectra, equal first shells, the outer O elsewhere: a twin whose 1st shell is exact on itself."""
    envs = [_bridge(144.0), _bridge(144.0, outer_turn_deg=120.0), _bridge(150.0)]
    s = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    rows = twin_table(s, envs, ["a", "b", "c"], edges=(0.0, 0.1, 2.0), n_per_bin=None)
    near, far = rows
    assert near["n_pairs"] == near["n_scored"] == 1 and far["n_pairs"] == 2
    assert near["rmsd_shell1_local"] == pytest.approx(0.0, abs=1e-7)
    assert near["rmsd_shell1_radial"] == pytest.approx(0.0, abs=1e-12)
    assert near["rmsd_all"] > 0.3  # the outer O is far off
    assert near["same_atoms"] == 1.0 and near["species_match"] == 1.0
    assert far["angle_shell1_error_deg"] == pytest.approx(6.0)


def test_retrieval_oracle_finds_the_right_environment_among_the_top_k():
    target = _bridge(144.0)
    refs = [_bridge(170.0), _bridge(144.0), _bridge(100.0)]
    ref_s = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])  # the right one is the 2nd nearest
    out = retrieval_oracle(np.array([[1.0, 0.0]]), [target], ["q"], ref_s, refs, ["r1", "r2", "r3"], ks=(2, 1))
    assert out["n"] == 1 and list(out["k"]) == [1, 2]
    assert out["k"][1] > 0.3
    assert out["k"][2] == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="positive"):
        retrieval_oracle(np.array([[1.0, 0.0]]), [target], ["q"], ref_s, refs, ["r1", "r2", "r3"], ks=(0,))


def test_twin_discrimination_counts_the_pairs_a_forward_model_gets_right():
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = np.array([[0.9, 0.1], [0.05, 0.95]])
    # a perfect forward model: every query's own prediction is exact, so it always wins
    perfect = twin_discrimination(q, q, ["a", "b"], r, r, ["c", "d"], edges=(0.0, 0.2, 2.0))
    assert [b["n_pairs"] for b in perfect] == [2, 2]
    assert perfect[0]["accuracy"] == 1.0
    # a forward model that predicts the same spectrum for everything never prefers the truth (ties lose)
    flat = np.full_like(q, 0.5)
    blind = twin_discrimination(q, flat, ["a", "b"], r, np.full_like(r, 0.5), ["c", "d"], edges=(0.0, 0.2, 2.0))
    assert blind[0]["accuracy"] == 0.0
    # pairs of the same group are not counted
    same = twin_discrimination(q, q, ["a", "b"], r, r, ["a", "b"], edges=(0.0, 0.2, 2.0))
    assert [b["n_pairs"] for b in same] == [0, 2] and math.isnan(same[0]["accuracy"])
    with pytest.raises(ValueError, match="shapes"):
        twin_discrimination(q, q[:1], ["a", "b"], r, r, ["c", "d"])
