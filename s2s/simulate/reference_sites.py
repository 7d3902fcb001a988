"""First-principles (GPAW) O K-edge spectra of the dataset's own sites: the compact store and its records.

The xTB spectra of ``data/s2s_open_v1.h5`` are what the model learns from; this build adds, site by
site, the reference-method spectrum of the same excited O (GPAW, half core hole, settings
:data:`BUILD_SETTINGS`, docs/reference.md), so that a model can learn to read first-principles input.

Store layout (``data/reference_sites/``, one small file per structure, rewritten atomically)::

    settings.json                      calc_key -> the GPAWSettings fields of that key
    <structure_id>.npz                 every computed site of that structure
    failures.json                      (structure_id, site) -> reason, settings key (not retried by default)

Each ``.npz`` holds, for its ``n`` sites (row order = order of computation):

=====================  ==============  =========================================================
``site_index``         (n,) int32      index of the excited O in the dataset's structure
``grid_spectrum``      (n, 200) f4     sticks broadened (Gaussian, FWHM ``settings.fwhm`` eV) on
                                       :data:`s2s.spectrum.GRID`, unit area (eV^-1)
``stick_offsets``      (n+1,) int32    sticks of site i are rows offsets[i]..offsets[i+1]-1
``stick_energy``       (S,) f4         eV above the lowest empty level (onset = 0), sticks <= 40 eV, merged
                                       within 0.05 eV (:func:`merge_sticks`)
``stick_intensity``    (S,) f4         orientation-averaged squared dipole matrix element (GPAW units)
``gap_eV``             (n,) f4         HOMO-LUMO gap of the core-hole cell
``cpu_s``, ``wall_s``  (n,) f4         worker CPU seconds (user + system) and wall seconds
``supercell_atoms``    (n,) int32      atoms of the periodic supercell computed
``calc_key``           (n,) str        :meth:`GPAWSettings.calc_key` of the settings used
``structure_hash``     (n,) str        :func:`s2s.simulate.xtb_settings.structure_hash` of the structure
=====================  ==============  =========================================================

About 3-8 KB per site.  The plan and the build that fills the store: :mod:`s2s.simulate.reference_build`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2s.files import atomic_write_text
from s2s.simulate.gpaw_ref import GPAWSettings
from s2s.spectrum import GRID

#: The settings of the dataset build (benchmarks/reference_settings.py, docs/reference.md "Settings"): the
#: reference set's (LCAO dzp, h = 0.2 Å, 9 Å between core-hole images) with the SCF stopped at a density change
#: of 1e-3 and the XAS bands sampled on a k-mesh (R_k = 20 Å, e.g. 3x3x3 for a 48-atom cell).  The Gamma-only
#: spectra of the reference set are not converged in supercell size (9 -> 10-11 Å: Pearson r 0.62-0.94 at
#: FWHM 1 eV); with the k-mesh the same step changes them by r 0.975-0.993.  Grid spectra at FWHM 1.0 eV
#: (the raw sticks up to 40 eV are stored).  One site per core (no MPI, no restart file); the k-mesh reduced by
#: time reversal (same spectra, 0.55-0.65 x the CPU; a run-only setting, so the key is unchanged).
BUILD_SETTINGS = GPAWSettings(
    mpi_procs=1,
    nice=0,
    scf_density=1e-3,
    scf_energy=5e-3,
    xas_kpt_length=20.0,
    xas_time_reversal=True,
    fwhm=1.0,
)
#: sticks above this energy (eV over the onset) are not stored (the grid ends at 18.9 eV)
STICK_MAX_EV = 40.0
#: sticks closer than this (eV) are merged into one before storing (a k-mesh gives thousands of sticks)
STICK_MERGE_EV = 0.05


def merge_sticks(
    energy: np.ndarray, intensity: np.ndarray, width: float = STICK_MERGE_EV
) -> tuple[np.ndarray, np.ndarray]:
    """Sticks (eV, any units) merged within bins of ``width`` eV starting at the lowest: one stick per
    occupied bin at the intensity-weighted mean energy with the summed intensity, so the total intensity
    and its first moment are kept exactly; broadening with FWHM >= 10 x ``width`` cannot tell the difference.
    Returns float64 arrays sorted by energy."""
    e = np.asarray(energy, float)
    w = np.asarray(intensity, float)
    if e.shape != w.shape or e.ndim != 1:
        raise ValueError(f"merge_sticks: energy {e.shape} and intensity {w.shape} differ")
    if e.size == 0:
        return e, w
    b = np.floor((e - e.min()) / width).astype(np.int64)
    uniq, inv = np.unique(b, return_inverse=True)
    wsum = np.bincount(inv, weights=w, minlength=uniq.size)
    esum = np.bincount(inv, weights=w * e, minlength=uniq.size)
    emean = np.bincount(inv, weights=e, minlength=uniq.size) / np.bincount(inv, minlength=uniq.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        ew = np.where(wsum > 0, esum / np.where(wsum > 0, wsum, 1.0), emean)
    return ew, wsum


STORE_FILES = ("settings.json", "failures.json")


class ReferenceStoreError(ValueError):
    """A store file is missing a field or is inconsistent (the message names the file and the field)."""


@dataclass(frozen=True)
class ReferenceSite:
    """One computed site: its spectrum (grid, eV^-1) and raw sticks (eV, arbitrary units)."""

    structure_id: str
    site_index: int
    grid_spectrum: np.ndarray  # (200,) float32, unit area
    stick_energy: np.ndarray  # (S,) eV above the onset
    stick_intensity: np.ndarray  # (S,)
    gap_eV: float
    cpu_s: float
    wall_s: float
    supercell_atoms: int
    calc_key: str
    structure_hash: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.structure_id, self.site_index)


_FIELDS_1D = {
    "site_index": np.int32,
    "gap_eV": np.float32,
    "cpu_s": np.float32,
    "wall_s": np.float32,
    "supercell_atoms": np.int32,
}


class ReferenceStore:
    """The folder of computed reference sites (see the module docstring); reads lazily, writes atomically."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ----------------------------------------------------------------- reading
    def structure_file(self, structure_id: str) -> Path:
        return self.root / f"{structure_id}.npz"

    def read_structure(self, structure_id: str) -> list[ReferenceSite]:
        """The sites of one structure (empty if none computed)."""
        p = self.structure_file(structure_id)
        if not p.exists():
            return []
        try:
            with np.load(p, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except Exception as exc:  # a damaged file: say which
            raise ReferenceStoreError(f"{p}: not a readable reference-site store file ({exc})") from exc
        need = (
            "site_index",
            "grid_spectrum",
            "stick_offsets",
            "stick_energy",
            "stick_intensity",
            "calc_key",
            "structure_hash",
            *_FIELDS_1D,
        )
        missing = [k for k in need if k not in d]
        if missing:
            raise ReferenceStoreError(f"{p}: missing field(s) {missing}")
        n = d["site_index"].shape[0]
        if d["grid_spectrum"].shape != (n, GRID.size) or d["stick_offsets"].shape != (n + 1,):
            raise ReferenceStoreError(
                f"{p}: grid_spectrum {d['grid_spectrum'].shape} / stick_offsets {d['stick_offsets'].shape} "
                f"do not match {n} sites (expected ({n}, {GRID.size}) and ({n + 1},))"
            )
        o = d["stick_offsets"]
        return [
            ReferenceSite(
                structure_id=structure_id,
                site_index=int(d["site_index"][i]),
                grid_spectrum=d["grid_spectrum"][i],
                stick_energy=d["stick_energy"][o[i] : o[i + 1]],
                stick_intensity=d["stick_intensity"][o[i] : o[i + 1]],
                gap_eV=float(d["gap_eV"][i]),
                cpu_s=float(d["cpu_s"][i]),
                wall_s=float(d["wall_s"][i]),
                supercell_atoms=int(d["supercell_atoms"][i]),
                calc_key=str(d["calc_key"][i]),
                structure_hash=str(d["structure_hash"][i]),
            )
            for i in range(n)
        ]

    def structure_ids(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.npz"))

    def sites(self) -> dict[tuple[str, int], ReferenceSite]:
        """Every computed site, by (structure id, site index)."""
        return {s.key: s for sid in self.structure_ids() for s in self.read_structure(sid)}

    def settings(self) -> dict[str, dict]:
        p = self.root / "settings.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def failures(self) -> dict[str, dict]:
        """'<structure_id>:<site>' -> {'reason', 'calc_key', 'seconds'}."""
        p = self.root / "failures.json"
        return json.loads(p.read_text()) if p.exists() else {}

    # ----------------------------------------------------------------- writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the store (``.lock``), so that two builds writing one store lose nothing."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def add(self, site: ReferenceSite, settings: GPAWSettings) -> None:
        """Add (or replace) one site in its structure's file; record the settings under their key."""
        with self._locked():
            self._add(site, settings)

    def _add(self, site: ReferenceSite, settings: GPAWSettings) -> None:
        known = self.settings()
        if site.calc_key not in known:
            known[site.calc_key] = settings.calc_fields()
            atomic_write_text(self.root / "settings.json", json.dumps(known, indent=1, sort_keys=True) + "\n")
        rows = [s for s in self.read_structure(site.structure_id) if s.site_index != site.site_index] + [site]
        self._write_structure(site.structure_id, rows)
        fails = self.failures()
        if fails.pop(f"{site.structure_id}:{site.site_index}", None) is not None:
            self._write_failures(fails)

    def compact(self) -> int:
        """Merge the stored sticks of every site (:func:`merge_sticks`); returns the sites rewritten."""
        n = 0
        with self._locked():
            for sid in self.structure_ids():
                rows = self.read_structure(sid)
                new = []
                for r in rows:
                    e, w = merge_sticks(r.stick_energy, r.stick_intensity)
                    n += e.size < r.stick_energy.size
                    new.append(
                        dataclasses.replace(r, stick_energy=e.astype(np.float32), stick_intensity=w.astype(np.float32))
                    )
                self._write_structure(sid, new)
        return n

    def add_failure(self, structure_id: str, site_index: int, reason: str, calc_key: str, seconds: float) -> None:
        with self._locked():
            fails = self.failures()
            fails[f"{structure_id}:{site_index}"] = {
                "reason": reason[-2000:],
                "calc_key": calc_key,
                "seconds": round(float(seconds), 1),
            }
            self._write_failures(fails)

    def _write_failures(self, fails: dict) -> None:
        atomic_write_text(self.root / "failures.json", json.dumps(fails, indent=1, sort_keys=True) + "\n")

    def _write_structure(self, structure_id: str, rows: Sequence[ReferenceSite]) -> None:
        offsets = np.cumsum([0] + [len(r.stick_energy) for r in rows]).astype(np.int32)
        arrays = {
            "site_index": np.array([r.site_index for r in rows], np.int32),
            "grid_spectrum": np.stack([np.asarray(r.grid_spectrum, np.float32) for r in rows]),
            "stick_offsets": offsets,
            "stick_energy": np.concatenate([np.asarray(r.stick_energy, np.float32) for r in rows]),
            "stick_intensity": np.concatenate([np.asarray(r.stick_intensity, np.float32) for r in rows]),
            "gap_eV": np.array([r.gap_eV for r in rows], np.float32),
            "cpu_s": np.array([r.cpu_s for r in rows], np.float32),
            "wall_s": np.array([r.wall_s for r in rows], np.float32),
            "supercell_atoms": np.array([r.supercell_atoms for r in rows], np.int32),
            "calc_key": np.array([r.calc_key for r in rows]),
            "structure_hash": np.array([r.structure_hash for r in rows]),
        }
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        path = self.structure_file(structure_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)


def site_from_record(rec: dict[str, Any], structure_hash: str) -> ReferenceSite:
    """A :class:`ReferenceSite` from a :func:`s2s.simulate.gpaw_ref.run_site` record that passed its sanity check."""
    if not rec["sanity"]["passed"] or rec["grid_spectrum"] is None:
        raise ValueError(
            f"{rec['structure_id']} site {rec['site_index']}: sanity check failed: {rec['sanity']['message']}"
        )
    e = np.asarray(rec["energies_eV"], float)
    w = np.asarray(rec["intensity"], float)
    keep = e <= STICK_MAX_EV
    e, w = merge_sticks(e[keep], w[keep])
    return ReferenceSite(
        structure_id=rec["structure_id"],
        site_index=int(rec["site_index"]),
        grid_spectrum=np.asarray(rec["grid_spectrum"], np.float32),
        stick_energy=e.astype(np.float32),
        stick_intensity=w.astype(np.float32),
        gap_eV=float(rec["sanity"]["gap_eV"]),
        cpu_s=float(rec.get("cpu_time_s", float("nan"))),
        wall_s=float(rec["wall_time_s"]["total"]),
        supercell_atoms=int(rec["settings"]["supercell_atoms"]),
        calc_key=rec["settings"]["calc_key"],
        structure_hash=structure_hash,
    )


#: Sites whose reference spectrum is reported as a test elsewhere and so must never enter training, in any
#: fidelity: (structure id, site) -> where it is reported.  Their reference records get split "" (neither
#: train nor test) and the build computes them with the test sites.
HELD_OUT: dict[tuple[str, int], str] = {
    ("aflow-a2b-hp9-152-c-a", 3): "alpha-quartz, notebook 07 (experimental_quartz)",
}

#: the simulator name of the store's records (:attr:`s2s.dataset.SiteRecord.simulator`; fidelity "reference")
SIMULATOR = "gpaw-lcao-hch1s"


def reference_records(dataset, store: ReferenceStore, calc_key: str | None = BUILD_SETTINGS.calc_key()) -> list:
    """The dataset's sites that have a reference spectrum, as :class:`s2s.dataset.SiteRecord` with that
    spectrum (``simulator`` :data:`SIMULATOR`, ``settings`` the GPAW settings of its key, everything else, the
    split included, as the xTB record; a :data:`HELD_OUT` site gets split "").  A stored spectrum whose
    structure hash differs from the dataset's structure is left out and named in a warning (it was computed
    for another structure under that id).  ``calc_key``: only spectra of these settings (default: the build's;
    None: any)."""
    import warnings

    from s2s.simulate.xtb_settings import structure_hash

    sites, settings = store.sites(), store.settings()
    if calc_key is not None:  # only spectra computed with these settings (others are being recomputed)
        sites = {k: v for k, v in sites.items() if v.calc_key == calc_key}
    out, hashes = [], {}
    for r in dataset.records:
        site = sites.get(r.key)
        if site is None:
            continue
        if r.structure_id not in hashes:
            hashes[r.structure_id] = structure_hash(dataset.structure(r.structure_id))
        if site.structure_hash != hashes[r.structure_id]:
            warnings.warn(
                f"reference store: {r.structure_id} site {r.site_index} was computed for another "
                f"structure (hash {site.structure_hash}, dataset {hashes[r.structure_id]}): left out"
            )
            continue
        out.append(
            dataclasses.replace(
                r,
                spectrum=np.asarray(site.grid_spectrum, np.float64),
                simulator=SIMULATOR,
                settings={**settings.get(site.calc_key, {}), "calc_key": site.calc_key},
                split="" if r.key in HELD_OUT else r.split,
                meta={
                    **r.meta,
                    "gap_eV": site.gap_eV,
                    "supercell_atoms": site.supercell_atoms,
                    **({"held_out": HELD_OUT[r.key]} if r.key in HELD_OUT else {}),
                },
            )
        )
    return out


def with_reference(dataset, store: ReferenceStore, calc_key: str | None = BUILD_SETTINGS.calc_key()):
    """``dataset`` plus a record for every site with a reference spectrum (both fidelities where both exist):
    select one with :meth:`s2s.dataset.Dataset.fidelity`."""
    from s2s.dataset import Dataset

    return Dataset(
        list(dataset.records) + reference_records(dataset, store, calc_key),
        dataset.structures,
        {**dataset.meta, "reference_sites": len(store.sites())},
    )


#: what a run reads: the xTB spectra, the reference spectra, both (two records per site where both exist), or
#: "translated": the reference spectrum where one exists and the translator's (s2s.forward.translate) elsewhere
FIDELITY_CHOICES = ("xtb", "reference", "both", "translated", "all")


def dataset_of_fidelity(
    dataset, fidelity: str, store: ReferenceStore | None = None, calc_key: str | None = BUILD_SETTINGS.calc_key()
):
    """The records of ``dataset`` a run of fidelity ``fidelity`` reads (:data:`FIDELITY_CHOICES`).

    'xtb': the records that are neither of reference nor of translated fidelity (the open dataset's xTB
    spectra; a file of a simulator s2s does not know stays whole); 'reference': the sites with a reference
    spectrum in ``store`` (settings ``calc_key``), as :func:`reference_records` (splits as their xTB records,
    :data:`HELD_OUT` sites in no split); 'both': the two together (:func:`with_reference`); 'translated': the
    reference records and, for every other site, its translated record (the file must hold them,
    :func:`s2s.forward.translate.translate`); 'all': 'both' and the translated records of 'translated' (every
    site's xTB spectrum, and its reference spectrum where one exists, else its translated one).  Splits and
    validation carves are by structure, so a site's records are always on the same side.  Raises
    ``ValueError`` naming the store when 'reference' finds no site in it."""
    if fidelity not in FIDELITY_CHOICES:
        raise ValueError(f"fidelity must be one of {', '.join(FIDELITY_CHOICES)}, got {fidelity!r}")
    xtb = dataset.filter(lambda r: r.fidelity not in ("reference", "translated"))
    if fidelity == "xtb":
        return xtb
    if store is None:
        raise ValueError(f"fidelity {fidelity!r} needs a reference store (data/reference_sites)")
    both = with_reference(xtb, store, calc_key)
    if fidelity == "both":
        return both
    ref = both.fidelity("reference")
    if fidelity in ("translated", "all"):
        have = {r.key for r in ref}
        moved = [r for r in dataset.fidelity("translated") if r.key not in have]
        if not moved:
            raise ValueError(f"fidelity {fidelity!r}: the dataset file holds no translated records")
        from s2s.dataset import Dataset

        kept = both if fidelity == "all" else ref
        return Dataset(list(kept.records) + moved, dataset.structures, dict(dataset.meta))
    if len(ref) == 0:
        raise ValueError(
            f"reference store {store.root}: no site of this dataset with settings {calc_key} "
            "(build them with scripts/build_reference.py sites)"
        )
    return ref


def load_fidelity(path: str | os.PathLike, fidelity: str = "xtb", reference_store: str | os.PathLike | None = None):
    """The dataset file ``path`` as :func:`dataset_of_fidelity` gives it for ``fidelity``, the reference store
    being ``reference_store`` (default: the resource ``reference_sites``, data/reference_sites).  Raises
    ``FileNotFoundError`` naming a missing file or store, ``ValueError`` when the store has no site of it."""
    from s2s.dataset import Dataset
    from s2s.resources import resolve

    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: dataset file not found")
    store = None
    if fidelity != "xtb":
        root = resolve("reference_sites", reference_store, must_exist=False)
        if not Path(root).is_dir():
            raise FileNotFoundError(f"--fidelity {fidelity}: reference store {root} is not a folder")
        store = ReferenceStore(root)
    return dataset_of_fidelity(Dataset.load(path), fidelity, store)


__all__ = [
    "BUILD_SETTINGS",
    "FIDELITY_CHOICES",
    "ReferenceSite",
    "ReferenceStore",
    "ReferenceStoreError",
    "site_from_record",
    "merge_sticks",
    "SIMULATOR",
    "HELD_OUT",
    "reference_records",
    "with_reference",
    "dataset_of_fidelity",
    "load_fidelity",
]
