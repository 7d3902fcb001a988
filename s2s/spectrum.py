"""O K-edge spectra on the paper's energy grid.

Convention (paper, Methods): every spectrum is spline-interpolated onto 200 points,
``GRID[k] = -1.0 + 0.1 k`` eV (k = 0..199, i.e. -1.0 .. 18.9 eV) and normalised to unit
area (trapezoid rule over ``GRID``).  Energy 0 is the edge onset: in the simulated
spectra the Fermi level of the core-hole calculation (the lowest unoccupied level) is
set to 0, so the absorption rises just above 0 eV.  Measured spectra (absolute energy
losses near 530 eV) must be shifted first, e.g. ``energy - onset_shift(energy, intensity)``,
which puts the estimated onset of the edge at 0 eV.

All energies are in eV; intensities are in arbitrary units (non-negative).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.interpolate import CubicSpline
from scipy.ndimage import gaussian_filter1d

#: Number of grid points, first energy and step (eV).
N_GRID: int = 200
GRID_START: float = -1.0
GRID_STEP: float = 0.1
#: The paper's energy grid in eV: -1.0, -0.9, ..., 18.9 (200 points).
GRID: np.ndarray = np.round(GRID_START + GRID_STEP * np.arange(N_GRID), 10)
GRID.setflags(write=False)

#: Minimal overlap of the data with the grid (eV) and minimal number of points.
MIN_COVERAGE_EV: float = 2.0
MIN_POINTS: int = 4
#: Negative intensities down to -NEG_TOL * max(intensity) are treated as noise and clipped.
NEG_TOL: float = 0.02


_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


class SpectrumError(ValueError):
    """A spectrum that cannot be put on the grid; the message names the source and the fix."""


def _fail(source: str, problem: str) -> SpectrumError:
    return SpectrumError(f"spectrum {source}: {problem}")


def validate(
    energy_eV: ArrayLike, intensity: ArrayLike, *, source: str = "<unnamed>", neg_tol: float = NEG_TOL
) -> tuple[np.ndarray, np.ndarray]:
    """Check raw (E, I) data and return them as float arrays (small negatives clipped to 0).

    Checks, in order: 1-D and equal lengths; finite values; at least ``MIN_POINTS``
    points; strictly increasing energies; plausible units (keV, meV or absolute
    loss energies that were not shifted to the onset); overlap with ``GRID`` of at least
    ``MIN_COVERAGE_EV``; no intensity below ``-neg_tol * max``; not all zero.
    Raises :class:`SpectrumError` naming ``source`` and the problem.
    """
    e = np.asarray(energy_eV, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if e.ndim != 1 or y.ndim != 1:
        raise _fail(source, f"energy and intensity must be 1-D arrays; got shapes {e.shape} and {y.shape}")
    if e.shape != y.shape:
        raise _fail(source, f"mismatched lengths: {e.size} energies but {y.size} intensities")
    for name, arr in (("energy", e), ("intensity", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            kinds = ", ".join(k for k, m in (("NaN", np.isnan(arr)), ("inf", np.isinf(arr))) if m.any())
            raise _fail(
                source,
                f"{name} contains {kinds} ({int(bad.sum())} of {arr.size} values, first at index "
                f"{int(np.argmax(bad))}); remove or interpolate those points",
            )
    if e.size < MIN_POINTS:
        raise _fail(source, f"too short: {e.size} points, need at least {MIN_POINTS}")
    de = np.diff(e)
    if np.all(de < 0):
        raise _fail(source, "energies are sorted in descending order; reverse both arrays (e.g. [::-1])")
    if not np.all(de > 0):
        i = int(np.argmax(de <= 0))
        what = "repeated" if de[i] == 0 else "decreasing"
        raise _fail(
            source,
            f"energies must be strictly increasing, but are {what} at index {i + 1} "
            f"({e[i]:.6g} -> {e[i + 1]:.6g} eV); sort by energy and merge duplicates",
        )
    lo, hi = float(e[0]), float(e[-1])
    if 0.3 <= lo and hi <= 1.5 and hi - lo < 0.5:
        raise _fail(
            source,
            f"energies {lo:.4g}..{hi:.4g} look like keV (the O K-edge is at ~0.53 keV); "
            "convert to eV (x1000) and shift the onset to 0 eV with onset_shift()",
        )
    if lo >= 1e4:
        raise _fail(
            source,
            f"energies {lo:.4g}..{hi:.4g} look like meV; convert to eV (/1000) and shift the "
            "onset to 0 eV with onset_shift()",
        )
    if lo >= 100.0:
        raise _fail(
            source,
            f"energies {lo:.4g}..{hi:.4g} eV look like absolute energy losses (the O K-edge is at "
            f"~530 eV) that were not shifted to the edge onset; the grid runs {GRID[0]:.1f}..{GRID[-1]:.1f} eV "
            "relative to the onset: use energy - onset_shift(energy, intensity)",
        )
    if hi < GRID[0] or lo > GRID[-1]:
        raise _fail(
            source,
            f"energies {lo:.4g}..{hi:.4g} eV do not overlap the grid {GRID[0]:.1f}..{GRID[-1]:.1f} eV "
            "(energy 0 = edge onset); check the units and the onset shift",
        )
    overlap = min(hi, GRID[-1]) - max(lo, GRID[0])
    if overlap < MIN_COVERAGE_EV:
        raise _fail(
            source,
            f"too short: energies {lo:.4g}..{hi:.4g} eV cover only {overlap:.2f} eV of the grid "
            f"{GRID[0]:.1f}..{GRID[-1]:.1f} eV; need at least {MIN_COVERAGE_EV} eV",
        )
    ymax = float(y.max())
    if ymax <= 0.0:
        raise _fail(source, "all intensities are zero (or negative); nothing to normalise")
    if float(y.min()) < -neg_tol * ymax:
        i = int(np.argmin(y))
        raise _fail(
            source,
            f"negative intensity {y[i]:.4g} at {e[i]:.4g} eV (below -{neg_tol:g} x max {ymax:.4g}); "
            "subtract the background so that intensities are >= 0",
        )
    return e, np.clip(y, 0.0, None)


def to_grid(
    energy_eV: ArrayLike, intensity: ArrayLike, *, source: str = "<unnamed>", neg_tol: float = NEG_TOL
) -> np.ndarray:
    """Cubic-spline interpolation of (E, I) onto :data:`GRID` (not normalised).

    Energies in eV relative to the edge onset (see module docstring).  Grid points
    outside the data range are 0; negative spline overshoot is clipped to 0.  Fails if
    less than 1 % of the data's maximum intensity falls on the grid (wrong onset shift).
    Raises :class:`SpectrumError` for bad input (see :func:`validate`).
    """
    e, y = validate(energy_eV, intensity, source=source, neg_tol=neg_tol)
    out = np.zeros(N_GRID)
    inside = (GRID >= e[0]) & (GRID <= e[-1])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            out[inside] = CubicSpline(e, y)(GRID[inside])
        except ValueError as exc:  # e.g. energies 1e-300 eV apart: infinite slopes
            raise _fail(source, f"the cubic spline through the data failed ({exc}); check the energies") from None
    if not np.all(np.isfinite(out)):
        raise _fail(source, "the cubic spline through the data overflowed (energies too close, or intensities huge)")
    out = np.clip(out, 0.0, None)
    if out.max() < 0.01 * y.max():
        raise _fail(
            source,
            f"no intensity inside the grid range {GRID[0]:.1f}..{GRID[-1]:.1f} eV (< 1 % of the "
            "maximum lies on the grid); check the onset shift (energy 0 = edge onset)",
        )
    return out


def normalize(intensity: ArrayLike, *, source: str = "<unnamed>") -> np.ndarray:
    """Scale grid spectra (shape (..., 200)) to unit area (trapezoid rule over :data:`GRID`)."""
    y = np.asarray(intensity, dtype=np.float64)
    if y.shape[-1:] != (N_GRID,):
        raise _fail(source, f"expected {N_GRID} grid values in the last axis, got shape {y.shape}; use to_grid() first")
    if not np.all(np.isfinite(y)):
        raise _fail(source, "grid intensities contain NaN or inf")
    with np.errstate(over="ignore", invalid="ignore"):
        area = _trapezoid(y, GRID, axis=-1)
    if not np.all(np.isfinite(area)):
        raise _fail(source, "the area under the spectrum overflows (intensities near 1e308); scale them down")
    if np.any(area <= 0):
        raise _fail(source, "zero (or negative) area; cannot normalise an all-zero spectrum")
    return y / area[..., None]


def spectrum_on_grid(
    energy_eV: ArrayLike, intensity: ArrayLike, *, source: str = "<unnamed>", shift_eV: float = 0.0
) -> np.ndarray:
    """``normalize(to_grid(energy_eV - shift_eV, intensity))``: the model's input format."""
    e = np.asarray(energy_eV, dtype=np.float64) - shift_eV
    return normalize(to_grid(e, intensity, source=source), source=source)


