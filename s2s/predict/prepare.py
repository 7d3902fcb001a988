"""A spectrum file -> the model's input: the one road for foreign spectra (``s2s predict``,
``s2s sample --spectrum``, notebook 07, the transfer study).

1. **Read** (:func:`s2s.predict.inputs.load_inputs`): a spectrum file or array -> one
   :class:`~s2s.predict.inputs.InputSpectrum` per spectrum.
2. **Prepare** (:func:`prepare`): check that it looks like an O K-edge; optional pre-edge
   background subtraction (power law A E^-r fitted 3-25 eV below the onset, absolute
   energies) and Gaussian smoothing; **onset alignment** to the training convention; spline
   onto the 200-point grid (:data:`s2s.spectrum.GRID`, -1..18.9 eV), unit area.  Returns a
   :class:`Prepared` ``(spectrum (200,), info)``.

Onset alignment (the training convention): the simulated training spectra have energy 0 at
the core-hole calculation's lowest unoccupied level; their edge onset, estimated by
:func:`s2s.spectrum.onset_shift` (first energy where the 0.3 eV-smoothed spectrum reaches 10 %
of its maximum), has a median ``E_train`` over the training split (:func:`training_onset`, about
-0.6 eV).  A spectrum in absolute energy loss (first energy >= 100 eV) is shifted by
``onset(spectrum) - E_train`` so that its onset lands where the training onsets lie
(``shift="auto"`` or ``"onset"``); a spectrum already relative to the onset (simulated, dataset,
grid arrays) is used as is (``"auto"``), unless ``"onset"`` forces the same alignment; a number
is subtracted as given.  Energies in eV throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import gaussian_filter1d

from s2s.io.raw import MIN_POINTS, SpectrumFileError, check_energy_range
from s2s.predict.inputs import InputSpectrum, PredictInputError
from s2s.spectrum import GRID, GRID_STEP, N_GRID, SpectrumError, normalize, onset_shift, spectrum_on_grid

#: Absolute energies: an O K-edge onset must lie in this window (eV); O K is at ~532 eV.
O_K_WINDOW_EV = (515.0, 560.0)
#: Energies at or above this (eV) are absolute energy losses, below relative to the onset.
ABSOLUTE_EV = 100.0
#: Data must reach this far above the onset (eV) to cover the near-edge structure.
MIN_ABOVE_ONSET_EV = 8.0
#: Shape checks on the grid spectrum (skipped with ``force``): peak-to-mean ratio of the
#: 0.3 eV-smoothed spectrum (training spectra >= 1.42, a flat line 1.0) and roughness
#: mean|y - smooth(y)| / mean(y) (training <= 0.03, uniform noise ~0.43).
MIN_CONTRAST = 1.3
MAX_ROUGHNESS = 0.25
#: The onset estimate's level: this fraction of the maximum (:func:`s2s.spectrum.onset_shift`).
ONSET_FRACTION = 0.1
#: Finest uniform resampling (eV) of :func:`smooth` and :func:`steepest_rise` (bounds their arrays).
MIN_RESAMPLE_STEP_EV = 1e-3
#: ``renormalize=False``: a grid spectrum within this of unit area is used exactly as given.
UNIT_AREA_TOL = 1e-4


def training_onset(train_spectra: ArrayLike) -> float:
    """Median edge onset (eV on :data:`s2s.spectrum.GRID`, :func:`s2s.spectrum.onset_shift`) of
    grid spectra (M, 200): the training convention the inputs are aligned to."""
    s = np.atleast_2d(np.asarray(train_spectra, dtype=np.float64))
    if s.shape[-1] != N_GRID or s.shape[0] == 0 or s.ndim != 2:
        raise ValueError(f"training_onset: expected (M, {N_GRID}) spectra, got {s.shape}")
    return float(np.median([onset_shift(GRID, y, fraction=ONSET_FRACTION, source="training") for y in s]))


def subtract_background(
    energy: np.ndarray, intensity: np.ndarray, onset: float, source: str, window: tuple[float, float] = (25.0, 3.0)
) -> np.ndarray:
    """Subtract a pre-edge background fitted ``window`` = (25, 3) eV below ``onset`` (eV).

    Absolute energies (> 0 eV everywhere in the window): power law A E^-r (fit of log I vs
    log E), the standard EELS background model; otherwise a constant (the pre-edge mean).
    Needs >= 5 pre-edge points; negative results are clipped to 0.
    """
    lo, hi = onset - window[0], onset - window[1]
    sel = (energy >= lo) & (energy <= hi)
    if sel.sum() < 5:
        raise PredictInputError(
            source,
            f"background subtraction needs pre-edge data: at least 5 points between "
            f"{lo:.1f} and {hi:.1f} eV (onset {onset:.1f} eV), found {int(sel.sum())}; "
            "omit --background",
        )
    e, y = energy[sel], intensity[sel]
    if e.min() > 0 and np.all(y > 0):
        slope, icpt = np.polyfit(np.log(e), np.log(y), 1)
        bg = np.exp(icpt) * energy.clip(min=e.min() * 0.5) ** slope
    else:
        bg = np.full_like(intensity, y.mean())
    return np.clip(intensity - bg, 0.0, None)


def smooth(energy: np.ndarray, intensity: np.ndarray, sigma_eV: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian smoothing (standard deviation ``sigma_eV``) on a uniform resampling of the data
    at its median spacing; returns the resampled (energy, intensity)."""
    step = max(float(np.median(np.diff(energy))), MIN_RESAMPLE_STEP_EV)
    e = np.arange(energy[0], energy[-1] + 0.5 * step, step)
    y = np.interp(e, energy, intensity)
    return e, gaussian_filter1d(y, sigma_eV / step, mode="nearest")


