"""A spectrum file -> the model's input: the one road for foreign spectra (``s2s predict``,
``s2s sample --spectrum``, notebook 07, the transfer study).

1. **Read** (:func:`load_inputs`): any format of :mod:`s2s.io` (:func:`s2s.io.readers.read_spectrum`:
   two-column text/CSV in eV, EELS ``.msa``, CASTEP, GPAW JSON, an s2s dataset ``.h5`` - every
   entry), or a NumPy file (:func:`s2s.io.arrays.read_array`): ``.npy`` of shape (200,), (n, 200) or
   (ny, nx, 200) on the model grid (a STEM-EELS spectrum image), or any last-axis length with an
   energy axis (``energy_axis=``); ``.npz`` with arrays ``energy`` (L,) and ``spectra`` (..., L).
   One :class:`InputSpectrum` per spectrum.
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

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import gaussian_filter1d

from s2s.dataset import Dataset
from s2s.io.arrays import read_array
from s2s.io.eels import is_hyperspy_hdf5, read_eels_file
from s2s.io.raw import MIN_POINTS, SpectrumFileError, check_energy_range
from s2s.io.readers import detect_format, read_spectrum, spectrum_files
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
#: Formats holding calculated spectra (an :class:`InputSpectrum` of another format is "measured").
CALCULATED_FORMATS = ("gpaw", "castep", "dataset")
#: Energy units of the inputs (``--energy-unit``) and their factor to eV.
ENERGY_UNITS = {"eV": 1.0, "keV": 1000.0}
#: Finest uniform resampling (eV) of :func:`smooth` and :func:`steepest_rise` (bounds their arrays).
MIN_RESAMPLE_STEP_EV = 1e-3
#: ``renormalize=False``: a grid spectrum within this of unit area is used exactly as given.
UNIT_AREA_TOL = 1e-4


class PredictInputError(SpectrumFileError):
    """An input that cannot be used; the message names the file and the problem."""


# ----------------------------------------------------------------------------- inputs
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


#: How a spectrum image's pixels become inputs (``summary.json`` ``preprocessing.si_selection``).
SI_EVERY_PIXEL, SI_PIXEL, SI_ROI = "every pixel", "pixel", "roi (sum)"


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


def _array_inputs(
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
    (:func:`_array_inputs`; default every pixel).  ``.dm3``/``.dm4``/``.hspy`` are read through rosettasciio
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
        return _array_inputs(p, arr.energy, arr.spectra, pixel=pixel, roi=roi)
    if fmt in ("dm", "hspy"):
        d = read_eels_file(p)
        what = "DigitalMicrograph" if fmt == "dm" else "HyperSpy"
        return _array_inputs(p, d.energy, d.data, d.meta, pixel=pixel, roi=roi, what=what)
    if fmt == "dataset" and p.suffix.lower() in (".h5", ".hdf5"):
        try:
            ds = Dataset.load(p)
        except (ValueError, OSError, KeyError, TypeError) as exc:  # not HDF5, not the s2s layout
            if is_hyperspy_hdf5(p):  # a HyperSpy file saved as .hdf5 (HyperSpy < 1.2's suffix)
                d = read_eels_file(p, plugin="hspy")
                return _array_inputs(p, d.energy, d.data, d.meta, pixel=pixel, roi=roi, what="HyperSpy")
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


# ----------------------------------------------------------------------------- preparation
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
    absolute = lo >= ABSOLUTE_EV
    info["absolute_energies"] = absolute
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
    try:
        onset = onset_shift(e, y, fraction=ONSET_FRACTION, source=src)
    except SpectrumError as exc:
        raise PredictInputError(src, str(exc).replace(f"spectrum {src}: ", "")) from None
    info["onset_eV"] = onset
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
    info["shift_eV"] = float(s)
    try:
        if item.energy is None and s == 0.0 and smooth_eV == 0 and not background:
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
    if not force:
        info.update(check_shape(spec, src))
    return Prepared(spec, info, item)


__all__ = [
    "ABSOLUTE_EV",
    "ENERGY_UNITS",
    "MIN_RESAMPLE_STEP_EV",
    "CALCULATED_FORMATS",
    "MAX_ROUGHNESS",
    "MIN_ABOVE_ONSET_EV",
    "MIN_CONTRAST",
    "SI_EVERY_PIXEL",
    "SI_PIXEL",
    "SI_ROI",
    "O_K_WINDOW_EV",
    "ONSET_FRACTION",
    "UNIT_AREA_TOL",
    "InputError",
    "InputSpectrum",
    "PredictInputError",
    "Prepared",
    "broaden",
    "check_shape",
    "collect_inputs",
    "expand_paths",
    "load_inputs",
    "parse_pixel",
    "parse_roi",
    "prepare",
    "safe_name",
    "smooth",
    "steepest_rise",
    "subtract_background",
    "training_onset",
    "with_file",
]
