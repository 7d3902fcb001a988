"""Edge cases of s2s.spectrum's onset_shift, normalize and spectrum_on_grid that the mutation run
(docs/testing.md section 4) showed untested; expected values are closed forms (a ramp, a Gaussian-blurred
step) or the documented rules."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf, erfinv

from s2s.spectrum import GRID, MIN_POINTS, N_GRID, SpectrumError, normalize, onset_shift, spectrum_on_grid


def test_onset_of_a_ramp_is_interpolated_linearly():
    # y = E on 0..10 eV without smoothing: max 10, 10 % is reached at E = 1 exactly, between fine points
    e = np.linspace(0.0, 10.0, 11)
    assert onset_shift(e, e, smooth_eV=0.0) == pytest.approx(1.0, abs=1e-9)
    assert onset_shift(e, e, fraction=0.25, smooth_eV=0.0) == pytest.approx(2.5, abs=1e-9)
    assert onset_shift(e + 0.003, e, fraction=0.25, smooth_eV=0.0) == pytest.approx(2.503, abs=1e-9)


def test_onset_of_a_blurred_step_is_where_the_normal_cdf_reaches_the_fraction():
    # a step blurred to sigma 0.2 eV, smoothed by 0.3 eV more: sigma sqrt(0.13); 10 % at 5 + sigma * z(0.1)
    e = np.arange(0.0, 15.0, 0.01)
    y = 0.5 * (1 + erf((e - 5.0) / (0.2 * np.sqrt(2))))
    z = np.sqrt(2) * erfinv(2 * 0.1 - 1)  # -1.2816
    assert onset_shift(e, y) == pytest.approx(5.0 + np.sqrt(0.2**2 + 0.3**2) * z, abs=0.005)
    assert onset_shift(e, y, smooth_eV=0.0) == pytest.approx(5.0 + 0.2 * z, abs=0.005)
    assert onset_shift(e, y, smooth_eV=0.6) == pytest.approx(5.0 + np.sqrt(0.2**2 + 0.6**2) * z, abs=0.005)


def test_onset_at_the_first_energy_and_refusals():
    e = np.linspace(2.0, 12.0, 50)
    assert onset_shift(e, np.ones_like(e)) == 2.0  # at the level from the start: the first energy
    assert onset_shift(np.linspace(0, 3, MIN_POINTS), np.arange(MIN_POINTS, dtype=float), smooth_eV=0.0) == (
        pytest.approx(0.3)
    )
    with pytest.raises(SpectrumError, match="at least"):
        onset_shift(np.linspace(0, 3, MIN_POINTS - 1), np.ones(MIN_POINTS - 1))
    with pytest.raises(SpectrumError, match="finite"):
        onset_shift(e, np.where(e > 5, np.nan, 1.0))
    with pytest.raises(SpectrumError, match="strictly increasing"):
        onset_shift(np.r_[e[:5], e[4], e[6:]], np.ones_like(e))
    with pytest.raises(SpectrumError, match="1-D"):
        onset_shift(e, np.ones(len(e) + 1))
    with pytest.raises(SpectrumError, match="zero"):
        onset_shift(e, np.zeros_like(e))
    with pytest.raises(SpectrumError, match="zero"):
        onset_shift(e, -np.ones_like(e))
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            onset_shift(e, e, fraction=bad)


def test_normalize_refusals_and_batches():
    y = np.exp(-0.5 * ((GRID - 5.0) / 1.0) ** 2)
    two = normalize(np.stack([y, 3 * y]))
    np.testing.assert_allclose(two[0], two[1])
    np.testing.assert_allclose(np.sum(0.5 * (two[:, 1:] + two[:, :-1]) * np.diff(GRID), axis=1), [1.0, 1.0])
    with pytest.raises(SpectrumError, match="zero .or negative. area"):
        normalize(np.zeros(N_GRID))
    with pytest.raises(SpectrumError, match="zero .or negative. area"):
        normalize(-y)
    with pytest.raises(SpectrumError, match="NaN"):
        normalize(np.where(GRID > 3, np.inf, y))
    with pytest.raises(SpectrumError, match="200 grid values"):
        normalize(y[:-1])


def test_spectrum_on_grid_subtracts_the_shift():
    e = np.arange(-2.0, 25.0, 0.05)
    y = np.exp(-0.5 * ((e - 4.0) / 1.5) ** 2)
    plain = spectrum_on_grid(e, y)
    assert GRID[np.argmax(plain)] == pytest.approx(4.0, abs=0.051)
    np.testing.assert_allclose(spectrum_on_grid(e + 531.0, y, shift_eV=531.0), plain, atol=1e-9)
    moved = spectrum_on_grid(e, y, shift_eV=2.0)  # the peak moves down by 2 eV
    assert GRID[np.argmax(moved)] == pytest.approx(2.0, abs=0.051)


def test_normalize_accepts_any_positive_area_small_or_large():
    # a spectrum of area 0.02 (well below 1) and one of area 500: both come out with unit area, same shape
    y = np.exp(-0.5 * ((GRID - 5.0) / 1.0) ** 2)
    area = np.sqrt(2 * np.pi)  # of the unit Gaussian, the grid covers it to well under 1e-6
    for scale in (0.02 / area, 500.0 / area):
        n = normalize(scale * y)
        assert np.sum(0.5 * (n[1:] + n[:-1]) * np.diff(GRID)) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(n, y / area, rtol=1e-5)


def test_onset_is_where_the_level_is_reached_not_first_exceeded():
    # rises to exactly 10 % of its maximum at 1 eV, stays there (a shoulder) until 4 eV, then climbs to the
    # maximum: the onset is where the 10 % level is reached (1 eV), not where the spectrum first exceeds it
    e = np.arange(0.0, 9.0)
    y = np.array([0.0, 0.1, 0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 0.0])
    assert onset_shift(e, y, fraction=0.1, smooth_eV=0.0) == pytest.approx(1.0, abs=1e-9)
