"""The build of the reference store (:mod:`s2s.simulate.reference_sites`): which sites, in which order, computed how.

:func:`dataset_plan` orders the dataset's sites (test, validation and training sites interleaved by CPU share,
:func:`interleave`; or strictly one group after the other, :func:`plan_order`).  Within a group, either the
structures take turns, fewest sites with a spectrum first (:func:`coverage_rounds`, the default: every structure
gets its first site before any gets its second), or the smallest supercells go first.
:func:`build` computes the plan's sites not yet in the store (in plan order) on any
:class:`concurrent.futures.Executor` (a process pool by default; a Dask cluster through
:func:`s2s.simulate.build.dask_executor`), writes each result as it arrives and records failures (SCF not
converged, failed sanity check, worker errors) by name: nothing is dropped silently.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import sys
import time
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from s2s.simulate.gpaw_ref import GPAWSettings, WorkerInterrupted, run_site
from s2s.simulate.reference_sites import BUILD_SETTINGS, HELD_OUT, ReferenceStore, site_from_record

# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PlannedSite:
    structure_id: str
    site_index: int
    group: str  # 'test', 'validation', 'train-SiOx<=2', 'train-other'
    supercell_atoms: int


GROUP_RANK = {"test": 0, "validation": 1, "train-SiOx<=2": 2, "train-other": 3}

#: CPU shares of the interleaved build order (:func:`interleave`): per unit of CPU, one to the test
#: split, one to validation, two to training sites with O/Si <= 2 and one to the other (O-rich) training
#: sites.  Interleaving lets training and model choice start before every test and validation site is
#: computed (all of them are, in the end).  The O-rich sites got a share on 2026-12-07: on validation, v6
#: reads the GPAW spectra of O/Si < 2 sites almost as well as their xTB spectra (+0.03 Å) and fails on the
#: O-rich ones (+1.2 Å), which no training spectrum covered (docs/fidelity.md, round 3).
INTERLEAVE_SHARES = {"test": 1.0, "validation": 1.0, "train-SiOx<=2": 2.0, "train-other": 1.0}


def estimated_cpu_s(supercell_atoms: int) -> float:
    """Rough CPU seconds of one site under :data:`BUILD_SETTINGS` on one core: 0.035 * N^2 for an N-atom
    supercell (measured 36 atoms ~45 s, 48 ~80 s, 72 ~150 s, 96 ~340 s; docs/reference.md).  Used only to
    balance the interleaved order, never recorded."""
    return 0.035 * float(supercell_atoms) ** 2


def coverage_rounds(plan: Sequence[PlannedSite], done: Collection[tuple[str, int]] = ()) -> dict[tuple[str, int], int]:
    """The round of each planned site when the structures take turns: a structure with ``n`` sites already in
    the store (``done``: (structure id, site index) pairs) gives its not-yet-computed sites rounds ``n``,
    ``n + 1``, ... in site-index order, so round ``r`` holds one new site of every structure that has ``r``
    sites so far.  Sites in ``done`` get the round of their position among the structure's done sites (the
    build skips them anyway)."""
    by_structure: dict[str, list[PlannedSite]] = {}
    for p in plan:
        by_structure.setdefault(p.structure_id, []).append(p)
    rounds: dict[tuple[str, int], int] = {}
    for sid, sites in by_structure.items():
        sites = sorted(sites, key=lambda p: p.site_index)
        is_done = [(sid, p.site_index) in done for p in sites]
        n_done = sum(is_done)
        k_done = k_new = 0
        for p, d in zip(sites, is_done):
            if d:
                rounds[(sid, p.site_index)] = k_done
                k_done += 1
            else:
                rounds[(sid, p.site_index)] = n_done + k_new
                k_new += 1
    return rounds


def plan_order(
    records: Sequence,
    groups: Sequence[str],
    supercell_atoms: Callable[[str], int],
    within: str = "size",
    done: Collection[tuple[str, int]] = (),
) -> list[PlannedSite]:
    """The strict build order: test sites, then validation sites, then training sites with O/Si <= 2
    (SiO2 and suboxides), then the other training sites.

    Within each group, ``within='size'``: the smallest supercells first; ``within='coverage'``: the
    structures take turns (:func:`coverage_rounds` with ``done``, the sites already computed), smallest
    supercells first within a round, so the structures covered grow as fast as the sites do.

    records: :class:`s2s.dataset.SiteRecord` (``structure_id``, ``site_index``, ``x``);
    groups: 'test', 'validation' or 'train' per record; supercell_atoms: structure id -> atoms computed.
    """
    if within not in ("size", "coverage"):
        raise ValueError(f"plan_order: within must be 'size' or 'coverage', got {within!r}")
    rank = GROUP_RANK
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
    if within == "size":
        return sorted(out, key=lambda p: (rank[p.group], p.supercell_atoms, p.structure_id, p.site_index))
    rounds = coverage_rounds(out, done)
    return sorted(
        out,
        key=lambda p: (
            rank[p.group],
            rounds[(p.structure_id, p.site_index)],
            p.supercell_atoms,
            p.structure_id,
            p.site_index,
        ),
    )


def interleave(
    plan: Sequence[PlannedSite],
    shares: Mapping[str, float] = INTERLEAVE_SHARES,
    cost: Callable[[int], float] = estimated_cpu_s,
    done: Collection[tuple[str, int]] = (),
) -> list[PlannedSite]:
    """Reorder a :func:`plan_order` plan so that the groups share the CPU in proportion to ``shares``.

    Each group keeps its own order.  The next site comes from the group whose estimated CPU spent so far
    (``cost`` of each chosen site's ``supercell_atoms``), divided by its share, is smallest (ties: the strict
    group order).  Sites in ``done`` (already computed) keep their place but cost nothing, so the shares
    hold for the work still to do.  Groups with share 0 follow, in the strict order, once every group
    with a positive share is exhausted.  Unknown groups raise.
    """
    unknown = {p.group for p in plan} - set(shares)
    if unknown:
        raise ValueError(f"interleave: no share for group(s) {sorted(unknown)}; shares: {dict(shares)}")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"interleave: shares must be >= 0, got {dict(shares)}")
    queues: dict[str, list[PlannedSite]] = {}
    for p in plan:
        queues.setdefault(p.group, []).append(p)
    positive = sorted((g for g in queues if shares[g] > 0), key=GROUP_RANK.get)
    spent = {g: 0.0 for g in positive}
    heads = {g: 0 for g in queues}
    out: list[PlannedSite] = []
    while True:
        open_ = [g for g in positive if heads[g] < len(queues[g])]
        if not open_:
            break
        g = min(open_, key=lambda x: (spent[x] / shares[x], GROUP_RANK[x]))
        p = queues[g][heads[g]]
        heads[g] += 1
        spent[g] += 0.0 if (p.structure_id, p.site_index) in done else cost(p.supercell_atoms)
        out.append(p)
    for g in sorted((g for g in queues if shares[g] == 0), key=GROUP_RANK.get):
        out.extend(queues[g])
    return out


def supercell_atoms(structure, min_image: float = BUILD_SETTINGS.min_image) -> int:
    """Atoms of the periodic supercell GPAW computes for ``structure`` (:func:`find_supercell`)."""
    from s2s.simulate.supercell import find_supercell

    P = find_supercell(structure.lattice.matrix, min_image)
    return int(round(abs(np.linalg.det(P)))) * len(structure)


def dataset_plan(
    dataset,
    groups: Sequence[str] = ("test", "validation", "train"),
    order: str = "interleaved",
    shares: Mapping[str, float] = INTERLEAVE_SHARES,
    within: str = "coverage",
    done: Collection[tuple[str, int]] = (),
) -> list[PlannedSite]:
    """The build plan of a :class:`s2s.dataset.Dataset`'s sites in ``groups`` ('test'; 'validation' and
    'train' are the fit / validation halves of the training split, :func:`s2s.splits.validation_split`).

    order: 'strict' (:func:`plan_order`: every test site, then validation, then training) or
    'interleaved' (:func:`interleave` of it with ``shares``, the default).  within: 'coverage' (structures
    take turns, fewest sites in ``done`` first; the default) or 'size' (smallest supercells first); see
    :func:`plan_order`."""
    if order not in ("strict", "interleaved"):
        raise ValueError(f"dataset_plan: order must be 'strict' or 'interleaved', got {order!r}")
    from s2s.splits import validation_split

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

    plan = plan_order([r for r, _ in labelled], [g for _, g in labelled], n_atoms, within=within, done=done)
    return interleave(plan, shares, done=done) if order == "interleaved" else plan


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

    from s2s.simulate.xtb_settings import structure_hash

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
    "PlannedSite",
    "GROUP_RANK",
    "INTERLEAVE_SHARES",
    "estimated_cpu_s",
    "plan_order",
    "interleave",
    "coverage_rounds",
    "dataset_plan",
    "supercell_atoms",
    "build",
    "BuildReport",
]


# --------------------------------------------------------------------------- coverage


def coverage(dataset, store: ReferenceStore, settings: GPAWSettings = BUILD_SETTINGS) -> dict[str, Any]:
    """How far the build has come: per split of ``dataset`` ('test'; 'validation' and 'fit', the halves of
    the training split by :func:`s2s.splits.validation_split`) the number of sites and structures, and how
    many of them have a reference spectrum of ``settings`` (a :data:`HELD_OUT` site counts under the split it
    is held out of).  Also the failures recorded at these settings (by name), the CPU hours in the store and
    the settings themselves (their hash ``calc_key`` included): what ``figures/results.json`` keeps under
    ``reference_data``."""
    from s2s.splits import validation_split

    key = settings.calc_key()
    sites = {k: s for k, s in store.sites().items() if s.calc_key == key}
    fit, val = validation_split(dataset.train)
    by_split = {}
    for name, part in (("test", dataset.test), ("validation", val), ("fit", fit)):
        done = [r for r in part.records if r.key in sites]
        by_split[name] = {
            "sites": len(part.records),
            "structures": len(part.structure_ids()),
            "with_reference": len(done),
            "structures_with_reference": len({r.structure_id for r in done}),
        }
    known = {r.key for r in dataset.records}
    failures = sorted(k for k, f in store.failures().items() if f.get("calc_key") == key)
    return {
        "n_reference_sites": sum(s["with_reference"] for s in by_split.values()),
        "by_split": by_split,
        "not_in_dataset": sum(1 for k in sites if k not in known),
        "failures": failures,
        "cpu_hours": round(sum(float(s.cpu_s) for s in sites.values()) / 3600.0, 2),
        "calc_key": key,
        "reference_settings": {k: v for k, v in settings.as_dict().items() if k not in ("nice",)},
    }
