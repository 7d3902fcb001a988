"""Instrument files through rosettasciio (the I/O library of HyperSpy/exspy): Gatan DigitalMicrograph
``.dm3``/``.dm4`` and HyperSpy ``.hspy`` (:func:`read_eels_file`).

rosettasciio is an optional dependency (``pip install 's2s[eels]'``); without it these files are refused
with one line saying so.  A file may hold a single spectrum, a line scan or a spectrum image: the data
come back as an array whose **last axis is the energy axis** (the axis calibrated in eV, moved last
whatever its place in the file: DigitalMicrograph stores spectrum images energy-first), with the
navigation axes before it in array order ((y, x) for a spectrum image).

Energies come from the file's calibration: ``offset + scale * i`` (or an explicit non-uniform axis), in
the file's units: eV is used as is, keV converted to eV (recorded in ``meta``); any other unit, or an
axis without units (an uncalibrated axis: DigitalMicrograph writes origin 0, scale 1, no units), is
refused with one line naming the file, the axis and what it says.

EMSA/MSA files are read by the project's own parser (:mod:`s2s.io.msa`), not through rosettasciio:
rosettasciio 0.15 reads a truncated EMSA file (no ``#ENDOFDATA``, fewer points than ``#NPOINTS``)
without complaint, takes an XY file's energies from ``#OFFSET``/``#XPERCHAN`` instead of its X column,
passes NaN through and reads an ``nm`` axis as if it were energy - the cases ``tests/test_readers.py``
checks; the own parser also needs nothing beyond NumPy (docs/predict.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from s2s.io.raw import PathLike, SpectrumFileError, check_energy_range

#: Suffix -> rosettasciio plugin (module ``rsciio.<plugin>``) for the formats read through rosettasciio.
RSCIIO_PLUGINS = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".hspy": "hspy"}
#: Energy units accepted on the energy axis and their factor to eV.
ENERGY_UNIT_FACTORS = {"ev": 1.0, "kev": 1000.0}
#: What to install for these formats.
INSTALL_HINT = "pip install 's2s[eels]' (or pip install rosettasciio)"


class EelsData(NamedTuple):
    """A spectrum, line scan or spectrum image read through rosettasciio.

    energy : (L,) eV, increasing.
    data : (L,), (n, L) or (ny, nx, L) float64, energy last.
    meta : ``format`` (``dm`` or ``hspy``), ``path``, ``title``, ``signal_type``, ``energy_units_in_file``,
        ``energy_offset``/``energy_scale`` (as in the file), ``navigation_shape``, ``n_signals_in_file``.
    """

    energy: np.ndarray
    data: np.ndarray
    meta: dict


def rsciio_available() -> bool:
    """Whether rosettasciio can be imported (the ``s2s[eels]`` extra)."""
    try:
        import rsciio  # noqa: F401
    except ImportError:
        return False
    return True


def is_hyperspy_hdf5(path: PathLike) -> bool:
    """Whether an HDF5 file (e.g. ``.hdf5``, the suffix of HyperSpy files before ``.hspy``) was written by
    HyperSpy/rosettasciio (root attribute ``file_format`` = "HyperSpy")."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return str(f.attrs.get("file_format", "")).lower() == "hyperspy"
    except (OSError, ValueError, TypeError):
        return False


def _reader(path: Path, plugin: str | None = None):
    import importlib

    plugin = plugin or RSCIIO_PLUGINS[path.suffix.lower()]
    try:
        return importlib.import_module(f"rsciio.{plugin}").file_reader
    except ImportError:
        raise SpectrumFileError(
            path, f"reading {path.suffix} files needs rosettasciio, which is not installed: {INSTALL_HINT}"
        ) from None


def energy_from_axis(ax: dict, path: PathLike, where: str = "energy axis") -> tuple[np.ndarray, dict]:
    """(energies in eV, calibration record) of one axis dictionary of rosettasciio (``units``, ``offset``,
    ``scale``, ``size``, or an explicit ``axis``; ``name``); raises :class:`~s2s.io.raw.SpectrumFileError`
    naming ``path`` on a missing or non-energy calibration."""
    units = str(ax.get("units") or "").strip()
    name = str(ax.get("name") or "")
    name = where if name in ("", "<undefined>", "Undefined") else name
    size = int(ax.get("size", 0) or 0)
    if "axis" in ax and ax["axis"] is not None:  # a non-uniform axis: explicit values
        values = np.asarray(ax["axis"], dtype=np.float64).reshape(-1)
        cal = {"energy_axis": "non-uniform"}
    else:
        offset, scale = float(ax.get("offset", 0.0) or 0.0), float(ax.get("scale", 1.0) or 0.0)
        values = offset + scale * np.arange(size, dtype=np.float64)
        cal = {"energy_offset": offset, "energy_scale": scale}
    if not units or units in ("<undefined>", "Undefined"):
        detail = "" if "axis" in ax else f" (offset {cal['energy_offset']:g}, scale {cal['energy_scale']:g})"
        raise SpectrumFileError(
            path,
            f"the energy axis ({name}) has no calibration: no units{detail}; calibrate it in eV "
            "(e.g. in DigitalMicrograph or HyperSpy: axes_manager[-1].units = 'eV', offset, scale) and save again",
        )
    factor = ENERGY_UNIT_FACTORS.get(units.lower())
    if factor is None:
        raise SpectrumFileError(
            path, f"the energy axis ({name}) is in {units!r}, expected eV: an energy-loss axis calibrated in eV"
        )
    if not np.all(np.isfinite(values)) or values.size < 2 or np.any(np.diff(values) == 0):
        raise SpectrumFileError(
            path, f"the energy axis ({name}) has an unusable calibration (scale 0, NaN or < 2 points)"
        )
    cal["energy_units_in_file"] = units
    return values * factor, cal


