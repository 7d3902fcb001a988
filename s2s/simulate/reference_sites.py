"""First-principles (GPAW) O K-edge spectra of the dataset's own sites: a compact store and its resumable build.

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

About 3-8 KB per site.  :func:`build` computes the plan's sites not yet in the store (in plan order),
on any :class:`concurrent.futures.Executor` (a process pool by default; a Dask cluster through
:func:`s2s.simulate.build.dask_executor`), writes each result as it arrives and records failures
(SCF not converged, failed sanity check, worker errors) by name: nothing is dropped silently.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2s.dataset import Dataset
from s2s.files import atomic_write_text
from s2s.simulate.gpaw_ref import GPAWSettings, WorkerInterrupted, find_supercell, run_site
from s2s.simulate.xtb_settings import structure_hash
from s2s.spectrum import GRID
from s2s.splits import validation_split

#: The settings of the dataset build (benchmarks/reference_settings.py, docs/reference.md "Settings"): the
#: reference set's (LCAO dzp, h = 0.2 Å, 9 Å between core-hole images) with the SCF stopped at a density change
#: of 1e-3 and the XAS bands sampled on a k-mesh (R_k = 20 Å, e.g. 3x3x3 for a 48-atom cell).  The Gamma-only
#: spectra of the reference set are not converged in supercell size (9 -> 10-11 Å: Pearson r 0.62-0.94 at
#: FWHM 1 eV); with the k-mesh the same step changes them by r 0.975-0.993.  Grid spectra at FWHM 1.0 eV
#: (the raw sticks up to 40 eV are stored).  One site per core (no MPI, no restart file).
BUILD_SETTINGS = GPAWSettings(mpi_procs=1, nice=0, scf_density=1e-3, scf_energy=5e-3, xas_kpt_length=20.0, fwhm=1.0)
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
    return Dataset(
        list(dataset.records) + reference_records(dataset, store, calc_key),
        dataset.structures,
        {**dataset.meta, "reference_sites": len(store.sites())},
    )


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PlannedSite:
    structure_id: str
    site_index: int
    group: str  # 'test', 'validation', 'train-SiOx<=2', 'train-other'
    supercell_atoms: int


def plan_order(records: Sequence, groups: Sequence[str], supercell_atoms: Callable[[str], int]) -> list[PlannedSite]:
    """The build order: test sites, then validation sites, then training sites with O/Si <= 2 (SiO2 and
    suboxides), then the other training sites; within each group the smallest supercells first.

    records: :class:`s2s.dataset.SiteRecord` (``structure_id``, ``site_index``, ``x``);
    groups: 'test', 'validation' or 'train' per record; supercell_atoms: structure id -> atoms computed.
    """
    rank = {"test": 0, "validation": 1, "train-SiOx<=2": 2, "train-other": 3}
    out = []
    for r, g in zip(records, groups):
        if (r.structure_id, int(r.site_index)) in HELD_OUT:
            g = "test"  # reported as a test elsewhere: computed early, never trained on
        if g == "train":
            g = "train-SiOx<=2" if np.isfinite(r.x) and r.x <= 2.0 + 1e-9 else "train-other"
        if g not in rank:
            raise ValueError(
                f"plan_order: group {g!r} of {r.structure_id} site {r.site_index} is not one of "
                "'test', 'validation', 'train'"
            )
        out.append(PlannedSite(r.structure_id, int(r.site_index), g, int(supercell_atoms(r.structure_id))))
    return sorted(out, key=lambda p: (rank[p.group], p.supercell_atoms, p.structure_id, p.site_index))


def supercell_atoms(structure, min_image: float = BUILD_SETTINGS.min_image) -> int:
    """Atoms of the periodic supercell GPAW computes for ``structure`` (:func:`find_supercell`)."""
    P = find_supercell(structure.lattice.matrix, min_image)
    return int(round(abs(np.linalg.det(P)))) * len(structure)


def dataset_plan(dataset, groups: Sequence[str] = ("test", "validation", "train")) -> list[PlannedSite]:
    """:func:`plan_order` of a :class:`s2s.dataset.Dataset`'s sites in ``groups`` ('test'; 'validation' and
    'train' are the fit / validation halves of the training split, :func:`s2s.splits.validation_split`)."""
    unknown = set(groups) - {"test", "validation", "train"}
    if unknown:
        raise ValueError(f"dataset_plan: unknown group(s) {sorted(unknown)}; expected test, validation, train")
    fit, val = validation_split(dataset.train)
    labelled = [(r, "test") for r in dataset.test.records] + [(r, "validation") for r in val.records]
    labelled += [(r, "train") for r in fit.records]
    labelled = [(r, g) for r, g in labelled if g in groups]
    atoms: dict[str, int] = {}

    def n_atoms(sid: str) -> int:
        if sid not in atoms:
            atoms[sid] = supercell_atoms(dataset.structure(sid))
        return atoms[sid]

    return plan_order([r for r, _ in labelled], [g for _, g in labelled], n_atoms)


# --------------------------------------------------------------------------- the build


@dataclass
class BuildReport:
    planned: int = 0
    stored: int = 0  # already in the store (same settings and structure)
    failed_before: int = 0  # recorded failures skipped (retry with retry_failed)
    computed: int = 0
    failed: int = 0
    interrupted: int = 0  # workers killed by a signal: not failures, computed again by the next run
    cpu_s: float = 0.0
    failures: list[tuple[str, int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.planned} planned: {self.stored} in the store, {self.failed_before} failed before (skipped), "
            f"{self.computed} computed, {self.failed} failed now, {self.interrupted} interrupted; "
            f"{self.cpu_s / 3600:.2f} CPU h this run"
        )


def _unit(structure, structure_id: str, site_index: int, settings: dict, workdir: str | None) -> dict:
    """Worker: one site (runs in a pool or on a Dask worker); returns the record or the error."""
    t0 = time.time()
    try:
        rec = run_site(structure, structure_id, site_index, GPAWSettings(**settings), workdir=workdir)
        return {"ok": True, "record": rec}
    except WorkerInterrupted as exc:  # not a failure of the site: it is computed again next time
        return {"ok": False, "interrupted": True, "reason": str(exc), "seconds": time.time() - t0}
    except Exception as exc:
        return {
            "ok": False,
            "reason": f"{type(exc).__name__}: {exc}"[-2000:],
            "traceback": traceback.format_exc(),
            "seconds": time.time() - t0,
            "structure_id": structure_id,
            "site_index": site_index,
        }


def build(
    plan: Sequence[PlannedSite],
    structures: Callable[[str], Any],
    store: ReferenceStore,
    settings: GPAWSettings = BUILD_SETTINGS,
    executor: cf.Executor | None = None,
    max_sites: int = 0,
    deadline: float | None = None,
    retry_failed: bool = False,
    workdir: str | None = None,
    progress: bool = True,
    on_result: Callable[[BuildReport], None] | None = None,
) -> BuildReport:
    """Compute the plan's sites that the store lacks, in plan order; write each as it finishes.

    structures: structure id -> pymatgen Structure; executor: None runs in this process, one site at a
    time; otherwise at most ``2 x workers`` sites are in flight. ``deadline`` (``time.time()`` value): no new
    site starts after it. ``on_result`` is called after every finished site (e.g. to commit a batch).
    """
    from tqdm.auto import tqdm

    report = BuildReport(planned=len(plan))
    key = settings.calc_key()
    done = {k: s for k, s in store.sites().items()}
    fails = store.failures()
    hashes: dict[str, str] = {}
    todo = []
    for p in plan:
        if p.structure_id not in hashes:
            hashes[p.structure_id] = structure_hash(structures(p.structure_id))
        have = done.get((p.structure_id, p.site_index))
        if have is not None and have.calc_key == key and have.structure_hash == hashes[p.structure_id]:
            report.stored += 1
            continue
        f = fails.get(f"{p.structure_id}:{p.site_index}")
        if f is not None and f.get("calc_key") == key and not retry_failed:
            report.failed_before += 1
            continue
        todo.append(p)
    if max_sites:
        todo = todo[:max_sites]
    bar = tqdm(
        total=len(todo), desc=f"GPAW reference sites [{key}]", unit="site", disable=not progress, file=sys.stdout
    )

    def record(res: dict, p: PlannedSite) -> None:
        if res.get("interrupted"):
            report.interrupted += 1
            print(f"INTERRUPTED {p.structure_id} site {p.site_index} (not recorded as a failure)", file=sys.stderr)
            bar.update(1)
            return
        if res["ok"]:
            rec = res["record"]
            try:
                site = site_from_record(rec, hashes[p.structure_id])
            except ValueError as exc:
                res = {"ok": False, "reason": str(exc), "seconds": rec["wall_time_s"]["total"]}
            else:
                store.add(site, settings)
                report.computed += 1
                report.cpu_s += site.cpu_s if np.isfinite(site.cpu_s) else 0.0
                bar.set_postfix_str(
                    f"{p.structure_id}:{p.site_index} {site.supercell_atoms} atoms {site.cpu_s:.0f} CPU s"
                )
        if not res["ok"]:
            store.add_failure(p.structure_id, p.site_index, res["reason"], key, res.get("seconds", 0.0))
            report.failed += 1
            report.failures.append((p.structure_id, p.site_index, res["reason"][:300]))
            print(f"FAILED {p.structure_id} site {p.site_index}: {res['reason'][:300]}", file=sys.stderr, flush=True)
        bar.update(1)
        if on_result is not None:
            on_result(report)

    sdict = dataclasses.asdict(settings)
    try:
        if executor is None:
            for p in todo:
                if deadline is not None and time.time() > deadline:
                    break
                record(_unit(structures(p.structure_id), p.structure_id, p.site_index, sdict, workdir), p)
        else:
            pending: dict[cf.Future, PlannedSite] = {}
            it = iter(todo)
            width = max(1, getattr(executor, "_max_workers", 1)) * 2
            while True:
                while len(pending) < width and (deadline is None or time.time() <= deadline):
                    p = next(it, None)
                    if p is None:
                        break
                    pending[
                        executor.submit(_unit, structures(p.structure_id), p.structure_id, p.site_index, sdict, workdir)
                    ] = p
                if not pending:
                    break
                finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    record(fut.result(), pending.pop(fut))
    finally:
        bar.close()
    return report


__all__ = [
    "BUILD_SETTINGS",
    "ReferenceSite",
    "ReferenceStore",
    "ReferenceStoreError",
    "PlannedSite",
    "plan_order",
    "dataset_plan",
    "supercell_atoms",
    "site_from_record",
    "merge_sticks",
    "SIMULATOR",
    "HELD_OUT",
    "reference_records",
    "with_reference",
    "build",
    "BuildReport",
]
