"""NumPy files of spectra: ``.npy`` and ``.npz`` (:func:`read_array`).

* ``.npy``: an array of shape (L,), (n, L) or (ny, nx, L) (a STEM-EELS spectrum image); without an
  energy axis it must be on the model grid (L = 200, :data:`s2s.spectrum.GRID`, eV).
* ``.npz``: arrays ``energy`` (L,) in eV and ``spectra`` (or ``data``, ``intensity``) (..., L).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from s2s.io.raw import PathLike, SpectrumFileError, check_energy_range
from s2s.spectrum import GRID, N_GRID

#: What ``np.load`` raises for damaged or foreign files (truncated, empty, not NumPy, a broken zip).
_NUMPY_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
#: Names under which a ``.npz`` may hold its spectra, the first present is used.
NPZ_SPECTRA_KEYS = ("spectra", "data", "intensity")


class SpectrumArray(NamedTuple):
    """Spectra read from a NumPy file.

    energy : (L,) eV, or None when the spectra are on the model grid (L = 200).
    spectra : (L,), (n, L) or (ny, nx, L), float64.
    meta : ``{"format": "array", "path": ...}``.
    """

    energy: np.ndarray | None
    spectra: np.ndarray
    meta: dict


def read_array(path: PathLike, energy_axis: np.ndarray | None = None) -> SpectrumArray:
    """Read a ``.npy`` (energies: ``energy_axis`` (L,) eV, or none: the model grid) or a ``.npz``
    (its own ``energy``).  Raises :class:`~s2s.io.raw.SpectrumFileError` naming the file and the
    problem (unreadable, not numbers, wrong shape, energy axis of another length)."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                key = next((k for k in NPZ_SPECTRA_KEYS if k in z.files), None)
                if key is None or "energy" not in z.files:
                    raise SpectrumFileError(
                        p, f"a .npz needs arrays 'energy' (L,) and 'spectra' (..., L); found {sorted(z.files)}"
                    )
                arr, energy = z[key], z["energy"]
            if not np.issubdtype(energy.dtype, np.number) or np.iscomplexobj(energy):
                raise SpectrumFileError(p, f"'energy' is an array of {energy.dtype}, expected real numbers")
            energy = np.asarray(energy, dtype=np.float64)
        except SpectrumFileError:
            raise
        except _NUMPY_READ_ERRORS as exc:
            raise SpectrumFileError(p, f"not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    else:
        try:
            arr = np.load(p, allow_pickle=False)
        except _NUMPY_READ_ERRORS as exc:
            raise SpectrumFileError(p, f"not a readable .npy array ({type(exc).__name__}: {exc})") from None
        if not isinstance(arr, np.ndarray):
            raise SpectrumFileError(p, "not a .npy array")
        energy = None if energy_axis is None else np.asarray(energy_axis, dtype=np.float64)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise SpectrumFileError(p, f"array of {arr.dtype}, expected real numbers")
    arr = np.asarray(arr, dtype=np.float64)
    length = arr.shape[-1] if arr.ndim else 0
    if energy is None and length != N_GRID:
        raise SpectrumFileError(
            p,
            f"last axis has {length} points; a spectrum array without an energy axis must be on the "
            f"model grid ({N_GRID} points, {GRID[0]:.1f}..{GRID[-1]:.1f} eV): give an energy axis "
            "(.npz 'energy' or --energy-axis)",
        )
    if energy is not None and (energy.ndim != 1 or energy.size != length):
        raise SpectrumFileError(
            p, f"energy axis has shape {energy.shape}, spectra have {length} points in the last axis"
        )
    if energy is not None:
        if not np.all(np.isfinite(energy)):
            raise SpectrumFileError(p, "energy axis has NaN/inf values")
        check_energy_range(energy, p)
    if arr.ndim not in (1, 2, 3):
        raise SpectrumFileError(p, f"array of shape {arr.shape}; expected (L,), (n, L) or a spectrum image (ny, nx, L)")
    return SpectrumArray(energy, arr, {"format": "array", "path": str(p)})


__all__ = ["NPZ_SPECTRA_KEYS", "SpectrumArray", "read_array"]
