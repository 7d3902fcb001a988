"""Spectrum files -> :class:`InputSpectrum`: step 1 of the road for foreign spectra (``s2s predict``,
``s2s sample --spectrum``, notebook 07, the transfer study); step 2 is :mod:`s2s.predict.prepare`.

:func:`load_inputs` reads any format of :mod:`s2s.io` (:func:`s2s.io.readers.read_spectrum`:
two-column text/CSV in eV, EELS ``.msa``, CASTEP, GPAW JSON, an s2s dataset ``.h5`` - every
entry), or a NumPy file (:func:`s2s.io.arrays.read_array`): ``.npy`` of shape (200,), (n, 200) or
(ny, nx, 200) on the model grid (a STEM-EELS spectrum image), or any last-axis length with an
energy axis (``energy_axis=``); ``.npz`` with arrays ``energy`` (L,) and ``spectra`` (..., L).
One :class:`InputSpectrum` per spectrum; :func:`collect_inputs` does it for many paths, bad ones
reported as :class:`InputError`.  Energies in eV.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2s.dataset import Dataset
from s2s.io.arrays import read_array
from s2s.io.eels import is_hyperspy_hdf5, read_eels_file
from s2s.io.raw import SpectrumFileError, check_energy_range
from s2s.io.readers import detect_format, read_spectrum, spectrum_files

#: How a spectrum image's pixels become inputs (``summary.json`` ``preprocessing.si_selection``).
SI_EVERY_PIXEL, SI_PIXEL, SI_ROI = "every pixel", "pixel", "roi (sum)"
#: Formats holding calculated spectra (an :class:`InputSpectrum` of another format is "measured").
CALCULATED_FORMATS = ("gpaw", "castep", "dataset")
#: Energy units of the inputs (``--energy-unit``) and their factor to eV.
ENERGY_UNITS = {"eV": 1.0, "keV": 1000.0}


class PredictInputError(SpectrumFileError):
    """An input that cannot be used; the message names the file and the problem."""


@dataclass
class InputSpectrum:
    """One spectrum as read, before preparation.

    name : output folder name (relative; one '/' for spectrum images, arrays and dataset entries).
    source : the file (and entry, ``file[i]``) it came from.
    energy : (L,) eV, or None when ``intensity`` is on :data:`s2s.spectrum.GRID` already.
    intensity : (L,) (or (200,) on the grid), any units.
    meta : the reader's scalar metadata (``format``, ``path``, ...); arrays: ``index``, ``array_shape``.
    label : what it is, for people (e.g. "GPAW first-principles O K-edge ... calculated, not
        measured"); :attr:`Prepared.description` adds what preparation did.
    """

    name: str
    source: str
    energy: np.ndarray | None
    intensity: np.ndarray
    meta: dict = field(default_factory=dict)
    label: str = ""

    @property
    def format(self) -> str:
        """The reader's format (``text``, ``msa``, ``castep``, ``gpaw``, ``dataset``) or ``array``."""
        return str(self.meta.get("format", "array"))

    @property
    def kind(self) -> str:
        """``"calculated"`` (GPAW, CASTEP, dataset entries) or ``"measured"`` (text, EMSA, arrays)."""
        return "calculated" if self.format in CALCULATED_FORMATS else "measured"


@dataclass
class InputError:
    """An input that could not be read or prepared: its name, file and the message naming both."""

    name: str
    source: str
    message: str


def safe_name(name: str) -> str:
    """``name`` as a file name: characters other than letters, digits and ``-_.+=`` become ``_``."""
    keep = "".join(c if c.isalnum() or c in "-_.+=" else "_" for c in name)
    return keep.strip("._") or "spectrum"


def parse_pixel(text: str) -> tuple[int, int]:
    """``"x,y"`` (column, row of a spectrum image, from 0) -> (x, y); raises ``ValueError`` with one line."""
    try:
        x, y = (int(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"--pixel {text!r}: expected X,Y (column and row from 0, e.g. --pixel 12,3)") from None
    if x < 0 or y < 0:
        raise ValueError(f"--pixel {text!r}: X and Y count from 0")
    return x, y


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``"x0:x1,y0:y1"`` (half-open, as Python slices: columns x0..x1-1, rows y0..y1-1) -> (x0, x1, y0, y1)."""
    try:
        xs, ys = str(text).split(",")
        (x0, x1), (y0, y1) = ((int(a) for a in part.split(":")) for part in (xs, ys))
    except ValueError:
        raise ValueError(
            f"--roi {text!r}: expected X0:X1,Y0:Y1 (columns X0..X1-1, rows Y0..Y1-1, from 0; e.g. --roi 0:4,2:6)"
        ) from None
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise ValueError(f"--roi {text!r}: need 0 <= X0 < X1 and 0 <= Y0 < Y1 (an empty region sums nothing)")
    return x0, x1, y0, y1


def array_inputs(
    path: Path,
    energy: np.ndarray | None,
    arr: np.ndarray,
    meta: dict | None = None,
    pixel: tuple[int, int] | None = None,
    roi: tuple[int, int, int, int] | None = None,
    what: str = "array",
) -> list[InputSpectrum]:
    """One input per spectrum of an array (L,), (n, L) or (ny, nx, L) (:func:`s2s.io.arrays.read_array`,
    :func:`s2s.io.eels.read_eels_file`).  A spectrum image (ny, nx, L) gives every pixel (outputs
    ``STEM/y000_x000``..., and ``maps.npz``), or with ``pixel`` = (x, y) that pixel, or with ``roi`` =
    (x0, x1, y0, y1) the sum of its pixels (one input); other shapes ignore ``pixel``/``roi``.  The choice
    is recorded in the inputs' ``meta["si_selection"]`` (and ``si_pixel``/``si_roi``)."""
    stem = safe_name(path.stem)
    base = {k: v for k, v in (meta or {}).items() if k != "path"}
    base["array_shape"] = list(arr.shape)
    if arr.ndim == 3 and (pixel is not None or roi is not None):
        ny, nx = arr.shape[:2]
        size = f"{nx} x {ny} pixels (x 0..{nx - 1}, y 0..{ny - 1})"
        if pixel is not None:
            x, y = pixel
            if not (0 <= x < nx and 0 <= y < ny):
                raise PredictInputError(path, f"--pixel {x},{y} is outside the spectrum image: {size}")
            name, spec = f"{stem}/y{y:03d}_x{x:03d}", arr[y, x]
            extra = {"si_selection": SI_PIXEL, "si_pixel": [x, y]}
            where = f"{path}[y={y}, x={x}]"
        else:
            x0, x1, y0, y1 = roi
            if x1 > nx or y1 > ny:
                raise PredictInputError(path, f"--roi {x0}:{x1},{y0}:{y1} reaches outside the spectrum image: {size}")
            name, spec = f"{stem}/roi_x{x0}-{x1}_y{y0}-{y1}", arr[y0:y1, x0:x1].sum(axis=(0, 1))
            extra = {"si_selection": SI_ROI, "si_roi": [x0, x1, y0, y1], "si_roi_pixels": (x1 - x0) * (y1 - y0)}
            where = f"{path}[y={y0}:{y1}, x={x0}:{x1}]"
        label = f"measured spectrum {Path(where).name} ({what})"
        return [InputSpectrum(name, where, energy, spec, {**base, **extra}, label)]
    if arr.ndim == 1:
        items = [((), stem)]
    elif arr.ndim == 2:
        items = [((i,), f"{stem}/i{i:04d}") for i in range(arr.shape[0])]
    else:
        items = [((iy, ix), f"{stem}/y{iy:03d}_x{ix:03d}") for iy in range(arr.shape[0]) for ix in range(arr.shape[1])]
        base["si_selection"] = SI_EVERY_PIXEL
    out = []
    for idx, name in items:
        where = f"{path}[{', '.join(map(str, idx))}]" if idx else str(path)
        out.append(
            InputSpectrum(
                name,
                where,
                energy,
                arr[idx],
                {**base, "index": list(idx)},
                f"measured spectrum {Path(where).name} ({what})",
            )
        )
    return out


def load_inputs(
    path: str | os.PathLike,
    energy_axis: np.ndarray | None = None,
    energy_unit: str = "eV",
    pixel: tuple[int, int] | None = None,
    roi: tuple[int, int, int, int] | None = None,
) -> list[InputSpectrum]:
    """All spectra in one file (several for .h5 datasets, arrays, line scans and spectrum images); raises
    naming the file.  ``pixel`` (x, y) / ``roi`` (x0, x1, y0, y1): which pixels of a spectrum image
    (:func:`array_inputs`; default every pixel).  ``.dm3``/``.dm4``/``.hspy`` are read through rosettasciio
    (:func:`s2s.io.eels.read_eels_file`, the ``s2s[eels]`` extra), energies from their calibration.

    ``energy_axis`` (L,): the energies of a ``.npy`` not on the model grid.  ``energy_unit``: ``"eV"``
    or ``"keV"``, the unit of the energies of two-column text files and of ``energy_axis``/a ``.npz``'s
    ``energy`` (EMSA files state theirs; CASTEP, GPAW and datasets are in eV).  A GPAW JSON gives
    its ``grid_spectrum`` (the sticks broadened as recorded), on the grid.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if energy_unit not in ENERGY_UNITS:
        raise ValueError(f"energy unit must be one of {', '.join(ENERGY_UNITS)}, got {energy_unit!r}")
    scale = ENERGY_UNITS[energy_unit]
    fmt = detect_format(p)
    if fmt == "array":
        if energy_axis is not None:
            energy_axis = np.asarray(energy_axis, dtype=np.float64) * scale
        arr = read_array(p, energy_axis)
        if p.suffix.lower() == ".npz" and arr.energy is not None and scale != 1.0:
            arr = arr._replace(energy=arr.energy * scale)
            check_energy_range(arr.energy, p)
        return array_inputs(p, arr.energy, arr.spectra, pixel=pixel, roi=roi)
    if fmt in ("dm", "hspy"):
        d = read_eels_file(p)
        what = "DigitalMicrograph" if fmt == "dm" else "HyperSpy"
        return array_inputs(p, d.energy, d.data, d.meta, pixel=pixel, roi=roi, what=what)
    if fmt == "dataset" and p.suffix.lower() in (".h5", ".hdf5"):
        try:
            ds = Dataset.load(p)
        except (ValueError, OSError, KeyError, TypeError) as exc:  # not HDF5, not the s2s layout
            if is_hyperspy_hdf5(p):  # a HyperSpy file saved as .hdf5 (HyperSpy < 1.2's suffix)
                d = read_eels_file(p, plugin="hspy")
                return array_inputs(p, d.energy, d.data, d.meta, pixel=pixel, roi=roi, what="HyperSpy")
            raise PredictInputError(p, str(exc).replace(f"{p}: ", "")) from None
        if len(ds) == 0:
            raise PredictInputError(p, "the dataset has no entries")
        return [
            InputSpectrum(
                f"{safe_name(p.stem)}/{safe_name(r.structure_id)}__site{r.site_index}",
                f"{p}[{i}]",
                None,
                r.spectrum.copy(),
                {"format": "dataset", "structure_id": r.structure_id, "site_index": r.site_index, "split": r.split},
                f"s2s dataset entry {i} of {p.name}: {r.structure_id} site {r.site_index}; calculated",
            )
            for i, r in enumerate(ds)
        ]
    raw = read_spectrum(p, format=fmt, energy_unit=energy_unit) if fmt == "text" else read_spectrum(p, format=fmt)
    meta = {k: v for k, v in raw.meta.items() if isinstance(v, (str, int, float, bool)) or v is None}
    fmt = raw.meta.get("format", fmt)
    grid = raw.meta.get("grid_spectrum")
    if fmt == "gpaw":
        mode = (raw.meta.get("settings") or {}).get("mode", "lcao")
        label = (
            f"GPAW first-principles O K-edge (PBE, half core hole, {mode}) of {raw.meta.get('structure_id', '?')} "
            f"site {raw.meta.get('site_index', '?')} ({p.name}); calculated, not measured"
        )
        if grid is not None:
            # GPAW JSON intensities are unbroadened sticks; its grid_spectrum is the broadened spectrum on the grid
            meta["used"] = "grid_spectrum (sticks broadened as recorded in settings.broadening)"
            return [InputSpectrum(safe_name(p.stem), str(p), None, np.asarray(grid, dtype=np.float64), meta, label)]
    elif fmt in CALCULATED_FORMATS:
        label = f"{'CASTEP ELNES' if fmt == 'castep' else 's2s dataset entry'} ({p.name}); calculated"
    else:
        label = f"measured spectrum {p.name} ({fmt})"
    return [InputSpectrum(safe_name(p.stem), str(p), raw.energy, raw.intensity, meta, label)]


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders replaced by their spectrum files (:func:`s2s.io.readers.spectrum_files`)."""
    out: list[Path] = []
    for q in map(Path, paths):
        out.extend(spectrum_files(q) if q.is_dir() else [q])
    return out


def collect_inputs(
    paths: Iterable[str | os.PathLike],
    energy_axis: np.ndarray | None = None,
    energy_unit: str = "eV",
    pixel: tuple[int, int] | None = None,
    roi: tuple[int, int, int, int] | None = None,
) -> tuple[list[InputSpectrum], list[InputError]]:
    """Read every input (:func:`load_inputs`, ``pixel``/``roi`` for spectrum images); unreadable ones become
    :class:`InputError` (message names the file) and the others go on.  Output names are made unique (a
    clash gets the parent folder's name prepended)."""
    spectra: list[InputSpectrum] = []
    errors: list[InputError] = []
    files: list[Path] = []
    for q in map(Path, paths):
        try:
            files.extend(expand_paths([q]))
        except OSError as exc:  # a folder without spectrum files, or one that cannot be listed
            errors.append(InputError(safe_name(q.name), str(q), with_file(str(exc), q)))
    for p in files:
        try:
            spectra.extend(load_inputs(p, energy_axis, energy_unit, pixel, roi))
        except (ValueError, OSError) as exc:
            errors.append(InputError(safe_name(p.stem), str(p), with_file(str(exc), p)))
        except MemoryError:
            errors.append(InputError(safe_name(p.stem), str(p), f"{p}: too large to read into memory"))
    seen: dict[str, int] = {}
    for s in spectra:
        n = seen.get(s.name, 0)
        seen[s.name] = n + 1
        if n:
            parent = safe_name(Path(s.source.split("[")[0]).parent.name)
            s.name = f"{parent}__{s.name}" if n == 1 else f"{parent}__{s.name}_{n}"
    return spectra, errors


def with_file(msg: str, path: str | os.PathLike) -> str:
    """``msg``, prefixed by ``path`` unless it names it already."""
    return msg if str(path) in msg else f"{path}: {msg}"


__all__ = [
    "CALCULATED_FORMATS",
    "ENERGY_UNITS",
    "InputError",
    "InputSpectrum",
    "PredictInputError",
    "SI_EVERY_PIXEL",
    "SI_PIXEL",
    "SI_ROI",
    "array_inputs",
    "collect_inputs",
    "expand_paths",
    "load_inputs",
    "parse_pixel",
    "parse_roi",
    "safe_name",
    "with_file",
]
