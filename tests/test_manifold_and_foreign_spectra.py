"""Tests of s2s.studies.manifold (spectral-manifold distances, Fig. 6a) and of foreign input spectra
(s2s.predict.foreign, s2s.predict.prepare; Fig. 7)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import random_orthogonal, random_permutation, rotate_permute

from s2s.environment import Environment
from s2s.predict.foreign import ensemble_stats, load_input_spectrum, matching_environments, reference_environment
from s2s.predict.prepare import broaden, training_onset
from s2s.spectrum import GRID, normalize, onset_shift
from s2s.studies.manifold import composition_labels, distance_to_training, nearest_distance, umap_embedding
from s2s.studies.results import round_floats

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "reference"
QUARTZ_JSON = REF / "gpaw" / "alpha_quartz__site3.json"
needs_ref = pytest.mark.skipif(not QUARTZ_JSON.exists(), reason="GPAW reference set not present")


def test_composition_labels_prefers_meta_then_x_then_unknown():
    recs = [
        SimpleNamespace(meta={"composition_x": 0.25}, x=2.0),
        SimpleNamespace(meta={}, x=1.5),
        SimpleNamespace(meta={"composition_x": None}, x=math.nan),
        SimpleNamespace(meta={"composition_x": "bad"}, x=2.0),
    ]
    assert composition_labels(recs) == ["0.25", "1.50", "unknown", "2.00"]


def test_nearest_distance_and_group_exclusion():
    ref = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    q = np.array([[0.0, 0.0], [3.0, 0.0]])
    d, i = nearest_distance(ref, q)
    np.testing.assert_allclose(d, [0.0, 3.0])
    np.testing.assert_array_equal(i, [0, 0])
    # excluding the query's own group skips reference 0
    d, i = nearest_distance(ref, q, reference_groups=["a", "b", "c"], query_groups=["a", "a"])
    np.testing.assert_allclose(d, [5.0, 4.0])
    np.testing.assert_array_equal(i, [1, 1])
    with pytest.raises(ValueError):
        nearest_distance(ref, np.zeros((2, 3)))


def test_distance_to_training_inside_and_outside():
    rng = np.random.default_rng(0)
    # training: 10 structures, 5 points each, all on a small blob around the origin
    train = rng.normal(0.0, 0.1, size=(50, 2))
    groups = np.repeat(np.arange(10), 5)
    near = rng.normal(0.0, 0.05, size=(8, 2))
    far = rng.normal(0.0, 0.05, size=(6, 2)) + [5.0, 0.0]
    labels = ["2.00"] * 8 + ["0.25"] * 6
    rep = distance_to_training(train, groups, np.vstack([near, far]), labels)
    assert list(rep.per_label) == ["0.25", "2.00"]
    assert rep.per_label["2.00"]["n"] == 8 and rep.per_label["0.25"]["n"] == 6
    assert rep.per_label["2.00"]["inside_fraction"] >= 0.75
    assert rep.per_label["0.25"]["inside_fraction"] == 0.0
    assert rep.per_label["0.25"]["mean_distance"] > 4.0
    assert rep.per_label["0.25"]["mean_over_threshold"] > 10 * rep.per_label["2.00"]["mean_over_threshold"]
    assert rep.inside_labels() == ["2.00"]
    # scale multiplies every distance and the threshold, the fractions stay
    rep2 = distance_to_training(train, groups, np.vstack([near, far]), labels, scale=0.5)
    assert rep2.threshold == pytest.approx(0.5 * rep.threshold)
    assert rep2.per_label["2.00"]["inside_fraction"] == rep.per_label["2.00"]["inside_fraction"]
    with pytest.raises(ValueError, match="2 groups"):
        distance_to_training(train, np.zeros(50), near, ["x"] * 8)


def test_umap_embedding_separates_clusters_and_is_reproducible():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 0.05, size=(30, 20))
    b = rng.normal(0.0, 0.05, size=(30, 20)) + 3.0
    x = np.vstack([a, b])
    e1 = umap_embedding(x, random_state=0, n_neighbors=10)
    e2 = umap_embedding(x, random_state=0, n_neighbors=10)
    assert e1.shape == (60, 2) and np.all(np.isfinite(e1))
    np.testing.assert_allclose(e1, e2)  # same machine, same seed
    ca, cb = e1[:30].mean(0), e1[30:].mean(0)
    spread = max(e1[:30].std(0).max(), e1[30:].std(0).max())
    assert np.linalg.norm(ca - cb) > 3 * spread
    with pytest.raises(ValueError):
        umap_embedding(x[:2])


@needs_ref
def test_load_gpaw_reference_spectrum():
    inp = load_input_spectrum(QUARTZ_JSON)
    rec = json.loads(QUARTZ_JSON.read_text())
    np.testing.assert_allclose(inp.spectrum, rec["grid_spectrum"])
    assert np.array_equal(inp.spectrum, np.asarray(rec["grid_spectrum"], dtype=np.float64))  # as recorded, bit for bit
    assert inp.kind == "calculated" and inp.format == "gpaw" and inp.shift_eV == 0.0
    assert inp.description == (
        "GPAW first-principles O K-edge (PBE, half core hole, lcao) of alpha_quartz site 3 "
        "(alpha_quartz__site3.json); calculated, not measured"
    )
    assert np.trapezoid(inp.spectrum, GRID) == pytest.approx(1.0, abs=1e-6)


def _peak(e0: float) -> np.ndarray:
    y = np.exp(-0.5 * ((GRID - e0) / 0.8) ** 2) + 0.5 * np.exp(-0.5 * ((GRID - e0 - 6.0) / 2.0) ** 2)
    return normalize(y)


def test_measured_text_spectrum_is_onset_aligned(tmp_path):
    # a "measured" edge in absolute energy loss (eV), finer grid, with noise and a header
    e_abs = np.arange(525.0, 560.0, 0.05)
    rel = e_abs - 532.0
    y = np.exp(-0.5 * ((rel - 3.0) / 0.8) ** 2) + 0.5 * np.exp(-0.5 * ((rel - 9.0) / 2.0) ** 2)
    y += np.random.default_rng(0).normal(0, 0.002, y.size)
    f = tmp_path / "quartz_eels.csv"
    f.write_text("# energy loss (eV), counts\nE,I\n" + "\n".join(f"{a:.3f},{b:.6f}" for a, b in zip(e_abs, y)))
    target = _peak(3.0)  # the same shape on the grid, onset where a training-like spectrum has it
    on = training_onset(np.stack([target, target]))
    assert on == pytest.approx(onset_shift(GRID, target), abs=1e-9)
    inp = load_input_spectrum(f, onset_at_eV=on)
    assert inp.kind == "measured" and inp.format == "text"
    assert inp.shift_eV == pytest.approx(532.0, abs=0.1)
    assert (
        inp.description.startswith("measured spectrum quartz_eels.csv (text); onset 53")
        and f"moved to {on:.2f} eV" in inp.description
    )
    assert np.corrcoef(inp.spectrum, target)[0, 1] > 0.99
    # readers' convention: onset at 0 eV
    inp0 = load_input_spectrum(f)
    assert onset_shift(GRID, inp0.spectrum) == pytest.approx(0.0, abs=0.1)


def test_training_onset_tracks_a_shift():
    a, b = _peak(3.0), _peak(5.0)
    assert training_onset(np.stack([b, b, b])) - training_onset(np.stack([a])) == pytest.approx(2.0, abs=0.02)
    with pytest.raises(ValueError):
        training_onset(np.zeros((2, 10)))


@needs_ref
def test_reference_environment_alpha_quartz():
    env, head = reference_environment(REF, "alpha_quartz")
    assert head["structure_id"] == "alpha_quartz" and head["site_index"] == 3
    assert env.species[0] == 1 and np.allclose(env.coords[0], 0.0)
    first = env.shell == 1
    assert first.sum() == 2 and np.all(env.species[first] == 0)  # O bridges two Si
    d = np.linalg.norm(env.coords[first], axis=1)
    assert np.all((d > 1.55) & (d < 1.66))
    with pytest.raises(FileNotFoundError):
        reference_environment(REF, "alpha_quartz", site_index=999)


def _env(rng, n=9):
    coords = np.vstack([[0.0, 0.0, 0.0], rng.normal(0, 2.0, size=(n - 1, 3))])
    species = np.array([1] + [0, 1] * ((n - 1) // 2) + [0] * ((n - 1) % 2))
    return Environment(species, coords, np.array([0] + [1] * (n - 1)))


def test_matching_environments_rotation_permutation_invariant():
    rng = np.random.default_rng(2)
    t = _env(rng)
    same = rotate_permute(t, random_orthogonal(3), random_permutation(t.n_atoms, rng))
    shift = np.vstack([[0.0, 0.0, 0.0]] + [[0.3, 0.0, 0.0]] * (t.n_atoms - 1))
    moved = Environment(t.species, t.coords + shift, t.shell)  # neighbours moved by 0.3 Å
    other = _env(rng)
    smaller = Environment(t.species[:5], t.coords[:5], t.shell[:5])
    assert matching_environments(t, [other, same, moved, smaller]) == [1]


def test_ensemble_stats_and_round_floats():
    s = ensemble_stats([0.5, np.nan, 0.2, 0.9, 0.4])
    assert s["n"] == 4 and s["best"] == 0.2 and s["worst"] == 0.9
    assert s["median"] == pytest.approx(0.45)
    assert s["best_index"] == 2 and s["median_index"] == 4  # lower median 0.4
    e = ensemble_stats([np.nan])
    assert e["n"] == 0 and e["best_index"] == -1 and math.isnan(e["median"])
    r = round_floats(
        {"a": np.float64(0.123456), "b": [1.0, math.nan], "c": np.int64(3), 4: "s", "d": 3.98765e-4, "e": 12.3456}
    )
    assert r == {"a": 0.1235, "b": [1.0, None], "c": 3, "4": "s", "d": 3.988e-4, "e": 12.35}
    json.dumps(r)


def test_broaden_keeps_area_and_widens():
    y = normalize(np.exp(-0.5 * ((GRID - 5.0) / 0.2) ** 2))
    b = broaden(y, 1.0)
    assert np.trapezoid(b, GRID) == pytest.approx(1.0, abs=1e-9)
    fwhm = lambda s: np.ptp(GRID[s >= s.max() / 2])  # noqa: E731
    # Gaussians add in quadrature: 0.47 eV (sigma 0.2) (+) 1.0 eV -> ~1.10 eV
    assert fwhm(b) == pytest.approx(np.hypot(2.3548 * 0.2, 1.0), abs=0.11)
    assert GRID[np.argmax(b)] == pytest.approx(5.0, abs=0.05)
    np.testing.assert_allclose(broaden(y, 0.0), y)
    with pytest.raises(ValueError):
        broaden(y[:10], 1.0)
