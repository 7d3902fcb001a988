"""Foreign spectra fed to the model (notebook 07, paper Fig. 7): a calculated reference or a
measured spectrum, read onto the grid and compared with a reference environment.

* :func:`load_input_spectrum` - a spectrum file through :mod:`s2s.io.readers` onto the model's
  grid, with a label saying what it is (calculated GPAW reference vs measured file).
* :func:`broaden` - extra Gaussian broadening on the grid (unit area kept).
* :func:`training_onset` - median edge onset (eV) of the training spectra, the same
  estimator (:func:`s2s.spectrum.onset_shift`) used to align a measured spectrum to them.
* :func:`reference_environment` - the environment of a reference-set site
  (``data/reference``), the target of a reference spectrum.
* :func:`matching_environments` - training environments geometrically equal to a target
  (same species, sorted distances within a tolerance): is the target structure in training?
* :func:`ensemble_stats` - median / best / spread of a per-sample metric of an ensemble.

All distances in Å, energies in eV.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from s2s.environment import Environment
from s2s.spectrum import GRID, N_GRID, onset_shift


@dataclass(frozen=True)
class InputSpectrum:
    """A foreign spectrum ready for the model.

    spectrum : (200,) on :data:`s2s.spectrum.GRID` (eV), unit area.
    source : human-readable description (what it is, which method, calculated or measured).
    kind : "calculated" or "measured".
    shift_eV : energy subtracted from the file's energies (0 for calculated spectra already
        relative to the onset).
    meta : the reader's metadata.
    """

    spectrum: np.ndarray
    source: str
    kind: str
    path: str
    format: str
    shift_eV: float
    meta: dict


def broaden(spectrum: ArrayLike, fwhm_eV: float) -> np.ndarray:
    """Extra Gaussian broadening (FWHM in eV) of a spectrum on :data:`s2s.spectrum.GRID`, renormalised
    to unit area (e.g. to bring a sharp calculated or noisy measured spectrum to the training
    spectra's resolution).  ``fwhm_eV`` 0 returns a normalised copy."""
    from scipy.ndimage import gaussian_filter1d

    from s2s.spectrum import GRID_STEP, normalize

    y = np.asarray(spectrum, dtype=np.float64)
    if y.shape != (N_GRID,):
        raise ValueError(f"broaden: expected a ({N_GRID},) spectrum on the grid, got {y.shape}")
    if not fwhm_eV >= 0:
        raise ValueError(f"broaden: fwhm_eV must be >= 0, got {fwhm_eV}")
    if fwhm_eV > 0:
        y = gaussian_filter1d(y, fwhm_eV / (2.0 * np.sqrt(2.0 * np.log(2.0))) / GRID_STEP, mode="nearest")
    return normalize(y, source="broaden")


def training_onset(spectra: ArrayLike, fraction: float = 0.1) -> float:
    """Median edge onset (eV on the grid) of spectra (M, 200), by :func:`s2s.spectrum.onset_shift`."""
    s = np.atleast_2d(np.asarray(spectra, dtype=np.float64))
    if s.shape[-1] != N_GRID or s.shape[0] == 0:
        raise ValueError(f"training_onset: expected (M, {N_GRID}) spectra, got {s.shape}")
    return float(np.median([onset_shift(GRID, y, fraction=fraction, source="training") for y in s]))


def load_input_spectrum(
    path: str | os.PathLike,
    onset_at_eV: float = 0.0,
    fraction: float = 0.1,
    format: str = "auto",  # noqa: A002
) -> InputSpectrum:
    """Read a spectrum file through :func:`s2s.io.readers.read_spectrum` onto the model's grid.

    * GPAW reference JSON (``data/reference/gpaw/*.json``): its ``grid_spectrum`` (the sticks
      broadened as in the reference set; energies already relative to the core-hole LUMO).
    * CASTEP ELNES and s2s dataset entries: energies already relative to the onset (shift 0).
    * two-column text / CSV and EMSA ``.msa`` (measured EELS/XAS in absolute energy): the edge
      onset estimated by :func:`s2s.spectrum.onset_shift` (``fraction`` of the maximum) is put
      at ``onset_at_eV`` (0 = the readers' convention; :func:`training_onset` puts it where the
      training spectra have theirs).  No background subtraction or deconvolution is done:
      give a background-subtracted, single-scattering spectrum.
    """
    from s2s.io.readers import detect_format, read_spectrum

    p = Path(path)
    fmt = detect_format(p) if format == "auto" else format
    raw = read_spectrum(p, format=fmt)
    name = p.name
    if fmt == "gpaw":
        sid, site = raw.meta.get("structure_id", "?"), raw.meta.get("site_index", "?")
        settings = raw.meta.get("settings") or {}
        mode = settings.get("mode", "lcao")
        if "grid_spectrum" in raw.meta:
            spec = np.asarray(raw.meta["grid_spectrum"], dtype=np.float64)
        else:
            raise ValueError(f"{p}: GPAW record has no grid_spectrum (its sanity check failed?)")
        source = (f"GPAW first-principles O K-edge (PBE, half core hole, {mode}) of {sid} site {site} "
                  f"({name}); calculated, not measured")
        return InputSpectrum(spec, source, "calculated", str(p), fmt, 0.0, dict(raw.meta))
    if fmt in ("castep", "dataset"):
        spec = raw.on_grid(0.0)
        what = "CASTEP ELNES" if fmt == "castep" else "s2s dataset entry"
        return InputSpectrum(spec, f"{what} ({name}); calculated", "calculated", str(p), fmt, 0.0, dict(raw.meta))
    onset = onset_shift(raw.energy, raw.intensity, fraction=fraction, source=str(p))
    shift = float(onset - onset_at_eV)
    spec = raw.on_grid(shift)
    source = (f"measured spectrum {name} ({fmt}); onset {onset:.2f} eV ({100 * fraction:.0f} % of max) "
              f"moved to {onset_at_eV:.2f} eV")
    return InputSpectrum(spec, source, "measured", str(p), fmt, shift, dict(raw.meta))


def reference_environment(
    ref_dir: str | os.PathLike, structure_id: str = "alpha_quartz", site_index: int | None = None
) -> tuple[Environment, dict]:
    """Environment (Å, 3 shells, 2.0 Å cutoff) of a reference-set site and its record's header.

    ``site_index`` None takes the first GPAW record of ``structure_id`` in
    ``<ref_dir>/gpaw``; the structure comes from the record's ``structure_file``.
    """
    import json

    from pymatgen.core import Structure

    from s2s.environment import environment_from_structure

    ref_dir = Path(ref_dir)
    files = sorted((ref_dir / "gpaw").glob(f"{structure_id}__site*.json"))
    if site_index is not None:
        files = [f for f in files if f.name == f"{structure_id}__site{int(site_index)}.json"]
    if not files:
        raise FileNotFoundError(f"{ref_dir / 'gpaw'}: no reference record for {structure_id}"
                                + (f" site {site_index}" if site_index is not None else ""))
    rec = json.loads(files[0].read_text())
    cif = ref_dir / rec.get("structure_file", f"structures/{structure_id}.cif")
    structure = Structure.from_file(cif)
    env = environment_from_structure(structure, int(rec["site_index"]), structure_id=structure_id)
    header = {k: rec[k] for k in ("structure_id", "site_index", "formula", "multiplicity", "structure_file") if k in rec}
    header["record"] = str(files[0])
    return env, header


def _radial_fingerprint(env: Environment) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(env.coords - env.coords[0], axis=1)
    order = np.lexsort((d, env.species))
    return env.species[order], d[order]


def matching_environments(target: Environment, candidates: Sequence[Environment], tol: float = 0.05) -> list[int]:
    """Indices of candidates that equal ``target`` up to rotation/permutation, approximately:
    same atom count and species, and sorted distances from the excited O (per species)
    within ``tol`` Å.  A necessary condition for identity, cheap and rotation-free; used to
    tell whether a target structure (e.g. alpha-quartz) is among the training environments."""
    ts, td = _radial_fingerprint(target)
    out = []
    for i, c in enumerate(candidates):
        if c.n_atoms != target.n_atoms:
            continue
        cs, cd = _radial_fingerprint(c)
        if np.array_equal(cs, ts) and np.max(np.abs(cd - td)) <= tol:
            out.append(i)
    return out


def ensemble_stats(values: ArrayLike) -> dict[str, Any]:
    """Median, best (minimum), worst, mean, s.d. and 10-90 % range of a per-sample metric
    (e.g. RMSD in Å) over an ensemble, with the indices of the best and the median sample
    (the sample whose value is the lower median).  NaNs are ignored; all-NaN gives NaNs and
    index -1."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    ok = np.flatnonzero(np.isfinite(v))
    if ok.size == 0:
        nan = math.nan
        return {"n": 0, "median": nan, "best": nan, "worst": nan, "mean": nan, "std": nan, "q10": nan, "q90": nan,
                "best_index": -1, "median_index": -1}
    vv = v[ok]
    order = ok[np.argsort(vv, kind="stable")]
    return {
        "n": int(ok.size),
        "median": float(np.median(vv)),
        "best": float(vv.min()),
        "worst": float(vv.max()),
        "mean": float(vv.mean()),
        "std": float(vv.std()),
        "q10": float(np.quantile(vv, 0.1)),
        "q90": float(np.quantile(vv, 0.9)),
        "best_index": int(order[0]),
        "median_index": int(order[(order.size - 1) // 2]),
    }