def onset_shift(
    energy_eV: ArrayLike,
    intensity: ArrayLike,
    *,
    fraction: float = 0.1,
    smooth_eV: float = 0.3,
    source: str = "<unnamed>",
) -> float:
    """Estimate the edge onset (eV, in the units/origin of ``energy_eV``).

    The spectrum is resampled on a uniform 0.01 eV grid, smoothed with a Gaussian of
    standard deviation ``smooth_eV`` and the onset is the first energy (linearly
    interpolated) where it reaches ``fraction`` of its maximum.  ``energy_eV - onset``
    puts the onset at the grid's 0 eV.  This is an estimate: the onset of a simulated
    spectrum sits slightly above its 0 eV (the lowest unoccupied level), so for
    comparisons one may refine the shift against a reference (e.g. align the main peak).
    Only finite, increasing energies are required (absolute energies are fine here).
    """
    e = np.asarray(energy_eV, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if e.ndim != 1 or e.shape != y.shape:
        raise _fail(source, f"energy and intensity must be 1-D of equal length; got {e.shape} and {y.shape}")
    if e.size < MIN_POINTS or not (np.all(np.isfinite(e)) and np.all(np.isfinite(y))):
        raise _fail(source, f"need at least {MIN_POINTS} finite points to find the onset")
    if not np.all(np.diff(e) > 0):
        raise _fail(source, "energies must be strictly increasing to find the onset")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    step = 0.01
    fine = np.arange(e[0], e[-1] + 0.5 * step, step)
    yf = np.interp(fine, e, y)
    if smooth_eV > 0:
        yf = gaussian_filter1d(yf, smooth_eV / step, mode="nearest")
    ymax = float(yf.max())
    if ymax <= 0:
        raise _fail(source, "all intensities are zero (or negative); no edge to find")
    level = fraction * ymax
    i = int(np.argmax(yf >= level))
    if i == 0:
        return float(fine[0])
    t = (level - yf[i - 1]) / (yf[i] - yf[i - 1])
    return float(fine[i - 1] + t * step)
