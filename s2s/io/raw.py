"""What every spectrum reader returns and the checks they share (:mod:`s2s.io.readers` dispatches).

* :class:`RawSpectrum` ``(energy, intensity, meta)``: energies in eV, strictly increasing, finite;
  ``on_grid()`` puts it on the model's 200-point grid (:mod:`s2s.spectrum`).
* :class:`SpectrumFileError`: a file that cannot be read; the message names the file and the problem.
* :func:`finish_spectrum`: the shared validation (point count, NaN/inf, monotonic, eV scale).
* :func:`read_text_file`: a text file's contents, refusing missing, empty and binary files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from s2s.spectrum import SpectrumError, onset_shift, spectrum_on_grid

#: Fewest points a spectrum may have.
MIN_POINTS = 5
#: Smallest energy span (eV) accepted; an O K-edge spectrum in keV spans ~0.01-0.05.
MIN_SPAN_EV = 1.0

#: Energies (eV) a spectrum may have: an O K-edge lies at ~532 eV in absolute energy loss, or at ~0 eV when
#: the energies are relative to the onset (simulated spectra, the model grid -1..18.9 eV).  The window
#: leaves room for wide EELS acquisitions (a 2048-channel, 1 eV/channel spectrum from 0 eV) and deep
#: states of calculations; energies beyond it are other units (meV, J), a wrong column or garbage, and
#: would make the resampling of the preparation allocate huge arrays (a 1e8 eV point: tens of GiB).
ENERGY_RANGE_EV = (-200.0, 3000.0)

PathLike = str | os.PathLike


class SpectrumFileError(SpectrumError):
    """A spectrum file cannot be read; the message names the file and the problem.

    A :class:`s2s.spectrum.SpectrumError` (hence a ``ValueError``).
    """

    def __init__(self, path: PathLike | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class MissingSpectrumFileError(SpectrumFileError, FileNotFoundError):
    """A file a spectrum needs does not exist (e.g. a CASTEP ``.bands`` without its ``.eels_mat``): both
    the project's input error (a :class:`SpectrumFileError`) and a ``FileNotFoundError``."""


class RawSpectrum(NamedTuple):
    """A spectrum as read: energies (eV, increasing), intensities, and metadata."""

    energy: np.ndarray
    intensity: np.ndarray
    meta: dict

    def on_grid(self, shift_eV: float | str = 0.0) -> np.ndarray:
        """The spectrum on the dataset grid (200 points, -1..18.9 eV, unit area), for a SiteRecord.

        ``shift_eV`` is subtracted from the energies first: ``0`` (default) for spectra whose
        energies are already relative to the onset/Fermi level (CASTEP, GPAW, simulated),
        a number, or ``"onset"`` to estimate it with :func:`s2s.spectrum.onset_shift` (measured
        spectra in absolute energy loss).  Uses :func:`s2s.spectrum.spectrum_on_grid`
        (cubic spline, unit area); raises ``SpectrumError`` naming the file.
        """
        source = str(self.meta.get("path", "<spectrum>"))
        if shift_eV == "onset":
            shift_eV = onset_shift(self.energy, self.intensity, source=source)
        elif isinstance(shift_eV, str):
            raise ValueError(f"on_grid: shift_eV must be a number or 'onset', got {shift_eV!r}")
        return spectrum_on_grid(self.energy, self.intensity, source=source, shift_eV=float(shift_eV))


def check_energy_range(energy: np.ndarray, path: PathLike | None) -> None:
    """Refuse energies outside :data:`ENERGY_RANGE_EV` (eV) with one line naming the file and the
    first such value; call it before any resampling (the arrays it would allocate scale with the span)."""
    e = np.asarray(energy, dtype=np.float64)
    lo, hi = ENERGY_RANGE_EV
    bad = np.flatnonzero(~((e >= lo) & (e <= hi)))
    if bad.size:
        v = e[bad[0]]
        unit = " (meV? divide by 1000)" if 1e4 <= abs(v) <= 1e7 else ""
        raise SpectrumFileError(
            path,
            f"energy {v:.6g} eV (data point {bad[0] + 1}) is outside {lo:g}..{hi:g} eV, the range of an O K-edge "
            f"spectrum (~532 eV absolute, ~0 eV relative to the onset){unit}; check the units and the columns",
        )


def finish_spectrum(energy: Any, intensity: Any, path: PathLike, meta: dict) -> RawSpectrum:
    """Validate and return: enough points, finite, strictly monotonic (sorted up), eV scale."""
    e = np.asarray(energy, dtype=np.float64)
    y = np.asarray(intensity, dtype=np.float64)
    if e.ndim != 1 or e.shape != y.shape:
        raise SpectrumFileError(path, f"energy and intensity differ in shape: {e.shape} vs {y.shape}")
    if e.size == 0:
        raise SpectrumFileError(path, "no data points (empty spectrum)")
    if e.size < MIN_POINTS:
        raise SpectrumFileError(path, f"only {e.size} data points, need at least {MIN_POINTS}")
    for name, a in (("energy", e), ("intensity", y)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise SpectrumFileError(path, f"{name} has NaN/inf values (first at data point {bad[0] + 1})")
    check_energy_range(e, path)
    d = np.diff(e)
    if np.all(d < 0):
        e, y, d = e[::-1].copy(), y[::-1].copy(), -d[::-1]
    if not np.all(d > 0):
        i = int(np.flatnonzero(d <= 0)[0])
        raise SpectrumFileError(
            path,
            f"energies are not strictly increasing (data point {i + 2}: {e[i + 1]:g} after {e[i]:g})",
        )
    span = e[-1] - e[0]
    if span < MIN_SPAN_EV:
        raise SpectrumFileError(
            path,
            f"energies span only {span:.4g} ({e[0]:.6g} to {e[-1]:.6g}); energies must be in eV - "
            "are they in keV? (an O K-edge near 0.53 keV spans tens of eV)",
        )
    if not np.any(y != 0):
        raise SpectrumFileError(path, "intensity is zero everywhere")
    meta = {"path": str(path), **meta}
    return RawSpectrum(e, y, meta)


def read_text_file(path: PathLike) -> str:
    """The text of ``path`` (UTF-8, else Latin-1); missing, directory, empty or binary files are refused."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"spectrum file not found: {p}")
    if p.is_dir():
        raise SpectrumFileError(p, "is a directory, expected a file")
    raw = p.read_bytes()
    if not raw.strip():
        raise SpectrumFileError(p, "file is empty")
    if b"\x00" in raw[:4096]:
        raise SpectrumFileError(p, "looks like a binary file, expected text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


__all__ = [
    "ENERGY_RANGE_EV",
    "check_energy_range",
    "MIN_POINTS",
    "MIN_SPAN_EV",
    "PathLike",
    "RawSpectrum",
    "MissingSpectrumFileError",
    "SpectrumFileError",
    "finish_spectrum",
    "read_text_file",
]