def _signal_axis(axes: list[dict]) -> int | None:
    """Index (in array order) of the energy axis: the one axis in energy units; among several (or none),
    the signal axis (``navigate`` False) when there is exactly one; else the last axis for 1-D data."""

    def energy_like(a):
        return str(a.get("units") or "").strip().lower() in ENERGY_UNIT_FACTORS

    idx = [i for i, a in enumerate(axes) if energy_like(a)]
    if len(idx) == 1:
        return idx[0]
    sig = [i for i, a in enumerate(axes) if not a.get("navigate", False)]
    pool = [i for i in sig if i in idx] if idx else sig
    if len(pool) == 1:
        return pool[0]
    if len(axes) == 1:
        return 0
    return None


def read_eels_file(path: PathLike, plugin: str | None = None) -> EelsData:
    """Read a ``.dm3``/``.dm4``/``.hspy`` file through rosettasciio (module docstring).  Raises
    :class:`~s2s.io.raw.SpectrumFileError` (one line naming the file) when rosettasciio is missing, the
    file cannot be read, it holds no spectrum, or the energy axis is not calibrated in eV.  ``plugin``: the
    rosettasciio plugin (default by suffix, :data:`RSCIIO_PLUGINS`; ``"hspy"`` for a HyperSpy ``.hdf5``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    reader = _reader(p, plugin)
    fmt = "hspy" if (plugin or RSCIIO_PLUGINS[p.suffix.lower()]) == "hspy" else "dm"
    try:
        signals = reader(str(p), lazy=False)
    except MemoryError:
        raise
    except Exception as exc:  # rosettasciio raises many types for damaged or foreign files
        msg = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise SpectrumFileError(
            p, f"not a readable {fmt.upper()} file (rosettasciio: {type(exc).__name__}{': ' + msg if msg else ''})"
        ) from None
    if isinstance(signals, dict):
        signals = [signals]
    if not signals:
        raise SpectrumFileError(p, "the file holds no data")
    usable = []
    for s in signals:
        axes = list(s.get("axes") or [])
        data = s.get("data")
        if data is None or not axes or np.ndim(data) != len(axes) or np.ndim(data) > 3:
            continue
        usable.append((s, axes))
    if not usable:
        shapes = [tuple(np.shape(s.get("data"))) for s in signals]
        raise SpectrumFileError(
            p, f"no spectrum, line scan or spectrum image in the file (data of shape {shapes}; at most 3 axes)"
        )
    # the first signal with an axis in energy units, else the first one (whose calibration is then reported)
    s, axes = next(((s, a) for s, a in usable if _signal_axis(a) is not None), usable[0])
    i = _signal_axis(axes)
    if i is None:
        desc = ", ".join(f"{a.get('name') or '?'} [{a.get('units') or 'no units'}]" for a in axes)
        raise SpectrumFileError(p, f"no energy axis: none of the axes ({desc}) is calibrated in eV")
    energy, cal = energy_from_axis(axes[i], p, f"axis {i}")
    data = np.moveaxis(np.asarray(s["data"]), i, -1)
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise SpectrumFileError(p, f"data of type {data.dtype}, expected real numbers")
    data = np.asarray(data, dtype=np.float64)
    if energy.size != data.shape[-1]:
        raise SpectrumFileError(p, f"the energy axis has {energy.size} points, the data {data.shape[-1]}")
    if np.all(np.diff(energy) < 0):
        energy, data = energy[::-1].copy(), data[..., ::-1].copy()
    if not np.all(np.diff(energy) > 0):
        raise SpectrumFileError(p, "the energy axis is not monotonic")
    check_energy_range(energy, p)
    md = s.get("metadata") or {}
    meta = {
        "format": fmt,
        "path": str(p),
        "title": str((md.get("General") or {}).get("title", "") or ""),
        "signal_type": str((md.get("Signal") or {}).get("signal_type", "") or ""),
        "navigation_shape": list(data.shape[:-1]),
        "n_signals_in_file": len(signals),
        **cal,
    }
    return EelsData(energy, data, meta)


__all__ = [
    "ENERGY_UNIT_FACTORS",
    "INSTALL_HINT",
    "RSCIIO_PLUGINS",
    "EelsData",
    "energy_from_axis",
    "is_hyperspy_hdf5",
    "read_eels_file",
    "rsciio_available",
]
