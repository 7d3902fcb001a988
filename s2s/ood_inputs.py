"""Out-of-distribution inputs (notebooks 06, 07): where spectra lie relative to the training
set (paper, Fig. 6a) and single foreign spectra fed to the model (paper, Fig. 7).

Spectral manifold (notebook 06)
-------------------------------
* :func:`composition_labels` - composition x of SiO_x per record as a string key ("2.00"),
  from ``meta['composition_x']`` (amorphous set), else ``record.x``, else ``"unknown"``.
* :func:`umap_embedding` - 2-D UMAP (umap-learn) of spectra with a fixed ``random_state``.
* :func:`nearest_distance` - Euclidean distance of each query point to its nearest reference
  point, optionally excluding references of the query's own group (structure).
* :func:`distance_to_training` - per label (composition): mean / median nearest-training
  distance and the fraction of points "inside" the training manifold, i.e. no farther from
  the training set than ``quantile`` (95 %) of the training points are from *other*
  training structures (leave-one-structure-out).  Works in any space: the 2-D embedding
  (arbitrary units) or the 200-point spectra themselves (``scale=1/sqrt(200)`` gives the
  RMS intensity difference of unit-area spectra; :mod:`s2s.ood_score` has the k-NN
  percentile score that ``s2s predict`` uses).

Foreign spectra (notebook 07)
-----------------------------
* :func:`load_input_spectrum` - a spectrum file through :mod:`s2s.readers` onto the model's
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from s2s.environment import Environment
from s2s.spectrum import GRID, N_GRID, onset_shift
from s2s.template import nearest_by_mse

UNKNOWN = "unknown"

# ----------------------------------------------------------------------------- manifold


def composition_labels(records: Sequence[Any], decimals: int = 2) -> list[str]:
    """Composition x of SiO_x of each record as a string with ``decimals`` decimals ("0.25").

    Taken from ``record.meta['composition_x']`` when present and finite (the amorphous set's
    nominal composition), else from ``record.x`` (O/Si of the formula), else ``"unknown"``.
    """
    out = []
    for r in records:
        x = (getattr(r, "meta", None) or {}).get("composition_x")
        try:
            x = float(x) if x is not None else math.nan
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            x = float(getattr(r, "x", math.nan))
        out.append(f"{x:.{decimals}f}" if math.isfinite(x) else UNKNOWN)
    return out


def umap_embedding(
    points: ArrayLike,
    *,
    random_state: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
) -> np.ndarray:
    """(N, 2) UMAP embedding (umap-learn) of ``points`` (N, D), e.g. spectra on the grid.

    ``random_state`` makes the run reproducible on one machine (umap-learn then runs single
    threaded); coordinates can still differ across machines/library versions.
    ``n_neighbors`` is capped at N - 1.
    """
    import warnings

    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"umap_embedding: need a 2-D array with at least 3 rows, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("umap_embedding: points contain NaN/inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state; numba/sklearn chatter
        import umap

        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=int(min(n_neighbors, x.shape[0] - 1)),
            min_dist=min_dist,
            metric=metric,
            random_state=int(random_state),
        )
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def nearest_distance(
    reference: ArrayLike,
    query: ArrayLike,
    reference_groups: ArrayLike | None = None,
    query_groups: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query point to its nearest reference point, and its index.

    ``reference`` (R, D), ``query`` (M, D); with groups given (both or neither), a reference of
    the query's own group is skipped (leave-one-structure-out).  Uses
    :func:`s2s.template.nearest_by_mse` (exact re-scoring), distance = sqrt(D * MSE).
    """
    ref = np.asarray(reference, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if ref.ndim != 2 or q.ndim != 2 or ref.shape[1] != q.shape[1]:
        raise ValueError(f"nearest_distance: need (R, D) and (M, D) arrays, got {ref.shape} and {q.shape}")
    idx, mse = nearest_by_mse(q, ref, query_groups, reference_groups, k=1)
    return np.sqrt(mse * ref.shape[1]), idx


@dataclass(frozen=True)
class ManifoldReport:
    """Result of :func:`distance_to_training`.

    threshold : nearest-other-structure distance of training points at ``quantile``.
    train_distance : (R,) leave-one-structure-out nearest distances of the training points.
    query_distance : (M,) nearest-training distance of each query point.
    per_label : label -> {"n", "mean_distance", "median_distance", "mean_over_threshold",
        "inside_fraction"}; ``inside`` = distance <= threshold.
    """

    threshold: float
    quantile: float
    train_distance: np.ndarray
    query_distance: np.ndarray
    per_label: dict[str, dict[str, float]] = field(default_factory=dict)

    def inside_labels(self, min_fraction: float = 0.5) -> list[str]:
        """Labels with at least ``min_fraction`` of their points inside the training manifold."""
        return [k for k, v in self.per_label.items() if v["inside_fraction"] >= min_fraction]


def distance_to_training(
    train_points: ArrayLike,
    train_groups: ArrayLike,
    query_points: ArrayLike,
    query_labels: Sequence[str],
    quantile: float = 0.95,
    scale: float = 1.0,
) -> ManifoldReport:
    """How far query points (e.g. amorphous spectra, per composition) lie from the training set.

    Each training point's distance to the nearest training point of *another* structure
    (``train_groups``) gives the spread of the training manifold; its ``quantile`` is the
    threshold below which a query point counts as inside.  ``scale`` multiplies every
    distance (e.g. ``1/sqrt(200)`` turns Euclidean distances of spectra into RMS differences).
    Labels are reported in sorted order.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"distance_to_training: quantile must be in (0, 1], got {quantile}")
    train = np.asarray(train_points, dtype=np.float64)
    query = np.asarray(query_points, dtype=np.float64)
    groups = np.asarray(train_groups)
    labels = np.asarray(list(query_labels), dtype=object)
    if groups.shape != (train.shape[0],):
        raise ValueError(f"distance_to_training: train_groups must have shape ({train.shape[0]},), got {groups.shape}")
    if labels.shape != (query.shape[0],):
        raise ValueError(f"distance_to_training: {labels.shape[0]} labels for {query.shape[0]} query points")
    if np.unique(groups).size < 2:
        raise ValueError("distance_to_training: need training points of at least 2 groups (structures)")
    d_train, _ = nearest_distance(train, train, groups, groups)
    d_train = d_train * scale
    d_query, _ = nearest_distance(train, query)
    d_query = d_query * scale
    thr = float(np.quantile(d_train, quantile))
    per = {}
    for lab in sorted(set(labels.tolist()), key=str):
        d = d_query[labels == lab]
        per[str(lab)] = {
            "n": int(d.size),
            "mean_distance": float(d.mean()),
            "median_distance": float(np.median(d)),
            "mean_over_threshold": float(d.mean() / thr) if thr > 0 else math.inf,
            "inside_fraction": float(np.mean(d <= thr)),
        }
    return ManifoldReport(thr, float(quantile), d_train, d_query, per)


# ----------------------------------------------------------------------------- foreign spectra


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
    """Read a spectrum file through :func:`s2s.readers.read_spectrum` onto the model's grid.

    * GPAW reference JSON (``data/reference/gpaw/*.json``): its ``grid_spectrum`` (the sticks
      broadened as in the reference set; energies already relative to the core-hole LUMO).
    * CASTEP ELNES and s2s dataset entries: energies already relative to the onset (shift 0).
    * two-column text / CSV and EMSA ``.msa`` (measured EELS/XAS in absolute energy): the edge
      onset estimated by :func:`s2s.spectrum.onset_shift` (``fraction`` of the maximum) is put
      at ``onset_at_eV`` (0 = the readers' convention; :func:`training_onset` puts it where the
      training spectra have theirs).  No background subtraction or deconvolution is done:
      give a background-subtracted, single-scattering spectrum.
    """
    from s2s.readers import detect_format, read_spectrum

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


def round_floats(obj: Any, digits: int = 4) -> Any:
    """``obj`` with every float rounded to ``digits`` significant digits (dicts/lists recursed;
    NaN/inf -> None), for the results file."""
    if isinstance(obj, Mapping):
        return {str(k): round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, digits) for v in obj]
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return float(f"{f:.{digits}g}") if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
