"""Notebook 07 (paper Fig. 7): a foreign spectrum - a calculated reference or a measured one - fed
to the model and compared with a reference environment.

The spectrum reaches the grid on the one road of :mod:`s2s.predict.prepare`; here:

* :func:`load_input_spectrum` - a file through that road with the notebook's policy (measured
  spectra onset-aligned, calculated ones as recorded), also used by :mod:`s2s.studies.transfer`;
* :func:`reference_environment` - the environment of a reference-set site
  (``data/reference``), the target of a reference spectrum;
* :func:`held_out_site` - a held-out site of the dataset with its GPAW spectrum at the build's settings
  (``data/reference_sites``), its xTB spectrum and its environment (notebook 07's default input);
* :func:`matching_environments` - training environments geometrically equal to a target
  (same species, sorted distances within a tolerance): is the target structure in training?
* :func:`ensemble_stats` - median / best / spread of a per-sample metric of an ensemble.

All distances in Å, energies in eV.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from s2s.environment import Environment, environment_from_structure
from s2s.predict.inputs import PredictInputError, load_inputs
from s2s.predict.prepare import Prepared, prepare


def load_input_spectrum(path: str | os.PathLike, onset_at_eV: float = 0.0) -> Prepared:
    """A file holding one spectrum, on the model grid, as notebook 07 and the transfer study take it.

    The road of ``s2s predict`` (:func:`s2s.predict.inputs.load_inputs` +
    :func:`~s2s.predict.prepare.prepare`: O K-edge checks, onset alignment) with this policy:
    a **measured** spectrum (text/CSV, EMSA, array) has its edge onset put at ``onset_at_eV``
    (``shift="onset"``; 0: the readers' convention, :func:`s2s.predict.prepare.training_onset`:
    where the training spectra have theirs), whatever its energy origin; a **calculated** one
    (GPAW, CASTEP, dataset entry) keeps its energies (relative to the core-hole LUMO / Fermi
    level) and a reference's recorded grid spectrum (GPAW ``grid_spectrum``) is used bit for bit
    (``renormalize=False``).  No background subtraction or deconvolution: give a
    background-subtracted, single-scattering spectrum.

    Returns the :class:`~s2s.predict.prepare.Prepared`: ``.spectrum`` (200,) unit area,
    ``.description`` (what it is, how aligned), ``.kind``, ``.format``, ``.shift_eV`` (eV).
    """
    items = load_inputs(path)
    if len(items) != 1:
        raise PredictInputError(
            path,
            f"holds {len(items)} spectra, expected one (a dataset or an array of spectra: "
            "use s2s.predict.inputs.load_inputs and prepare each)",
        )
    item = items[0]
    return prepare(item, onset_at_eV, shift="onset" if item.kind == "measured" else "auto", renormalize=False)


def reference_environment(
    ref_dir: str | os.PathLike, structure_id: str = "alpha_quartz", site_index: int | None = None
) -> tuple[Environment, dict]:
    """Environment (Å, 3 shells, 2.0 Å cutoff) of a reference-set site and its record's header.

    ``site_index`` None takes the first GPAW record of ``structure_id`` in
    ``<ref_dir>/gpaw``; the structure comes from the record's ``structure_file``.
    """
    import json

    from pymatgen.core import Structure

    ref_dir = Path(ref_dir)
    files = sorted((ref_dir / "gpaw").glob(f"{structure_id}__site*.json"))
    if site_index is not None:
        files = [f for f in files if f.name == f"{structure_id}__site{int(site_index)}.json"]
    if not files:
        raise FileNotFoundError(
            f"{ref_dir / 'gpaw'}: no reference record for {structure_id}"
            + (f" site {site_index}" if site_index is not None else "")
        )
    rec = json.loads(files[0].read_text())
    cif = ref_dir / rec.get("structure_file", f"structures/{structure_id}.cif")
    structure = Structure.from_file(cif)
    env = environment_from_structure(structure, int(rec["site_index"]), structure_id=structure_id)
    keys = ("structure_id", "site_index", "formula", "multiplicity", "structure_file")
    header = {k: rec[k] for k in keys if k in rec}
    header["record"] = str(files[0])
    return env, header


def held_out_site(
    dataset_path: str | os.PathLike,
    key: tuple[str, int] = ("aflow-a2b-hp9-152-c-a", 3),
    reference_store: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """A site of :data:`s2s.simulate.reference_sites.HELD_OUT` (default: alpha-quartz, notebook 07): its GPAW
    spectrum at the build's settings (``reference``, (200,), the spectrum no model or map is trained on), the
    dataset's xTB spectrum of the same site (``xtb``), its environment (``target``, Å), ``description`` and
    ``record`` (the reference :class:`s2s.site_record.SiteRecord`).  A key that is not held out, or a store
    without its spectrum, raises naming it."""
    from s2s.simulate.reference_sites import HELD_OUT, load_fidelity

    key = (str(key[0]), int(key[1]))
    if key not in HELD_OUT:
        raise ValueError(f"held_out_site: {key[0]} site {key[1]} is not held out ({sorted(HELD_OUT)})")
    both = load_fidelity(dataset_path, "both", reference_store)
    recs = {r.fidelity: r for r in both if r.key == key}
    if "reference" not in recs or "xtb" not in recs:
        raise ValueError(
            f"held_out_site: {key[0]} site {key[1]} has no {'GPAW' if 'reference' not in recs else 'xTB'} spectrum "
            f"in {reference_store or 'data/reference_sites'} / {dataset_path}"
        )
    ref = recs["reference"]
    description = (
        f"GPAW first-principles O K-edge ({ref.simulator}, build settings {ref.settings.get('calc_key', '')}) of "
        f"{key[0]} site {key[1]} ({HELD_OUT[key]}); calculated, not measured; in no split"
    )
    return {
        "reference": np.asarray(ref.spectrum, np.float64),
        "xtb": np.asarray(recs["xtb"].spectrum, np.float64),
        "target": recs["xtb"].environment,
        "description": description,
        "record": ref,
    }


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
        return {
            "n": 0,
            "median": nan,
            "best": nan,
            "worst": nan,
            "mean": nan,
            "std": nan,
            "q10": nan,
            "q90": nan,
            "best_index": -1,
            "median_index": -1,
        }
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