def steepest_rise(energy: np.ndarray, intensity: np.ndarray, sigma_eV: float = 0.5) -> float:
    """Energy (eV) of the largest slope of the spectrum smoothed by ``sigma_eV`` (a robust edge
    position even on a falling background)."""
    step = max(float(np.median(np.diff(energy))), MIN_RESAMPLE_STEP_EV)
    e = np.arange(energy[0], energy[-1] + 0.5 * step, step)
    y = gaussian_filter1d(np.interp(e, energy, intensity), max(sigma_eV / step, 0.5), mode="nearest")
    return float(e[int(np.argmax(np.gradient(y, e)))])


def broaden(spectrum: ArrayLike, fwhm_eV: float) -> np.ndarray:
    """Extra Gaussian broadening (FWHM in eV) of a (200,) spectrum on :data:`s2s.spectrum.GRID`,
    renormalised to unit area (e.g. to bring a sharp calculated or noisy measured spectrum to the
    training spectra's resolution).  ``fwhm_eV`` 0 returns a normalised copy."""
    y = np.asarray(spectrum, dtype=np.float64)
    if y.shape != (N_GRID,):
        raise ValueError(f"broaden: expected a ({N_GRID},) spectrum on the grid, got {y.shape}")
    if not fwhm_eV >= 0:
        raise ValueError(f"broaden: fwhm_eV must be >= 0, got {fwhm_eV}")
    if fwhm_eV > 0:
        y = gaussian_filter1d(y, fwhm_eV / (2.0 * np.sqrt(2.0 * np.log(2.0))) / GRID_STEP, mode="nearest")
    return normalize(y, source="broaden")


