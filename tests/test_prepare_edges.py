"""Edge cases of the preparation functions of s2s.predict.prepare that the mutation run (docs/testing.md
section 4) showed untested.  Expected values come from the documented rules and closed forms (Gaussian
widths, power laws), not from the functions' own output."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

from s2s.predict.prepare import (
    InputSpectrum,
    PredictInputError,
    broaden,
    check_shape,
    prepare,
    smooth,
    steepest_rise,
    subtract_background,
    training_onset,
)
from s2s.spectrum import GRID, GRID_STEP, N_GRID, normalize, onset_shift

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _sigma(x: np.ndarray, y: np.ndarray) -> float:
    w = y / y.sum()
    m = np.sum(w * x)
    return float(np.sqrt(np.sum(w * (x - m) ** 2)))


def _edge(e: np.ndarray, at: float) -> np.ndarray:
    """A step at ``at`` (logistic, 0.3 eV) with a peak 2 eV above it and a broad one 9 eV above."""
    x = e - at
    step = 1.0 / (1.0 + np.exp(-x / 0.3))
    return step * (0.4 + 1.5 * np.exp(-0.5 * ((x - 2.0) / 1.0) ** 2) + 0.8 * np.exp(-0.5 * ((x - 9.0) / 3.0) ** 2))


def test_broaden_adds_the_asked_fwhm_in_quadrature():
    y = np.zeros(N_GRID)
    y[N_GRID // 2] = 1.0  # one grid point: its width is ~0
    for fwhm in (1.0, 2.0):
        b = broaden(y, fwhm)
        assert _sigma(GRID, b) == pytest.approx(fwhm / FWHM_PER_SIGMA, rel=0.02)
        assert np.sum(0.5 * (b[1:] + b[:-1]) * np.diff(GRID)) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="fwhm_eV"):
        broaden(y, -0.1)
    with pytest.raises(ValueError, match="fwhm_eV"):
        broaden(y, math.nan)


def test_smooth_resamples_the_whole_range_at_the_median_step_and_keeps_its_width():
    e = np.concatenate([np.arange(0.0, 10.0, 0.1), np.arange(10.0, 20.0001, 0.1)])
    y = np.zeros_like(e)
    y[100] = 1.0  # at 10 eV
    es, ys = smooth(e, y, 1.0)
    assert es[0] == pytest.approx(0.0) and es[-1] == pytest.approx(20.0)  # the last point included
    assert np.diff(es) == pytest.approx(0.1)
    # a spike of one step (width ~0.03 eV) smoothed by sigma 1 eV: sigma ~1 eV, centred at 10 eV
    assert _sigma(es, ys) == pytest.approx(1.0, rel=0.02)
    assert es[np.argmax(ys)] == pytest.approx(10.0)
    # a very fine axis is resampled no finer than MIN_RESAMPLE_STEP_EV (1 meV)
    ef = np.linspace(0.0, 1.0, 100_001)
    es, _ = smooth(ef, np.ones_like(ef), 0.01)
    assert np.median(np.diff(es)) == pytest.approx(1e-3)


def test_steepest_rise_of_a_plain_edge_and_its_smoothing_floor():
    e = np.arange(520.0, 560.0, 0.05)
    y = 1.0 / (1.0 + np.exp(-(e - 531.3) / 0.2))
    assert steepest_rise(e, y) == pytest.approx(531.3, abs=0.05)
    # a coarse axis (1 eV): the smoothing is never less than half a step, and the edge is still found
    ec = np.arange(520.0, 560.0, 1.0)
    assert steepest_rise(ec, 1.0 / (1.0 + np.exp(-(ec - 531.5) / 0.2)), sigma_eV=0.01) == pytest.approx(531.5, abs=1.0)


def test_subtract_background_power_law_and_constant():
    e = np.arange(480.0, 560.0, 0.1)
    bg = 3e9 * e**-3.0
    edge = np.where(e >= 531.0, 2.0, 0.0)
    out = subtract_background(e, bg + edge, onset=531.0, source="x")
    # the fit window 506-528 eV holds only background: the power law is exact, so the edge remains
    np.testing.assert_allclose(out, edge, atol=1e-6 * bg.max())
    # relative energies (not all > 0 in the window): the pre-edge mean, clipped at 0
    er = np.arange(-30.0, 20.0, 0.5)
    yr = np.where(er >= 0, 5.0, 1.0) + np.where(er < -10, 0.5, -0.5)  # pre-edge mean over -25..-3: not 1
    w = (er >= -25.0) & (er <= -3.0)
    out = subtract_background(er, yr, onset=0.0, source="x")
    np.testing.assert_allclose(out, np.clip(yr - yr[w].mean(), 0.0, None))
    assert out.min() == 0.0
    # a negative intensity in the window: the constant model, not a log of it
    yn = yr.copy()
    yn[w.nonzero()[0][0]] = -1.0
    e2 = er + 600.0
    out = subtract_background(e2, yn, onset=600.0, source="x")
    np.testing.assert_allclose(out, np.clip(yn - yn[w].mean(), 0.0, None))


def test_subtract_background_needs_five_points_in_its_window():
    e = np.array([505.5, 510.0, 515.0, 520.0, 527.5, 531.0, 540.0, 545.0])  # window 506-528: 4 points
    y = np.ones_like(e)
    with pytest.raises(PredictInputError, match="found 4"):
        subtract_background(e, y, 531.0, "x.txt")
    e5 = np.array([506.0, 510.0, 515.0, 520.0, 528.0, 531.0, 540.0, 545.0])  # both ends included: 5
    assert subtract_background(e5, y, 531.0, "x.txt") == pytest.approx(np.zeros(8), abs=1e-9)


def test_training_onset_is_the_median_and_refuses_wrong_shapes():
    spectra = np.stack([normalize(_edge(GRID.astype(float), at)) for at in (0.0, 1.0, 5.0)])
    onsets = [onset_shift(GRID, s, fraction=0.1) for s in spectra]
    assert training_onset(spectra) == pytest.approx(sorted(onsets)[1])
    assert training_onset(spectra[0]) == pytest.approx(onsets[0])  # one spectrum, 1-D
    for bad in (np.zeros((2, 199)), np.zeros((0, N_GRID)), np.zeros((2, 2, N_GRID))):
        with pytest.raises(ValueError, match="training_onset"):
            training_onset(bad)


def test_prepare_shift_modes():
    e = np.arange(505.0, 575.0, 0.1)
    y = _edge(e, 532.0) * 1e3
    train = -0.5
    auto = prepare(InputSpectrum("a", "a.txt", e, y), train)
    onset = auto.info["onset_eV"]
    assert auto.info["shift_mode"] == "onset" and auto.shift_eV == pytest.approx(onset - train)
    assert prepare(InputSpectrum("a", "a.txt", e, y), train, shift="onset").shift_eV == pytest.approx(onset - train)
    manual = prepare(InputSpectrum("a", "a.txt", e, y), train, shift=531.0, force=True)
    assert manual.info["shift_mode"] == "manual" and manual.shift_eV == 531.0
    with pytest.raises(ValueError, match="shift must be"):
        prepare(InputSpectrum("a", "a.txt", e, y), train, shift="later")
    # relative energies: "auto" leaves them, "onset" moves the onset to the training one
    er = GRID.astype(float)
    yr = _edge(er, 3.0)
    rel = prepare(InputSpectrum("r", "r.txt", er, yr), train)
    assert rel.shift_eV == 0.0 and rel.info["shift_mode"].startswith("none")
    moved = prepare(InputSpectrum("r", "r.txt", er, yr), train, shift="onset")
    assert moved.shift_eV == pytest.approx(rel.info["onset_eV"] - train)
    assert onset_shift(GRID, moved.spectrum, fraction=0.1) == pytest.approx(train, abs=GRID_STEP)


def test_prepare_onset_window_and_near_edge_range_limits():
    # an edge at 512 eV: outside the O K window (515-560 eV) unless forced
    e = np.arange(490.0, 560.0, 0.1)
    with pytest.raises(PredictInputError, match="not an O K-edge"):
        prepare(InputSpectrum("c", "c.txt", e, _edge(e, 512.0)), -0.5)
    p = prepare(InputSpectrum("c", "c.txt", e, _edge(e, 512.0)), -0.5, force=True)
    assert p.info["steepest_rise_eV"] == pytest.approx(512.0, abs=1.0)  # the step times the peak 2 eV above
    # data ending 9 eV above the onset: enough (>= 8 eV); 7 eV: refused
    for end, ok in ((540.0, True), (538.0, False)):
        ee = np.arange(515.0, end, 0.05)
        item = InputSpectrum("d", "d.txt", ee, _edge(ee, 531.0))
        if ok:
            prepare(item, -0.5, force=True)
        else:
            with pytest.raises(PredictInputError, match="above the edge onset"):
                prepare(item, -0.5, force=True)


def test_prepare_refuses_a_spectrum_rising_at_its_first_energy():
    e = np.arange(531.5, 580.0, 0.1)  # starts on the edge: >= 10 % of the maximum at once
    with pytest.raises(PredictInputError, match="no rising edge"):
        prepare(InputSpectrum("e", "e.txt", e, _edge(e, 531.0) + 0.5), -0.5, force=True)


def test_prepare_input_checks():
    e = np.arange(505.0, 575.0, 0.1)
    y = _edge(e, 532.0)
    with pytest.raises(PredictInputError, match="NaN/inf"):
        prepare(InputSpectrum("n", "n.txt", np.where(e > 540, np.inf, e), y), -0.5)
    with pytest.raises(PredictInputError, match="energy axis of shape"):
        prepare(InputSpectrum("n", "n.txt", e[:-1], y), -0.5)
    with pytest.raises(PredictInputError, match="grid's 200 points"):
        prepare(InputSpectrum("n", "n.npy", None, np.ones(199)), -0.5)
    with pytest.raises(PredictInputError, match="zero .or negative"):
        prepare(InputSpectrum("n", "n.txt", e, -y), -0.5)
    bumpy = e.copy()
    bumpy[300] = bumpy[299]
    with pytest.raises(PredictInputError, match="not strictly increasing .data point 301"):
        prepare(InputSpectrum("n", "n.txt", bumpy, y), -0.5)


def test_prepare_smooths_when_asked_even_below_one_ev():
    e = np.arange(505.0, 575.0, 0.1)
    noisy = _edge(e, 532.0) * 1e3 * (1 + 0.05 * np.random.default_rng(0).standard_normal(len(e)))
    raw = prepare(InputSpectrum("s", "s.txt", e, noisy), -0.5, force=True).spectrum
    sm = prepare(InputSpectrum("s", "s.txt", e, noisy), -0.5, smooth_eV=0.5, force=True).spectrum
    # a 0.5 eV Gaussian removes most of the point-to-point noise: the second differences shrink
    assert np.abs(np.diff(sm, 2)).sum() < 0.5 * np.abs(np.diff(raw, 2)).sum()


def test_subtract_background_power_law_only_where_every_window_energy_and_intensity_is_positive():
    er = np.arange(-30.0, 20.0, 0.5)
    w = lambda onset: (er >= onset - 25.0) & (er <= onset - 3.0)  # noqa: E731 - the documented window
    # window 0..22 eV: its lowest energy is exactly 0, not > 0: the constant (pre-edge mean) model
    y = 1.0 + 0.01 * (er + 30.0) + np.where(er >= 24.0, 3.0, 0.0)
    out = subtract_background(er, y, onset=25.0, source="x")
    np.testing.assert_allclose(out, np.clip(y - y[w(25.0)].mean(), 0.0, None))
    # window 0.5..22.5 eV: every energy > 0 (though below 1 eV): the power law, exact on A E^-1.5 data
    bg = 2.0 * np.clip(er, 0.25, None) ** -1.5  # below the window the fit is taken at half its lowest energy
    y = bg + np.where(er >= 24.0, 3.0, 0.0)
    out = subtract_background(er, y, onset=25.5, source="x")
    np.testing.assert_allclose(out, np.where(er >= 24.0, 3.0, 0.0), atol=1e-9)
    # an intensity of exactly 0 in the window: the constant model, not a log of it
    e2 = er + 600.0
    y0 = 1.0 + 0.01 * (er + 30.0)
    y0[np.flatnonzero(w(0.0))[3]] = 0.0
    out = subtract_background(e2, y0, onset=600.0, source="x")
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.clip(y0 - y0[w(0.0)].mean(), 0.0, None))


def test_check_shape_reads_the_contrast_after_smoothing_by_a_third_of_an_ev():
    # a flat line with a one-point spike of the line's height: 2x the mean point by point, but a 0.3 eV
    # Gaussian spreads it to ~1.1x: nearly flat, refused
    y = np.ones(N_GRID)
    y[N_GRID // 2] = 2.0
    assert y.max() / y.mean() > 1.9
    with pytest.raises(PredictInputError, match="nearly flat"):
        check_shape(y, "spike.txt")
    # the same spike 3 eV wide (sigma 1 eV) and as high: a peak, accepted
    g = 1.0 + np.exp(-0.5 * ((GRID - GRID[N_GRID // 2]) / 1.0) ** 2)
    assert check_shape(g, "peak.txt")["contrast"] > 1.3


def test_steepest_rise_smooths_before_taking_the_slope():
    # a one-point glitch (0.6 high, 0.1 eV wide) at 520 eV before a smooth unit edge at 531 eV: point by
    # point the glitch is steeper (3 per eV against 1.3), after the default 0.5 eV smoothing the edge is
    e = np.arange(510.0, 550.0, 0.1)
    y = 0.5 * (1 + erf((e - 531.0) / (0.3 * np.sqrt(2))))
    y[np.argmin(np.abs(e - 520.0))] += 0.6
    assert np.max(np.gradient(y, e)[e < 525]) > 2.0 * np.max(np.gradient(y, e)[e > 525])
    assert steepest_rise(e, y) == pytest.approx(531.0, abs=0.15)


def test_prepare_energy_limits_at_their_exact_values():
    # energies from exactly 100 eV (ABSOLUTE_EV) are absolute losses: the onset is moved by "auto"
    e = np.arange(100.0, 160.0, 0.1)
    p = prepare(InputSpectrum("a", "a.txt", e, _edge(e, 120.0)), -0.5, force=True)
    assert p.info["absolute_energies"] and p.info["shift_mode"] == "onset"
    # energies spanning exactly 0.3..1.5 (keV-like at both ends, inclusive): refused as keV
    with pytest.raises(PredictInputError, match="look like keV"):
        prepare(InputSpectrum("k", "k.txt", np.linspace(0.3, 1.5, 200), np.linspace(0.0, 1.0, 200)), -0.5)
    # up to 2 eV is not keV-like (the keV window ends at 1.5): refused for its short range instead
    with pytest.raises(PredictInputError, match="above the edge onset"):
        prepare(InputSpectrum("k", "k.txt", np.linspace(0.5, 2.0, 200), np.linspace(0.0, 1.0, 200)), -0.5)
    # exactly MIN_POINTS points are enough for the count check
    e5 = np.array([-6.0, -1.0, 2.0, 6.0, 18.0])
    p5 = prepare(InputSpectrum("p", "p.txt", e5, np.array([0.0, 0.05, 1.0, 0.6, 0.8])), -0.5, force=True)
    assert p5.spectrum.shape == (N_GRID,)
    # no positive intensity at all (all zero): refused before any onset search
    with pytest.raises(PredictInputError, match="everywhere: no spectrum"):
        prepare(InputSpectrum("z", "z.txt", e, np.zeros_like(e)), -0.5)


def test_prepare_accepts_an_edge_rising_more_than_one_ev_after_the_first_energy():
    # the refusal is for spectra already at 10 % of their maximum within 1 eV of the first energy; data
    # starting 1.5 eV below the onset are accepted with that onset
    wide = np.arange(520.0, 580.0, 0.1)
    onset = prepare(InputSpectrum("w", "w.txt", wide, _edge(wide, 531.0)), -0.5, force=True).info["onset_eV"]
    e = np.arange(round(onset - 1.5, 1), 580.0, 0.1)
    p = prepare(InputSpectrum("s", "s.txt", e, _edge(e, 531.0)), -0.5, force=True)
    assert 1.3 < p.info["onset_eV"] - e[0] < 1.7
    assert p.info["onset_eV"] == pytest.approx(onset, abs=0.05)


def test_prepare_reads_the_energy_range_from_its_first_and_last_energies():
    # keV-like means the whole axis lies in 0.3..1.5: one energy below 0.3 or above 1.5 makes it eV (and then
    # too short a range above the onset)
    for e in (np.r_[0.2, np.linspace(0.3, 1.4, 199)], np.r_[np.linspace(0.4, 1.5, 199), 1.6]):
        with pytest.raises(PredictInputError, match="above the edge onset"):
            prepare(InputSpectrum("k", "k.txt", e, np.linspace(0.0, 1.0, 200)), -0.5)
    # absolute means a first energy >= 100 eV: from 99.95 eV the axis is relative to the onset, so an edge
    # at 120 eV lies far above the grid
    e = np.r_[99.95, np.arange(100.0, 160.0, 0.1)]
    with pytest.raises(PredictInputError, match="grid"):
        prepare(InputSpectrum("r", "r.txt", e, _edge(e, 120.0)), -0.5, force=True)


def test_prepare_keeps_a_unit_area_grid_spectrum_with_zeros_bit_for_bit():
    # a recorded grid spectrum is zero below its edge; within UNIT_AREA_TOL of unit area it is used as given
    y = normalize(np.where(GRID < 1.0, 0.0, _edge(GRID.astype(float), 2.0))) * (1.0 + 5e-5)
    assert y.min() == 0.0
    p = prepare(InputSpectrum("g", "g.npy", None, y), 0.0, renormalize=False)
    assert np.array_equal(p.spectrum, y)


def test_prepare_accepts_a_steepest_rise_exactly_at_the_o_k_window_ends():
    # on a 0.5 eV axis the steepest rise is a data energy: exactly 560 eV (the window's inclusive top) passes
    # the steepest-rise check; exactly 515 eV passes it too and is refused only for its onset (514.1 eV)
    for at, lo, hi in ((560.0, 540.0, 575.0), (515.0, 490.0, 540.0)):
        e = np.arange(lo, hi, 0.5)
        y = _edge(e, at - 0.6)
        assert steepest_rise(e, y) == at
        if at == 560.0:
            assert prepare(InputSpectrum("w", "w.txt", e, y), -0.5).info["steepest_rise_eV"] == at
        else:
            with pytest.raises(PredictInputError, match="edge onset at 514"):
                prepare(InputSpectrum("w", "w.txt", e, y), -0.5)
