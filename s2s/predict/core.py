"""From a user's O K-edge spectrum to candidate local structures: ``s2s predict``.

Pipeline for each input spectrum (see ``docs/predict.md``):

1. **Read** any supported format (:func:`s2s.io.readers.read_spectrum`: two-column text/CSV in
   eV, EELS ``.msa``, CASTEP, GPAW JSON, an s2s dataset ``.h5`` - every entry), or a NumPy
   file: ``.npy`` of shape (200,), (n, 200) or (ny, nx, 200) on the model grid (a STEM-EELS
   spectrum image), or any last-axis length with an energy axis (``energy_axis=``); ``.npz``
   with arrays ``energy`` (L,) and ``spectra`` (..., L).
2. **Prepare** (:func:`prepare`): check that it looks like an O K-edge; optional pre-edge
   background subtraction (power law A E^-r fitted 3-25 eV below the onset, absolute
   energies) and Gaussian smoothing; **onset alignment** to the training convention; spline
   onto the 200-point grid, unit area.
3. **Generate** K candidates (:func:`s2s.model.sample.generate`): atom counts drawn from the
   model's p(N | spectrum) (or a fixed ``n_atoms``), the few-step DDIM sampler by default.
4. **Rank** (:func:`s2s.forward.selfconsistent.score_candidates`): the forward model
   (:mod:`s2s.forward.model`) predicts each candidate's spectrum; the MSE to the input spectrum (the
   template-matching metric) scores it, and the candidates are ranked best first (written in
   that order).  A candidate that cannot be scored (no atom besides the excited O, a non-finite
   coordinate) is reported by name in the warnings and left out; the others go on.
5. **Summarise** (:func:`s2s.evaluation.ensemble.summarize_ensemble`): distinct candidates clustered by
   shell composition with frequencies, CN per shell mean/std, Si-O distances and angles
   mean/std, ensemble spread; the nearest training environments (template matching,
   :func:`s2s.evaluation.template.nearest_by_mse`); the OOD score (:mod:`s2s.evaluation.ood`).
6. **Write** atomically, one folder per input spectrum: ``candidates.xyz`` (extended XYZ,
   excited O first, per-atom ``shell``), ``summary.json``, ``overview.png``.  The folder is
   built under a temporary name and renamed when complete, so it exists only when done;
   a re-run skips finished folders (resume).

Onset alignment (the training convention): the simulated training spectra have energy 0 at
the core-hole calculation's lowest unoccupied level; their edge onset, estimated by
:func:`s2s.spectrum.onset_shift` (first energy where the 0.3 eV-smoothed spectrum reaches 10 %
of its maximum), has a median ``E_train`` over the training split (about -0.5 eV).  A spectrum
in absolute energy loss (first energy >= 100 eV) is shifted by ``onset(spectrum) - E_train``
so that its onset lands where the training onsets lie (``shift="auto"`` or ``"onset"``);
a spectrum already relative to the onset (simulated, dataset, grid arrays) is used as is
(``"auto"``), unless ``"onset"`` forces the same alignment; a number is subtracted as given.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from s2s.environment import Environment
from s2s.io.readers import SpectrumFileError, read_spectrum
from s2s.spectrum import GRID, GRID_STEP, N_GRID, SpectrumError, normalize, onset_shift, spectrum_on_grid
from s2s.resources import default_path

DEFAULT_MODEL = default_path("model")
DEFAULT_DATA = default_path("data")
#: The forward model (environment -> spectrum) that ranks the candidates (docs/forward_model.md).
DEFAULT_FORWARD = default_path("forward")
#: Predicted spectra of this many top-ranked candidates are drawn in the overview.
N_OVERLAY = 3
#: Sampler and step count for predict, chosen from benchmarks/bench_steps.py (docs/predict.md).
DEFAULT_SAMPLER = "ddim"
DEFAULT_STEPS = 50
DEFAULT_N_SAMPLES = 16
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
#: Input files taken from a folder (by suffix).
SUPPORTED_SUFFIXES = (".txt", ".csv", ".dat", ".tsv", ".msa", ".ems", ".emsa", ".json", ".h5", ".hdf5", ".npy", ".npz", ".bands", ".eels_mat")
#: Files written per spectrum.
XYZ, SUMMARY, OVERVIEW = "candidates.xyz", "summary.json", "overview.png"


class PredictInputError(SpectrumFileError):
    """An input that cannot be used; the message names the file and the problem."""


# ----------------------------------------------------------------------------- inputs
@dataclass
class InputSpectrum:
    """One spectrum to predict for: raw (energy, intensity) or already on the grid."""

    name: str  # output folder name (relative, may contain one '/' for spectrum images)
    source: str  # file (and entry) it came from
    energy: np.ndarray | None  # eV; None when ``intensity`` is on GRID already
    intensity: np.ndarray
    meta: dict = field(default_factory=dict)


@dataclass
class InputError:
    name: str
    source: str
    message: str


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_.+=" else "_" for c in name)
    return keep.strip("._") or "spectrum"


def _array_inputs(path: Path, arr: np.ndarray, energy: np.ndarray | None) -> list[InputSpectrum]:
    stem = _safe(path.stem)
    if not np.issubdtype(arr.dtype, np.number):
        raise PredictInputError(path, f"array of {arr.dtype}, expected numbers")
    arr = np.asarray(arr, dtype=np.float64)
    length = arr.shape[-1] if arr.ndim else 0
    if energy is None and length != N_GRID:
        raise PredictInputError(
            path, f"last axis has {length} points; a spectrum array without an energy axis must be on the "
            f"model grid ({N_GRID} points, {GRID[0]:.1f}..{GRID[-1]:.1f} eV): give an energy axis (.npz 'energy' or --energy-axis)")
    if energy is not None and (energy.ndim != 1 or energy.size != length):
        raise PredictInputError(path, f"energy axis has shape {energy.shape}, spectra have {length} points in the last axis")
    if arr.ndim not in (1, 2, 3):
        raise PredictInputError(path, f"array of shape {arr.shape}; expected (L,), (n, L) or a spectrum image (ny, nx, L)")
    out = []
    if arr.ndim == 1:
        items = [((), stem)]
    elif arr.ndim == 2:
        items = [((i,), f"{stem}/i{i:04d}") for i in range(arr.shape[0])]
    else:
        items = [((iy, ix), f"{stem}/y{iy:03d}_x{ix:03d}") for iy in range(arr.shape[0]) for ix in range(arr.shape[1])]
    for idx, name in items:
        where = f"{path}[{', '.join(map(str, idx))}]" if idx else str(path)
        out.append(InputSpectrum(name, where, None if energy is None else energy, arr[idx], {"index": list(idx), "array_shape": list(arr.shape)}))
    return out


def load_inputs(path: str | os.PathLike, energy_axis: np.ndarray | None = None) -> list[InputSpectrum]:
    """All spectra in one file (several for .h5 datasets and arrays); raises naming the file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    suf = p.suffix.lower()
    if suf == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise PredictInputError(p, f"not a readable .npy array ({exc})") from None
        return _array_inputs(p, arr, None if energy_axis is None else np.asarray(energy_axis, dtype=np.float64))
    if suf == ".npz":
        try:
            z = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise PredictInputError(p, f"not a readable .npz archive ({exc})") from None
        key = next((k for k in ("spectra", "data", "intensity") if k in z.files), None)
        if key is None or "energy" not in z.files:
            raise PredictInputError(p, f"a .npz needs arrays 'energy' (L,) and 'spectra' (..., L); found {sorted(z.files)}")
        return _array_inputs(p, z[key], np.asarray(z["energy"], dtype=np.float64))
    if suf in (".h5", ".hdf5"):
        from s2s.dataset import Dataset

        ds = Dataset.load(p)
        if len(ds) == 0:
            raise PredictInputError(p, "the dataset has no entries")
        return [InputSpectrum(f"{_safe(p.stem)}/{_safe(r.structure_id)}__site{r.site_index}", f"{p}[{i}]", None, r.spectrum.copy(),
                              {"format": "dataset", "structure_id": r.structure_id, "site_index": r.site_index, "split": r.split})
                for i, r in enumerate(ds)]
    raw = read_spectrum(p)
    meta = {k: v for k, v in raw.meta.items() if isinstance(v, (str, int, float, bool)) or v is None}
    grid = raw.meta.get("grid_spectrum")
    if raw.meta.get("format") == "gpaw" and grid is not None:
        # GPAW JSON intensities are unbroadened sticks; its grid_spectrum is the broadened spectrum on the grid
        meta["used"] = "grid_spectrum (sticks broadened as recorded in settings.broadening)"
        return [InputSpectrum(_safe(p.stem), str(p), None, np.asarray(grid, dtype=np.float64), meta)]
    return [InputSpectrum(_safe(p.stem), str(p), raw.energy, raw.intensity, meta)]


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders replaced by their supported files (sorted, not recursive)."""
    out: list[Path] = []
    for q in map(Path, paths):
        if q.is_dir():
            files = sorted(f for f in q.iterdir() if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES and not f.name.startswith("."))
            if not files:
                raise FileNotFoundError(f"{q}: folder has no spectrum files ({', '.join(SUPPORTED_SUFFIXES)})")
            out.extend(files)
        else:
            out.append(q)
    return out


def collect_inputs(paths: Iterable[str | os.PathLike], energy_axis: np.ndarray | None = None) -> tuple[list[InputSpectrum], list[InputError]]:
    """Read every input; unreadable ones become :class:`InputError` (message names the file).
    Output names are made unique (a clash gets the parent folder's name prepended)."""
    spectra: list[InputSpectrum] = []
    errors: list[InputError] = []
    for p in expand_paths(paths):
        try:
            spectra.extend(load_inputs(p, energy_axis))
        except (ValueError, FileNotFoundError) as exc:
            errors.append(InputError(_safe(p.stem), str(p), _with_file(str(exc), p)))
    seen: dict[str, int] = {}
    for s in spectra:
        n = seen.get(s.name, 0)
        seen[s.name] = n + 1
        if n:
            parent = _safe(Path(s.source.split("[")[0]).parent.name)
            s.name = f"{parent}__{s.name}" if n == 1 else f"{parent}__{s.name}_{n}"
    return spectra, errors


def _with_file(msg: str, path: str | os.PathLike) -> str:
    return msg if str(path) in msg else f"{path}: {msg}"


# ----------------------------------------------------------------------------- preparation
def training_onset(train_spectra: np.ndarray) -> float:
    """Median onset (eV, :func:`s2s.spectrum.onset_shift`) of grid spectra (the training convention)."""
    return float(np.median([onset_shift(GRID, s) for s in np.atleast_2d(train_spectra)]))


def subtract_background(energy: np.ndarray, intensity: np.ndarray, onset: float, source: str,
                        window: tuple[float, float] = (25.0, 3.0)) -> np.ndarray:
    """Subtract a pre-edge background fitted ``window`` = (25, 3) eV below ``onset``.

    Absolute energies (> 0 eV everywhere in the window): power law A E^-r (fit of log I vs
    log E), the standard EELS background model; otherwise a constant (the pre-edge mean).
    Needs >= 5 pre-edge points; negative results are clipped to 0.
    """
    lo, hi = onset - window[0], onset - window[1]
    sel = (energy >= lo) & (energy <= hi)
    if sel.sum() < 5:
        raise PredictInputError(source, f"background subtraction needs pre-edge data: at least 5 points between {lo:.1f} and "
                                f"{hi:.1f} eV (onset {onset:.1f} eV), found {int(sel.sum())}; omit --background")
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
    step = float(np.median(np.diff(energy)))
    e = np.arange(energy[0], energy[-1] + 0.5 * step, step)
    y = np.interp(e, energy, intensity)
    return e, gaussian_filter1d(y, sigma_eV / step, mode="nearest")


def steepest_rise(energy: np.ndarray, intensity: np.ndarray, sigma_eV: float = 0.5) -> float:
    """Energy (eV) of the largest slope of the spectrum smoothed by ``sigma_eV`` (a robust edge
    position even on a falling background)."""
    step = max(float(np.median(np.diff(energy))), 1e-3)
    e = np.arange(energy[0], energy[-1] + 0.5 * step, step)
    y = gaussian_filter1d(np.interp(e, energy, intensity), max(sigma_eV / step, 0.5), mode="nearest")
    return float(e[int(np.argmax(np.gradient(y, e)))])


@dataclass
class Prepared:
    spectrum: np.ndarray  # (200,) on GRID, unit area
    info: dict  # what was done: shift, onset, background, smoothing


def check_shape(spectrum: np.ndarray, source: str) -> dict:
    """Refuse grid spectra without O K-edge structure: flat (peak-to-mean ratio below
    :data:`MIN_CONTRAST`) or noise-like (roughness above :data:`MAX_ROUGHNESS`)."""
    sm = gaussian_filter1d(spectrum, 0.3 / GRID_STEP, mode="nearest")
    contrast = float(sm.max() / spectrum.mean())
    rough = float(np.abs(spectrum - gaussian_filter1d(spectrum, 2, mode="nearest")).mean() / spectrum.mean())
    if contrast < MIN_CONTRAST:
        raise PredictInputError(source, f"does not look like an O K-edge: nearly flat on the grid (peak-to-mean ratio "
                                f"{contrast:.2f}, training spectra >= 1.4); check the energy axis and onset, or pass --force")
    if rough > MAX_ROUGHNESS:
        raise PredictInputError(source, f"does not look like an O K-edge: noise-like (roughness {rough:.2f}, training spectra "
                                f"<= 0.03); smooth it (--smooth 0.3) or pass --force")
    return {"contrast": contrast, "roughness": rough}


def prepare(item: InputSpectrum, train_onset: float, shift: str | float = "auto", background: bool = False,
            smooth_eV: float = 0.0, force: bool = False) -> Prepared:
    """Check, clean and align one input onto the model grid (module docstring); raises
    :class:`PredictInputError` naming the source and the problem.  ``force`` skips the
    O K-edge plausibility checks (onset window, flat/noise-like shape)."""
    src = item.source
    info: dict[str, Any] = {"train_onset_eV": train_onset, "background": bool(background), "smooth_eV": float(smooth_eV)}
    y = np.asarray(item.intensity, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        bad = np.flatnonzero(~np.isfinite(y))
        raise PredictInputError(src, f"intensity has NaN/inf values ({bad.size} of {y.size}, first at point {bad[0]})")
    if item.energy is None:  # on the grid already
        e = GRID.astype(np.float64)
        info["input"] = "grid"
    else:
        e = np.asarray(item.energy, dtype=np.float64)
        info["input"] = "energy axis"
        if not np.all(np.isfinite(e)):
            raise PredictInputError(src, "energy axis has NaN/inf values")
        if e.size > 1 and np.all(np.diff(e) < 0):
            e, y = e[::-1].copy(), y[::-1].copy()
    if not np.any(y > 0):
        raise PredictInputError(src, "intensity is zero (or negative) everywhere: no spectrum")
    lo, hi = float(e[0]), float(e[-1])
    if 0.3 <= lo and hi <= 1.5:
        raise PredictInputError(src, f"energies {lo:.4g}..{hi:.4g} look like keV (the O K-edge is at ~0.53 keV); give energies in eV")
    absolute = lo >= ABSOLUTE_EV
    info["absolute_energies"] = absolute
    if smooth_eV > 0:
        e, y = smooth(e, y, smooth_eV)
    if absolute:
        edge = steepest_rise(e, y)
        info["steepest_rise_eV"] = edge
        if not force and not O_K_WINDOW_EV[0] <= edge <= O_K_WINDOW_EV[1]:
            raise PredictInputError(src, f"the edge (steepest rise) is at {edge:.1f} eV: not an O K-edge (expected "
                                    f"{O_K_WINDOW_EV[0]:.0f}-{O_K_WINDOW_EV[1]:.0f} eV; C K is at ~284, N K ~401, Si L ~100 eV)")
        if background:
            y = subtract_background(e, y, edge, src)
    elif background:
        info["background"] = "skipped: energies relative to the onset (simulated or grid spectra carry no pre-edge background)"
    try:
        onset = onset_shift(e, y, source=src)
    except SpectrumError as exc:
        raise PredictInputError(src, str(exc).replace(f"spectrum {src}: ", "")) from None
    info["onset_eV"] = onset
    if absolute:
        if onset - e[0] < 1.0:
            raise PredictInputError(src, f"no rising edge: the intensity is already >= 10 % of its maximum within 1 eV of the first "
                                    f"energy ({e[0]:.1f} eV); a background-dominated spectrum? try --background, or include pre-edge data")
        if not force and not O_K_WINDOW_EV[0] <= onset <= O_K_WINDOW_EV[1]:
            raise PredictInputError(src, f"edge onset at {onset:.1f} eV: not an O K-edge (expected {O_K_WINDOW_EV[0]:.0f}-"
                                    f"{O_K_WINDOW_EV[1]:.0f} eV)")
    if hi - onset < MIN_ABOVE_ONSET_EV:
        raise PredictInputError(src, f"the data end {hi - onset:.1f} eV above the edge onset ({onset:.1f} eV); need at least "
                                f"{MIN_ABOVE_ONSET_EV:.0f} eV of near-edge structure")
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
            spec = normalize(np.clip(y, 0.0, None), source=src)
        else:
            spec = spectrum_on_grid(e, y, source=src, shift_eV=s)
    except SpectrumError as exc:
        raise PredictInputError(src, str(exc).replace(f"spectrum {src}: ", "")) from None
    if not force:
        info.update(check_shape(spec, src))
    return Prepared(spec, info)


# ----------------------------------------------------------------------------- context
@dataclass
class PredictContext:
    """Everything loaded once: the model and the training reference (template matching, OOD, onset)."""

    model: Any
    model_path: Path
    model_sha256: str
    train_spectra: np.ndarray
    train_envs: list[Environment]
    train_meta: list[dict]
    ood: Any
    train_onset: float
    forward: Any = None  # s2s.forward.model.ForwardModel ranking the candidates, or None (no ranking)
    forward_path: Path | None = None
    forward_sha256: str | None = None

    @classmethod
    def load(cls, model_path: str | os.PathLike = DEFAULT_MODEL, data_path: str | os.PathLike = DEFAULT_DATA,
             forward_path: str | os.PathLike | None = DEFAULT_FORWARD) -> "PredictContext":
        """Load the generator, the training reference and (unless ``forward_path`` is None) the
        forward model that ranks the candidates; a missing forward model file is an error naming it."""
        from s2s.dataset import Dataset
        from s2s.files import file_sha256
        from s2s.evaluation.ood import OODScorer
        from s2s.model.train import load_model

        model_path, data_path = Path(model_path), Path(data_path)
        model = load_model(model_path)
        if not data_path.exists():
            raise FileNotFoundError(f"{data_path}: training dataset not found (needed for template matching, the OOD score and the onset convention); pass --data")
        train = Dataset.load(data_path).train
        if len(train) == 0:
            raise ValueError(f"{data_path}: no training records")
        spectra = train.spectra()
        groups = [r.structure_id for r in train]
        k = min(5, len(set(groups)) - 1)
        forward = None
        if forward_path is not None:
            from s2s.forward.model import ForwardModel

            forward_path = Path(forward_path)
            if not forward_path.exists():
                raise FileNotFoundError(f"{forward_path}: forward model not found (ranks the candidates); train one with "
                                        "'s2s train-forward' or pass --no-rank")
            forward = ForwardModel.load(forward_path)
        return cls(
            model=model, model_path=model_path, model_sha256=file_sha256(model_path), train_spectra=spectra,
            train_envs=train.environments(),
            train_meta=[{"structure_id": r.structure_id, "site_index": r.site_index, "formula": r.formula} for r in train],
            ood=OODScorer.fit(spectra, groups, k=k), train_onset=training_onset(spectra), forward=forward,
            forward_path=forward_path, forward_sha256=None if forward is None else file_sha256(forward_path),
        )


# ----------------------------------------------------------------------------- one spectrum
@dataclass
class Prediction:
    name: str
    spectrum: np.ndarray
    candidates: list[Environment]
    summary: dict
    predicted: np.ndarray | None = None  # (K, 200) forward-model spectra of the candidates (ranked order), or None


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def nearest_training(ctx: PredictContext, spectrum: np.ndarray, representative: Environment, k: int = 3) -> list[dict]:
    """The ``k`` training sites with the closest spectra (MSE), what template matching answers,
    with their first-shell label, CN and the aligned RMSD (Å) of ``representative`` to them."""
    from s2s.evaluation.align import align
    from s2s.evaluation.ensemble import shells, signature
    from s2s.evaluation.metrics import coordination_numbers
    from s2s.evaluation.template import nearest_by_mse

    k = min(k, len(ctx.train_spectra))
    idx, mse = nearest_by_mse(spectrum[None, :], ctx.train_spectra, k=k)
    idx, mse = np.atleast_1d(np.asarray(idx).reshape(-1)), np.atleast_1d(np.asarray(mse).reshape(-1))
    out = []
    for i, m in zip(idx, mse):
        env = ctx.train_envs[int(i)]
        out.append({**ctx.train_meta[int(i)], "train_index": int(i), "spectrum_mse": float(m),
                    "spectrum_rms": float(np.sqrt(m)), "signature": signature(env),
                    "cn": coordination_numbers(shells(env)).tolist(), "n_atoms": env.n_atoms,
                    "rmsd_to_top_candidate": float(align(env, representative, method="paper").rmsd)})
    return out


def predict_one(ctx: PredictContext, name: str, spectrum: np.ndarray, *, n_samples: int = DEFAULT_N_SAMPLES,
                steps: int | None = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER, eta: float = 0.0, seed: int = 0,
                n_atoms: int | None = None, prep_info: dict | None = None, source: str = "") -> Prediction:
    """K candidates and their summary for one grid spectrum (200,)."""
    import torch

    from s2s.evaluation.align import align
    from s2s.evaluation.ensemble import summarize_ensemble

    spec = np.asarray(spectrum, dtype=np.float64)
    counts = None if n_atoms is None else [int(n_atoms)]
    envs = generate_grouped(ctx.model, spec[None, :], counts, n_samples=n_samples, seed=seed, n_steps=steps,
                            sampler=sampler, eta=eta)[0]
    envs, ranking, predicted = rank_candidates(ctx, name, spec, envs)
    ens = summarize_ensemble(envs)
    top = ens["clusters"][0]
    rep = envs[top["representative"]]
    # rotate every candidate onto the top cluster's representative, so the XYZ frames overlay
    aligned = []
    for i, e in enumerate(envs):
        if i == top["representative"]:
            aligned.append(Environment(e.species, e.coords, e.shell, dict(e.meta)))
            continue
        a = align(rep, e, method="paper")
        aligned.append(Environment(e.species, a.generated_rotated, e.shell, dict(e.meta)))
    probs = ctx.model.natoms.probabilities(torch.as_tensor(spec[None, :], dtype=torch.float32))[0].numpy()
    top_n = np.argsort(probs)[::-1][:3]
    ood = ctx.ood.describe(spec)
    if ranking is not None:
        for c in ens["clusters"]:
            best = min(c["members"], key=lambda i: (ranking["candidates"][i]["spectrum_mse"], i))
            c["best_member"], c["spectrum_mse_best"] = int(best), ranking["candidates"][best]["spectrum_mse"]
        for i, c in enumerate(ranking["candidates"]):
            c["signature"] = ens["signatures"][i]
            c["cluster"] = next(cl["label"] for cl in ens["clusters"] if i in cl["members"])
    summary = {
        "name": name,
        "source": source,
        "preprocessing": prep_info or {},
        "sampling": {"model": str(ctx.model_path), "model_sha256": ctx.model_sha256, "sampler": sampler, "eta": eta,
                     "steps": steps, "seed": seed, "n_samples": n_samples,
                     "n_atoms": "p(N | spectrum)" if n_atoms is None else int(n_atoms),
                     "p_n_atoms_top3": {str(int(i) + 1): float(probs[i]) for i in top_n}},
        "ood": ood,
        "candidates": {k: v for k, v in ens.items() if k not in ("pairwise_rmsd",)},
        "nearest_training": nearest_training(ctx, spec, rep),
        "spectrum_grid_eV": [float(GRID[0]), float(GRID_STEP), N_GRID],
        "ranking": ranking,
    }
    warnings = [w for w in [ood["warning"]] if w]
    if ranking is not None:
        warnings += [e["message"] for e in ranking["errors"]]
    if top["frequency"] < 0.5:
        warnings.append(f"no dominant candidate: the most frequent one ({top['label']}) has only "
                        f"{top['frequency']:.0%} of the samples")
    summary["warnings"] = warnings
    return Prediction(name, spec, aligned, _jsonable(summary), predicted)


def rank_candidates(ctx: PredictContext, name: str, spectrum: np.ndarray, envs: list[Environment]
                    ) -> tuple[list[Environment], dict | None, np.ndarray | None]:
    """Rank generated candidates by the forward model (module docstring, step 4).

    Returns the candidates to keep, best first (each ``meta["draw"]`` = its index in the
    generation order), the ``ranking`` dict for summary.json (None without a forward model:
    the candidates are returned as drawn) and their predicted spectra (K_kept, 200).  Candidates
    that cannot be scored are left out and listed under ``ranking["errors"]`` with a message
    naming them (``<name>: candidate <draw>``).
    """
    from s2s.forward.selfconsistent import score_candidates

    for i, e in enumerate(envs):
        e.meta["draw"] = i
    if ctx.forward is None:
        return envs, None, None
    sc = score_candidates(ctx.forward, spectrum, envs, [f"{name}: candidate {i}" for i in range(len(envs))])
    keep = [int(i) for i in sc.order if int(i) not in sc.errors]
    if not keep:
        raise ValueError(f"{name}: none of the {len(envs)} candidates could be scored: " + "; ".join(sc.errors.values()))
    ranking = {
        "metric": "MSE of the forward model's spectrum of the candidate to the input spectrum over the 200-point grid "
                  "(unit-area intensity^2; the template-matching metric); lower is better; candidates failing the geometric check "
                  "(s2s.forward.selfconsistent.physical_problems) come after the plausible ones; written best first",
        "forward_model": str(ctx.forward_path), "forward_model_sha256": ctx.forward_sha256,
        "candidates": [{"rank": r, "draw": i, "spectrum_mse": float(sc.scores[i]), "plausible": not sc.problems[i],
                        "problems": sc.problems[i]} for r, i in enumerate(keep)],
        "errors": [{"draw": int(i), "message": msg} for i, msg in sorted(sc.errors.items())],
    }
    return [envs[i] for i in keep], ranking, sc.predicted[keep]


def read_prediction(folder: str | os.PathLike) -> tuple[list[Environment], dict]:
    """Read one output folder of ``s2s predict``: the candidates (extended XYZ, in file order) and
    summary.json.  Folders written before the ranking existed load too (``summary.get("ranking")``
    is then None and the candidates are in generation order)."""
    import json

    from s2s.io import read_extxyz

    folder = Path(folder)
    for f in (XYZ, SUMMARY):
        if not (folder / f).exists():
            raise FileNotFoundError(f"{folder / f}: missing (not an s2s predict output folder?)")
    try:
        summary = json.loads((folder / SUMMARY).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{folder / SUMMARY}: not valid JSON ({exc})") from None
    summary.setdefault("ranking", None)
    return read_extxyz(folder / XYZ), summary


def generate_grouped(model, spectra: np.ndarray, counts: Sequence[int] | None, *, n_samples: int = 1, seed: int = 0,
                     batch_size: int = 64, **kwargs) -> list[list[Environment]]:
    """:func:`s2s.model.sample.generate` with graphs batched by atom count (padding a batch to its
    largest graph costs O(N_max^2) per graph, so one 51-atom graph among 15-atom ones would
    slow the whole batch ~10x).  ``counts=None`` draws every sample's N from p(N | s) first
    (seeded).  Returns per spectrum the ``n_samples`` environments, in input order.
    Deterministic for a given seed (a different stream than a plain ``generate`` call)."""
    import torch

    from s2s.model.sample import generate

    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float32))
    m = spectra.shape[0]
    if counts is None:
        g = torch.Generator().manual_seed(seed)
        spec_t = torch.as_tensor(spectra).repeat_interleave(n_samples, dim=0)
        n = model.natoms.predict(spec_t, mode="sample", generator=g).numpy()
    else:
        n = np.repeat(np.asarray(counts, dtype=np.int64), n_samples)
    owner = np.repeat(np.arange(m), n_samples)
    out: list[list[Environment | None]] = [[None] * n_samples for _ in range(m)]
    slot = np.tile(np.arange(n_samples), m)
    for size in np.unique(n):
        idx = np.flatnonzero(n == size)
        envs = generate(model, spectra[owner[idx]], [int(size)] * idx.size, n_samples=1, seed=seed + 7919 * int(size),
                        batch_size=batch_size, **kwargs)
        for i, e in zip(idx, envs):
            out[owner[i]][slot[i]] = e[0]
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------- writing
def overview_figure(pred: Prediction, ctx: PredictContext):
    """A 2x4 PNG overview: spectrum with its nearest training spectra, the top candidate in 3-D,
    the input spectrum with the forward-model spectra of the top-ranked candidates (legend: MSE),
    CN per shell, Si-O distances, angles, cluster frequencies, the best-ranked candidate in 3-D."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from s2s.evaluation.ensemble import geometry, shells
    from s2s.evaluation.metrics import coordination_numbers
    from s2s.plots import plot_environment, style

    s = pred.summary
    with style():
        fig = plt.figure(figsize=(18.0, 8.0))
        ax = fig.add_subplot(2, 4, 1)
        ax.plot(GRID, pred.spectrum, color="k", lw=1.6, label="input (aligned)")
        for j, nt in enumerate(s["nearest_training"]):
            ax.plot(GRID, ctx.train_spectra[nt["train_index"]], lw=0.9, ls="--",
                    label=f"{nt['structure_id']} site {nt['site_index']} ({nt['signature']})")
        o = s["ood"]
        ax.set_title(f"OOD percentile {o['percentile']:.0f}" + ("  [FLAGGED]" if o["flag"] else ""), fontsize=9)
        ax.set_xlabel("Energy relative to onset convention (eV)")
        ax.set_ylabel("Intensity (unit area)")
        ax.legend(fontsize=6)
        top = s["candidates"]["clusters"][0]
        ax3 = fig.add_subplot(2, 4, 2, projection="3d")
        plot_environment(pred.candidates[top["representative"]], ax=ax3,
                         title=f"most frequent candidate {top['label']} ({top['frequency']:.0%})")
        ax = fig.add_subplot(2, 4, 3)
        rk = s.get("ranking")
        ax.plot(GRID, pred.spectrum, color="k", lw=1.8, label="input (aligned)")
        if rk and pred.predicted is not None:
            for j in range(min(N_OVERLAY, len(pred.candidates))):
                c = rk["candidates"][j]
                ax.plot(GRID, pred.predicted[j], lw=1.0, label=f"#{j + 1} {c['signature']}: MSE {c['spectrum_mse']:.2e}")
            worst = rk["candidates"][-1]
            ax.set_title(f"self-consistency: forward model of the top {min(N_OVERLAY, len(pred.candidates))} "
                         f"(worst #{len(rk['candidates'])}: {worst['spectrum_mse']:.2e})", fontsize=8)
        else:
            ax.set_title("self-consistency: no forward model (ranking off)", fontsize=8)
        ax.set_xlabel("Energy relative to onset convention (eV)")
        ax.set_ylabel("Intensity (unit area)")
        ax.legend(fontsize=6)
        ax = fig.add_subplot(2, 4, 4)
        cns = np.array([coordination_numbers(shells(e)) for e in pred.candidates])
        width = 0.27
        allv = np.unique(cns)
        for k in range(cns.shape[1]):
            cnt = np.array([np.sum(cns[:, k] == v) for v in allv]) / len(cns)
            ax.bar(np.arange(len(allv)) + (k - 1) * width, cnt, width, label=f"shell {k + 1}")
        ax.set_xticks(np.arange(len(allv)), [str(v) for v in allv])
        ax.set_xlabel("coordination number")
        ax.set_ylabel("share of candidates")
        ax.legend(fontsize=7)
        geo = [geometry(e) for e in pred.candidates]
        ax = fig.add_subplot(2, 4, 5)
        for key, lab in (("d_sio", "all Si-O bonds"), ("d_sio_first", "Si-O* (first shell)")):
            v = np.concatenate([g[key] for g in geo])
            if v.size:
                ax.hist(v, bins=np.linspace(1.3, 2.0, 36), alpha=0.6, label=f"{lab}: {v.mean():.3f}±{v.std():.3f} Å")
        ax.set_xlabel("distance (Å)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no Si-O bonds (<= 2.0 Å)", ha="center", transform=ax.transAxes)
        ax = fig.add_subplot(2, 4, 6)
        for key, lab in (("a_osio", "O-Si-O"), ("a_siosi", "Si-O-Si")):
            v = np.concatenate([g[key] for g in geo])
            if v.size:
                ax.hist(v, bins=np.linspace(60, 180, 41), alpha=0.6, label=f"{lab}: {v.mean():.1f}±{v.std():.1f}°")
        ax.set_xlabel("angle (degrees)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no bond angles", ha="center", transform=ax.transAxes)
        ax = fig.add_subplot(2, 4, 7)
        cl = s["candidates"]["clusters"][:8]
        ax.barh(np.arange(len(cl))[::-1], [c["frequency"] for c in cl], color="0.5")
        ax.set_yticks(np.arange(len(cl))[::-1], [c["label"] + (f"  (best MSE {c['spectrum_mse_best']:.1e})" if "spectrum_mse_best" in c else "")
                                                 for c in cl], fontsize=7)
        ax.set_xlabel("frequency (shell composition 1|2|3)")
        ax3 = fig.add_subplot(2, 4, 8, projection="3d")
        if rk:
            plot_environment(pred.candidates[0], ax=ax3, title=f"best ranked: {rk['candidates'][0]['signature']}\n"
                             f"MSE {rk['candidates'][0]['spectrum_mse']:.2e}")
        else:
            ax3.set_axis_off()
        fig.suptitle(f"{pred.name}: {s['candidates']['n_samples']} candidates, {s['sampling']['sampler']} "
                     f"{s['sampling']['steps']} steps", fontsize=10)
        fig.tight_layout()
    return fig


def write_prediction(out_dir: Path, pred: Prediction, ctx: PredictContext, png: bool = True) -> Path:
    """Write ``out_dir/<name>/`` (XYZ, JSON, PNG) atomically: built as a hidden temporary
    folder next to it and renamed into place; returns the final folder."""
    import matplotlib.pyplot as plt

    from s2s.files import write_json
    from s2s.io import write_extxyz

    final = Path(out_dir) / pred.name
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        sig = pred.summary["candidates"]["signatures"]
        rk = (pred.summary.get("ranking") or {}).get("candidates")
        comments = [f"sample={i} n_atoms={e.n_atoms} signature={sig[i]} source={_safe(pred.name)}"
                    + (f" rank={rk[i]['rank']} draw={rk[i]['draw']} spectrum_mse={rk[i]['spectrum_mse']:.6e}" if rk else "")
                    for i, e in enumerate(pred.candidates)]
        write_extxyz(tmp / XYZ, pred.candidates, comments)
        if png:
            fig = overview_figure(pred, ctx)
            fig.savefig(tmp / OVERVIEW, dpi=110)
            plt.close(fig)
        write_json(tmp / SUMMARY, pred.summary)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_done(out_dir: Path, name: str) -> bool:
    return (Path(out_dir) / name / SUMMARY).exists()


# ----------------------------------------------------------------------------- batch
@dataclass
class BatchReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


def run_batch(ctx: PredictContext, inputs: Sequence[InputSpectrum], out_dir: Path, *, shift: str | float = "auto",
              background: bool = False, smooth_eV: float = 0.0, force: bool = False, resume: bool = True,
              progress: bool = True, png: bool = True, **predict_kwargs) -> BatchReport:
    """Predict for every input with a progress bar; bad inputs are reported (nothing written
    for them) and the others go on; finished outputs are skipped when ``resume``."""
    from tqdm.auto import tqdm

    rep = BatchReport()
    for item in tqdm(inputs, desc="predict", unit="spectrum", disable=not progress):
        if resume and is_done(out_dir, item.name):
            rep.skipped.append(item.name)
            continue
        try:
            prep = prepare(item, ctx.train_onset, shift=shift, background=background, smooth_eV=smooth_eV, force=force)
            pred = predict_one(ctx, item.name, prep.spectrum, prep_info={**prep.info, **{k: v for k, v in item.meta.items()
                               if isinstance(v, (str, int, float, bool, list)) or v is None}}, source=item.source, **predict_kwargs)
            write_prediction(out_dir, pred, ctx, png=png)
            rep.done.append(item.name)
        except (SpectrumError, ValueError) as exc:
            rep.errors.append(InputError(item.name, item.source, _with_file(str(exc), item.source)))
    _write_maps(out_dir, inputs)
    return rep


def _write_maps(out_dir: Path, inputs: Sequence[InputSpectrum]) -> None:
    """For spectrum images, once every pixel is done: ``<stem>/maps.npz`` with per-pixel CN1
    mean/std, mean pairwise RMSD, OOD percentile and flag (NaN where a pixel failed)."""
    import json

    images: dict[str, list[InputSpectrum]] = {}
    for it in inputs:
        if len(it.meta.get("index", [])) == 2:
            images.setdefault(it.name.split("/")[0], []).append(it)
    for stem, items in images.items():
        ny, nx = items[0].meta["array_shape"][:2]
        if not any(is_done(out_dir, it.name) for it in items):
            continue
        keys = ("cn1_mean", "cn1_std", "cn2_mean", "mean_pairwise_distance", "ood_percentile", "ood_flag", "top_frequency")
        maps = {k: np.full((ny, nx), np.nan) for k in keys}
        for it in items:
            f = Path(out_dir) / it.name / SUMMARY
            if not f.exists():
                continue
            s = json.loads(f.read_text())
            iy, ix = it.meta["index"]
            c = s["candidates"]
            vals = (c["cn"]["shell1"]["mean"], c["cn"]["shell1"]["std"], c["cn"]["shell2"]["mean"], c["spread"]["mean_pairwise_distance"],
                    s["ood"]["percentile"], float(s["ood"]["flag"]), c["clusters"][0]["frequency"])
            for k, v in zip(keys, vals):
                maps[k][iy, ix] = np.nan if v is None else v
        path = Path(out_dir) / stem / "maps.npz"
        tmp = path.with_name(f".maps.{os.getpid()}.tmp.npz")
        np.savez(tmp, **maps)
        os.replace(tmp, path)


__all__ = [
    "InputSpectrum", "InputError", "PredictInputError", "load_inputs", "collect_inputs", "expand_paths", "prepare",
    "training_onset", "subtract_background", "smooth", "PredictContext", "predict_one", "Prediction",
    "write_prediction", "run_batch", "BatchReport", "overview_figure", "DEFAULT_STEPS", "DEFAULT_SAMPLER",
    "rank_candidates", "read_prediction", "DEFAULT_FORWARD",
]