@dataclass
class Prepared:
    """A prepared input.

    spectrum : (200,) on :data:`s2s.spectrum.GRID`, unit area: the model's input.
    info : what was done (``shift_eV``, ``shift_mode``, ``onset_eV``, ``train_onset_eV``, background,
        smoothing, shape checks); written to summary.json as ``preprocessing``.
    input : the :class:`InputSpectrum` it came from.
    """

    spectrum: np.ndarray
    info: dict
    input: InputSpectrum | None = None

    @property
    def shift_eV(self) -> float:
        """Energy (eV) subtracted from the input's energies before gridding."""
        return float(self.info["shift_eV"])

    @property
    def format(self) -> str:
        """The input's format (:attr:`InputSpectrum.format`)."""
        return self.input.format if self.input is not None else "array"

    @property
    def kind(self) -> str:
        """``"calculated"`` or ``"measured"`` (:attr:`InputSpectrum.kind`)."""
        return self.input.kind if self.input is not None else "measured"

    @property
    def description(self) -> str:
        """What the input is and how it was aligned, for people (figures, results.json)."""
        label = (self.input.label or self.input.source) if self.input is not None else "spectrum"
        mode = self.info.get("shift_mode", "")
        if mode == "onset":
            return (
                f"{label}; onset {self.info['onset_eV']:.2f} eV ({100 * ONSET_FRACTION:.0f} % of max) "
                f"moved to {self.info['train_onset_eV']:.2f} eV"
            )
        if mode == "manual":
            return f"{label}; energies shifted by {self.shift_eV:.2f} eV"
        return label if self.kind == "calculated" else f"{label}; energies relative to the onset, not shifted"


def check_shape(spectrum: np.ndarray, source: str) -> dict:
    """Refuse grid spectra without O K-edge structure: flat (peak-to-mean ratio below
    :data:`MIN_CONTRAST`) or noise-like (roughness above :data:`MAX_ROUGHNESS`)."""
    sm = gaussian_filter1d(spectrum, 0.3 / GRID_STEP, mode="nearest")
    contrast = float(sm.max() / spectrum.mean())
    rough = float(np.abs(spectrum - gaussian_filter1d(spectrum, 2, mode="nearest")).mean() / spectrum.mean())
    if contrast < MIN_CONTRAST:
        raise PredictInputError(
            source,
            f"does not look like an O K-edge: nearly flat on the grid (peak-to-mean "
            f"ratio {contrast:.2f}, training spectra >= 1.4); check the energy axis and onset, "
            "or pass --force",
        )
    if rough > MAX_ROUGHNESS:
        raise PredictInputError(
            source,
            f"does not look like an O K-edge: noise-like (roughness {rough:.2f}, "
            "training spectra <= 0.03); smooth it (--smooth 0.3) or pass --force",
        )
    return {"contrast": contrast, "roughness": rough}


