"""Spectrum grid, spline interpolation, normalisation and bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest

from s2s.spectrum import (
    GRID,
    N_GRID,
    SpectrumError,
    normalize,
    onset_shift,
    spectrum_on_grid,
    to_grid,
)

SRC = "test-file.csv:site7"


def smooth(e: np.ndarray) -> np.ndarray:
    """A smooth, positive O K-edge-like test function (eV)."""
    return (
        1.0 * np.exp(-0.5 * ((e - 2.0) / 0.8) ** 2)
        + 2.5 * np.exp(-0.5 * ((e - 7.0) / 2.0) ** 2)
        + 0.8 * np.exp(-0.5 * ((e - 14.0) / 3.0) ** 2)
    )


def test_grid_matches_paper():
    assert GRID.shape == (N_GRID,) == (200,)
    assert GRID[0] == -1.0 and GRID[-1] == pytest.approx(18.9)
    assert np.allclose(np.diff(GRID), 0.1)
    assert GRID[10] == 0.0
    with pytest.raises(ValueError):
        GRID[0] = 5.0  # read-only


def test_round_trip_dense_nonuniform_samples():
    rng = np.random.default_rng(1)
    e = np.sort(rng.uniform(-3.0, 25.0, 600))
    y = to_grid(e, smooth(e), source=SRC)
    ref = smooth(GRID)
    assert np.max(np.abs(y - ref)) < 1e-4 * ref.max()


def test_zero_outside_data_range_and_partial_coverage():
    e = np.linspace(0.0, 15.0, 301)
    y = to_grid(e, smooth(e), source=SRC)
    inside = (GRID >= 0.0) & (GRID <= 15.0)
    assert np.all(y[~inside] == 0.0)
    assert np.allclose(y[inside], smooth(GRID[inside]), atol=1e-5)


def test_spline_overshoot_is_clipped():
    e = np.linspace(-2.0, 20.0, 45)  # coarse, with a sharp step: the spline rings
    y = (e > 5.0).astype(float)
    g = to_grid(e, y, source=SRC)
    assert g.min() >= 0.0 and g.max() > 1.0  # overshoot above, clipped below


def test_unit_area_and_scale_invariance():
    e = np.linspace(-2.0, 22.0, 500)
    y = to_grid(e, smooth(e), source=SRC)
    n = normalize(y)
    assert np.trapezoid(n, GRID) == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(normalize(7.5 * y), n)
    batch = normalize(np.stack([y, 2 * y + 0.1]))
    assert np.allclose(np.trapezoid(batch, GRID, axis=-1), 1.0)
    assert np.allclose(spectrum_on_grid(e + 530.0, smooth(e), shift_eV=530.0), n)


def test_onset_shift_of_a_gaussian_edge():
    e = np.linspace(520.0, 560.0, 801)
    y = np.exp(-0.5 * ((e - 540.0) / 1.0) ** 2)
    half_width_10pc = np.sqrt(2 * np.log(10.0))  # in units of sigma
    assert onset_shift(e, y, smooth_eV=0.0) == pytest.approx(540.0 - half_width_10pc, abs=0.01)
    assert onset_shift(e, y, smooth_eV=0.3) == pytest.approx(540.0 - np.sqrt(1.09) * half_width_10pc, abs=0.01)
    # absolute energies are rejected with a hint; shifting by the onset makes them usable
    with pytest.raises(SpectrumError, match="onset_shift"):
        to_grid(e, y, source=SRC)
    g = to_grid(e - onset_shift(e, y), y, source=SRC)
    assert GRID[np.argmax(g)] == pytest.approx(np.sqrt(1.09) * half_width_10pc, abs=0.06)


# ----------------------------------------------------------------------------- errors
E = np.linspace(-2.0, 20.0, 50)
Y = smooth(E)


def _with(arr, idx, val):
    out = np.array(arr, dtype=float)
    out[idx] = val
    return out


@pytest.mark.parametrize(
    "energy, intensity, pattern",
    [
        (E, _with(Y, 5, np.nan), "intensity contains NaN"),
        (E, _with(Y, 5, np.inf), "intensity contains inf"),
        (_with(E, 3, np.nan), Y, "energy contains NaN"),
        (E, _with(Y, 10, -0.5 * Y.max()), "negative intensity"),
        (E, np.zeros_like(Y), "all intensities are zero"),
        (E[::-1], Y[::-1], "descending"),
        (_with(E, 10, E[12]), Y, "strictly increasing.*decreasing at index 11"),
        (_with(E, 10, E[9]), Y, "repeated"),
        (E[:3], Y[:3], "too short: 3 points"),
        (np.linspace(5.0, 6.0, 20), smooth(np.linspace(5.0, 6.0, 20)), "cover only 1.00 eV"),
        (np.linspace(17.5, 30.0, 40), smooth(np.linspace(17.5, 30.0, 40)), "cover only 1.40 eV"),
        (np.linspace(0.525, 0.56, 30), np.ones(30), "look like keV"),
        (np.linspace(525.0, 560.0, 30), np.ones(30), "absolute energy losses.*onset_shift"),
        (np.linspace(525e3, 560e3, 30), np.ones(30), "look like meV"),
        (np.linspace(-60.0, -20.0, 30), np.ones(30), "do not overlap the grid"),
        (np.linspace(25.0, 60.0, 30), np.ones(30), "do not overlap the grid"),
        (E, Y[:-1], "mismatched lengths: 50 energies but 49"),
        (np.stack([E, E]), np.stack([Y, Y]), "must be 1-D"),
    ],
    ids=[
        "nan-intensity",
        "inf-intensity",
        "nan-energy",
        "negative",
        "all-zero",
        "descending",
        "non-monotonic",
        "duplicate-energy",
        "too-few-points",
        "too-narrow",
        "too-little-overlap",
        "keV",
        "absolute-eV",
        "meV",
        "below-grid",
        "above-grid",
        "length-mismatch",
        "not-1d",
    ],
)
def test_bad_input_errors_name_source_and_problem(energy, intensity, pattern):
    with pytest.raises(SpectrumError, match=pattern) as info:
        to_grid(energy, intensity, source=SRC)
    assert SRC in str(info.value)
    assert isinstance(info.value, ValueError)


def test_small_negative_noise_is_tolerated_and_clipped():
    y = _with(Y, 0, -0.005 * Y.max())
    assert to_grid(E, y, source=SRC).min() >= 0.0


def test_intensity_only_outside_grid_range():
    e = np.linspace(-5.0, 30.0, 200)
    y = np.exp(-0.5 * ((e - 24.0) / 1.0) ** 2)  # peak far above the grid: onset not shifted
    with pytest.raises(SpectrumError, match=f"{SRC}.*no intensity inside the grid"):
        to_grid(e, y, source=SRC)


def test_normalize_errors():
    with pytest.raises(SpectrumError, match=f"{SRC}.*expected 200 grid values"):
        normalize(np.ones(150), source=SRC)
    with pytest.raises(SpectrumError, match=f"{SRC}.*zero"):
        normalize(np.zeros(200), source=SRC)
    with pytest.raises(SpectrumError, match=f"{SRC}.*NaN"):
        normalize(_with(np.ones(200), 3, np.nan), source=SRC)