def _checked_axis(item: InputSpectrum, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The input's (energy eV, intensity), both (n,), ascending; the grid's energies for a grid input (200,).

    Refuses non-finite values, mismatched shapes, energy spans too wide to resample, too few points, energies
    not strictly increasing (after reversing a descending axis), no positive intensity, and keV-like energies.
    """
    src = item.source
    y = np.asarray(item.intensity, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        bad = np.flatnonzero(~np.isfinite(y))
        raise PredictInputError(src, f"intensity has NaN/inf values ({bad.size} of {y.size}, first at point {bad[0]})")
    if item.energy is None:  # on the grid already
        if y.shape != (N_GRID,):
            raise PredictInputError(src, f"a spectrum without energies must have the grid's {N_GRID} points: {y.shape}")
        e = GRID.astype(np.float64)
        info["input"] = "grid"
    else:
        e = np.asarray(item.energy, dtype=np.float64)
        info["input"] = "energy axis"
        if not np.all(np.isfinite(e)):
            raise PredictInputError(src, "energy axis has NaN/inf values")
        if e.shape != y.shape or e.ndim != 1:
            raise PredictInputError(src, f"energy axis of shape {e.shape} for intensities of shape {y.shape}")
        try:
            check_energy_range(e, src)  # before any resampling: its arrays scale with the energy span
        except SpectrumFileError as exc:
            raise PredictInputError(src, exc.problem) from None
        if e.size > 1 and np.all(np.diff(e) < 0):
            e, y = e[::-1].copy(), y[::-1].copy()
        if e.size < MIN_POINTS:
            raise PredictInputError(src, f"only {e.size} data points, need at least {MIN_POINTS}")
        if not np.all(np.diff(e) > 0):
            i = int(np.flatnonzero(np.diff(e) <= 0)[0])
            raise PredictInputError(
                src, f"energies are not strictly increasing (data point {i + 2}: {e[i + 1]:g} after {e[i]:g})"
            )
    if not np.any(y > 0):
        raise PredictInputError(src, "intensity is zero (or negative) everywhere: no spectrum")
    lo, hi = float(e[0]), float(e[-1])
    if 0.3 <= lo and hi <= 1.5:
        raise PredictInputError(
            src,
            f"energies {lo:.4g}..{hi:.4g} look like keV (the O K-edge is at ~0.53 keV); give energies in eV "
            "(text files and --energy-axis: s2s predict --energy-unit keV)",
        )
    return e, y


def _clean(
    e: np.ndarray,
    y: np.ndarray,
    absolute: bool,
    background: bool,
    smooth_eV: float,
    force: bool,
    src: str,
    info: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Optional smoothing (sigma ``smooth_eV``, eV; resamples the axis), then for absolute energies the O K-edge
    window check of the steepest rise and the optional pre-edge background subtraction: (energy, intensity)."""
    if smooth_eV > 0:
        e, y = smooth(e, y, smooth_eV)
    if absolute:
        edge = steepest_rise(e, y)
        info["steepest_rise_eV"] = edge
        if not force and not O_K_WINDOW_EV[0] <= edge <= O_K_WINDOW_EV[1]:
            raise PredictInputError(
                src,
                f"the edge (steepest rise) is at {edge:.1f} eV: not an O K-edge (expected "
                f"{O_K_WINDOW_EV[0]:.0f}-{O_K_WINDOW_EV[1]:.0f} eV; C K is at ~284, N K ~401, "
                "Si L ~100 eV)",
            )
        if background:
            y = subtract_background(e, y, edge, src)
    elif background:
        info["background"] = (
            "skipped: energies relative to the onset (simulated or grid spectra carry no pre-edge background)"
        )
    return e, y


def _checked_onset(e: np.ndarray, y: np.ndarray, absolute: bool, hi: float, force: bool, src: str) -> float:
    """The edge onset (eV, :func:`s2s.spectrum.onset_shift`), refused without a rising edge or outside the O K-edge
    window (absolute energies), or with less than :data:`MIN_ABOVE_ONSET_EV` of data up to ``hi`` (eV) above it."""
    try:
        onset = onset_shift(e, y, fraction=ONSET_FRACTION, source=src)
    except SpectrumError as exc:
        raise PredictInputError(src, str(exc).replace(f"spectrum {src}: ", "")) from None
    if absolute:
        if onset - e[0] < 1.0:
            raise PredictInputError(
                src,
                "no rising edge: the intensity is already >= 10 % of its maximum within 1 eV "
                f"of the first energy ({e[0]:.1f} eV); a background-dominated spectrum? try "
                "--background, or include pre-edge data",
            )
        if not force and not O_K_WINDOW_EV[0] <= onset <= O_K_WINDOW_EV[1]:
            raise PredictInputError(
                src,
                f"edge onset at {onset:.1f} eV: not an O K-edge (expected "
                f"{O_K_WINDOW_EV[0]:.0f}-{O_K_WINDOW_EV[1]:.0f} eV)",
            )
    if hi - onset < MIN_ABOVE_ONSET_EV:
        raise PredictInputError(
            src,
            f"the data end {hi - onset:.1f} eV above the edge onset ({onset:.1f} eV); "
            f"need at least {MIN_ABOVE_ONSET_EV:.0f} eV of near-edge structure",
        )
    return onset


def _energy_shift(shift: str | float, onset: float, train_onset: float, absolute: bool, info: dict[str, Any]) -> float:
    """The energy (eV) subtracted before gridding, for ``shift`` = "auto", "onset" or a number (module docstring)."""
    if shift == "auto":
        s = onset - train_onset if absolute else 0.0
        info["shift_mode"] = "onset" if absolute else "none (energies relative to the onset)"
    elif shift == "onset":
        s = onset - train_onset
        info["shift_mode"] = "onset"
    else:
        try:
            s = float(shift)
        except (TypeError, ValueError):
            raise ValueError(f"shift must be 'auto', 'onset' or a number of eV, got {shift!r}") from None
        info["shift_mode"] = "manual"
    return float(s)


def _on_grid(
    e: np.ndarray, y: np.ndarray, s: float, as_given: bool, renormalize: bool, src: str, info: dict[str, Any]
) -> np.ndarray:
    """The (200,) unit-area spectrum on :data:`s2s.spectrum.GRID`: ``e - s`` splined onto it, or, for a grid input
    with nothing done to it (``as_given``), clipped and normalised, or kept bit for bit (``renormalize`` False)."""
    try:
        if as_given:
            area = float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(GRID))) if np.all(y >= 0) else np.nan  # trapezoid
            if not renormalize and abs(area - 1.0) <= UNIT_AREA_TOL:
                spec = y.copy()
                info["normalised"] = "as given (unit area)"
            else:
                spec = normalize(np.clip(y, 0.0, None), source=src)
        else:
            spec = spectrum_on_grid(e, y, source=src, shift_eV=s)
    except SpectrumError as exc:
        raise PredictInputError(src, str(exc).replace(f"spectrum {src}: ", "")) from None
    return spec


def prepare(
    item: InputSpectrum,
    train_onset: float,
    shift: str | float = "auto",
    background: bool = False,
    smooth_eV: float = 0.0,
    force: bool = False,
    renormalize: bool = True,
) -> Prepared:
    """Check, clean and align one input onto the model grid (module docstring); raises
    :class:`PredictInputError` naming the source and the problem.

    train_onset : eV, where the input's edge onset is put (:func:`training_onset`; 0 puts it at
        the grid's 0 eV, the readers' convention).
    shift : ``"auto"``, ``"onset"`` or a number of eV (module docstring).
    background, smooth_eV : pre-edge background subtraction; Gaussian smoothing (sigma, eV).
    force : skip the O K-edge plausibility checks (onset window, flat/noise-like shape).
    renormalize : False uses a grid input with nothing to do (no shift, smoothing or background)
        exactly as given when it is non-negative and of unit area within :data:`UNIT_AREA_TOL`
        (a recorded reference spectrum, e.g. the GPAW ``grid_spectrum``, stays bit for bit);
        True (default) clips it at 0 and scales it to unit area.
    """
    src = item.source
    info: dict[str, Any] = {
        "train_onset_eV": train_onset,
        "background": bool(background),
        "smooth_eV": float(smooth_eV),
    }
    e, y = _checked_axis(item, info)
    hi = float(e[-1])
    absolute = float(e[0]) >= ABSOLUTE_EV
    info["absolute_energies"] = absolute
    e, y = _clean(e, y, absolute, background, smooth_eV, force, src, info)
    onset = _checked_onset(e, y, absolute, hi, force, src)
    info["onset_eV"] = onset
    s = _energy_shift(shift, onset, train_onset, absolute, info)
    info["shift_eV"] = s
    as_given = item.energy is None and s == 0.0 and smooth_eV == 0 and not background
    spec = _on_grid(e, y, s, as_given, renormalize, src, info)
    if not force:
        info.update(check_shape(spec, src))
    return Prepared(spec, info, item)


__all__ = [
    "ABSOLUTE_EV",
    "MIN_RESAMPLE_STEP_EV",
    "MAX_ROUGHNESS",
    "MIN_ABOVE_ONSET_EV",
    "MIN_CONTRAST",
    "O_K_WINDOW_EV",
    "ONSET_FRACTION",
    "UNIT_AREA_TOL",
    "Prepared",
    "broaden",
    "check_shape",
    "prepare",
    "smooth",
    "steepest_rise",
    "subtract_background",
    "training_onset",
]
