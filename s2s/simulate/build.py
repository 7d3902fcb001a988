"""Cached, resumable, parallel build of xTB O K-edge spectra over many structures.

Cache layout (one small JSON per site, written atomically)::

    <cache>/<settings.calc_key()>/settings.json
    <cache>/<settings.calc_key()>/<structure_id>/site<k>.json

``k`` is the index of the O site in the input structure.  The key only covers
the settings that change the electronic structure (method, variant, charge,
supercell length, temperature, SCF limits, projection); the stick spectrum is
cached and broadening/onset/gap threshold are applied on load
(:func:`load_site`), so they can be changed without recomputing.

Failures (SCF not converged, tblite errors, bad input) are cached too, with the
reason, and are not retried unless ``retry_failed=True``.  Items already in the
cache are skipped, so an interrupted build resumes where it stopped.

Parallelism: the work units are independent.  ``z+1`` has one unit per site,
``ground`` one unit per structure (a single SCF serves all its sites).  By
default they run in a :class:`concurrent.futures.ProcessPoolExecutor` of
``workers`` single-threaded processes (spawn context, ``OMP_NUM_THREADS=1``,
niced).  Any :class:`concurrent.futures.Executor` can be passed instead, e.g.
a Dask cluster's ``distributed.Client(...).get_executor()`` (:func:`dask_executor`):
only ``submit`` and the returned futures are used, results (plain dicts) come
back to the calling process, which alone writes the cache, so caching, resume
and the progress bar are the same on every executor.

CLI::

    python -m s2s.simulate.build --structures DIR --out data/cache/xtb --workers 2 --variant ground
    python -m s2s.simulate.build --structures DIR --dask local --workers 8       # distributed.LocalCluster
    python -m s2s.simulate.build --structures DIR --dask tcp://scheduler:8786    # an existing Dask cluster
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from s2s.environment import unique_o_sites
from s2s.files import atomic_write_text
from s2s.simulate.xtb import (
    SiteResult,
    XtbSettings,
    check_si_o,
    finalize,
    simulate_site,
    simulate_structure_ground_state,
    structure_hash,
)

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# ---------------------------------------------------------------------------
# cache


def check_structure_id(structure_id: str) -> str:
    """Return ``structure_id`` if it is a safe folder name, else raise ValueError."""
    if not isinstance(structure_id, str) or not _ID_RE.match(structure_id) or structure_id in (".", ".."):
        raise ValueError(
            f"structure id {structure_id!r}: must be a file-name safe string "
            "(letters, digits, '.', '_', '+', '-'; not starting with '.' or '-')"
        )
    return structure_id


def settings_dir(cache_dir: str | os.PathLike, settings: XtbSettings) -> Path:
    return Path(cache_dir) / settings.calc_key()


def site_path(cache_dir: str | os.PathLike, settings: XtbSettings, structure_id: str, site: int) -> Path:
    """``<cache>/<calc_key>/<structure_id>/site<k>.json``."""
    return settings_dir(cache_dir, settings) / check_structure_id(structure_id) / f"site{int(site)}.json"


def atomic_write_json(path: Path, obj: Any) -> None:
    """Compact JSON written atomically (:func:`s2s.files.atomic_write_text`)."""
    atomic_write_text(path, json.dumps(obj, separators=(",", ":")))


def write_site(cache_dir: str | os.PathLike, settings: XtbSettings, result: SiteResult) -> Path:
    path = site_path(cache_dir, settings, result.structure_id, result.site_index)
    atomic_write_json(path, result.to_json_dict())
    return path


def read_site_record(path: Path) -> dict | None:
    """The cached JSON of one site, or None if absent/unreadable (then it is recomputed)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return None


def load_site(
    cache_dir: str | os.PathLike,
    settings: XtbSettings,
    structure_id: str,
    site: int,
    structure: Structure | None = None,
) -> SiteResult | None:
    """Cached result of one site, broadened with ``settings`` (None if not cached).

    With ``structure`` given, a record computed for a different structure under the
    same id (see :func:`s2s.simulate.xtb.structure_hash`) counts as not cached.
    """
    d = read_site_record(site_path(cache_dir, settings, structure_id, site))
    if d is None or (structure is not None and _is_stale(d, structure_hash(structure))):
        return None
    return finalize(SiteResult.from_json_dict(d), settings)


def _is_stale(record: dict, shash: str) -> bool:
    """True if the record carries a structure hash different from ``shash``."""
    old = (record.get("meta") or {}).get("structure_hash")
    return old is not None and old != shash


def write_settings(cache_dir: str | os.PathLike, settings: XtbSettings) -> None:
    path = settings_dir(cache_dir, settings) / "settings.json"
    if not path.exists():
        atomic_write_json(path, {"calc_key": settings.calc_key(), "calc_fields": settings.calc_fields()})


# ---------------------------------------------------------------------------
# work units (top-level functions: picklable for process pools and Dask)


def _site_unit(structure: Structure, structure_id: str, site: int, settings: XtbSettings) -> list[dict]:
    try:
        r = simulate_site(structure, site, settings, structure_id)
    except Exception as e:  # bad input etc.: record, do not crash the build
        r = SiteResult(
            structure_id=structure_id,
            site_index=site,
            ok=False,
            reason=f"error: {type(e).__name__}: {e}",
            calc_key=settings.calc_key(),
            meta={"structure_hash": structure_hash(structure)},
        )
    return [r.to_json_dict()]


def _structure_unit(structure: Structure, structure_id: str, sites: list[int], settings: XtbSettings) -> list[dict]:
    try:
        rs = simulate_structure_ground_state(structure, settings, structure_id, sites=sites)
        return [rs[s].to_json_dict() for s in sites]
    except Exception as e:
        return [
            SiteResult(
                structure_id=structure_id,
                site_index=s,
                ok=False,
                reason=f"error: {type(e).__name__}: {e}",
                calc_key=settings.calc_key(),
                meta={"structure_hash": structure_hash(structure)},
            ).to_json_dict()
            for s in sites
        ]


def _worker_init(nice: int) -> None:
    for v in _THREAD_VARS:
        os.environ[v] = "1"
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)


@contextlib.contextmanager
def stop_workers_on_sigterm() -> Iterator[None]:
    """While active, SIGTERM (``kill``, the end of a session) first stops this process's worker processes
    (``multiprocessing.active_children``: a ProcessPoolExecutor's) and then exits with status 143 (128 +
    SIGTERM) through ``SystemExit``, so ``with`` blocks and ``finally`` run.  Without it the default action
    ends this process alone, and each pool worker runs its unit to the end (a GPAW site: minutes of a core)
    with nobody left to store the result.  Active only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _stop(signum: int, frame: Any) -> None:
        for child in multiprocessing.active_children():
            child.terminate()
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _single_threaded_env() -> Iterator[None]:
    """Child processes inherit the environment at spawn: make them single-threaded."""
    old = {v: os.environ.get(v) for v in _THREAD_VARS}
    for v in _THREAD_VARS:
        os.environ[v] = "1"
    try:
        yield
    finally:
        for v, val in old.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val


def default_executor(workers: int, nice: int = 15) -> cf.ProcessPoolExecutor:
    """Process pool of single-threaded, niced workers (spawn: no inherited OpenMP state)."""
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(nice,),
    )


_DASK_ADDRESS_RE = re.compile(r"^(tcp|tls|ucx|inproc|ws|wss)://\S+$")


def check_dask_address(address: str, workers: int = 1) -> None:
    """Raise ValueError unless ``address`` is ``"local"`` (with ``workers >= 1``) or a scheduler URL."""
    if address != "local" and not _DASK_ADDRESS_RE.match(address):
        raise ValueError(f"--dask {address!r}: expected 'local' or a scheduler address such as tcp://host:8786")
    if address == "local" and workers < 1:
        raise ValueError(f"--workers {workers}: a local Dask cluster needs at least one worker")


@contextlib.contextmanager
def dask_executor(address: str, workers: int = 1, nice: int = 15, timeout: float = 30.0) -> Iterator[cf.Executor]:
    """A :class:`concurrent.futures.Executor` running on Dask workers (``Client.get_executor()``).

    address : ``"local"``: a :class:`distributed.LocalCluster` of ``workers`` single-threaded
        worker processes (``OMP_NUM_THREADS=1``, niced by ``nice``), started here and closed on
        exit; or a scheduler address such as ``tcp://scheduler:8786``: the workers of that
        cluster (they need s2s and tblite installed; their environment is left as it is),
        reached within ``timeout`` seconds.
    The client (and a local cluster) are closed when the ``with`` block ends.
    """
    check_dask_address(address, workers)
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("--dask needs dask.distributed: pip install 'dask[distributed]' (s2s extra 'dask')") from e
    cluster = None
    with contextlib.ExitStack() as stack:
        if address == "local":
            with _single_threaded_env():  # the worker processes inherit it
                cluster = stack.enter_context(
                    LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
                )
            client = stack.enter_context(Client(cluster))
            client.run(_worker_init, nice)
        else:
            try:
                client = stack.enter_context(Client(address, timeout=f"{timeout}s"))
            except OSError as e:
                raise RuntimeError(f"--dask {address}: cannot reach the Dask scheduler ({e})") from e
        yield client.get_executor(pure=False)


# ---------------------------------------------------------------------------
# the build


@dataclass
class BuildReport:
    """What a build did.  Counts are in sites."""

    n_structures: int = 0
    n_sites: int = 0
    cached: int = 0
    stale: int = 0  # cached for a different structure under the same id: recomputed
    computed: int = 0
    failed: int = 0  # computed or cached with ok=False (calculation level)
    seconds: float = 0.0
    failures: list[tuple[str, int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.n_structures} structures, {self.n_sites} sites: {self.cached} cached, "
            f"{self.stale} stale, {self.computed} computed, {self.failed} failed, {self.seconds:.1f} s"
        )


def default_sites(structure: Structure, structure_id: str) -> list[int]:
    """Symmetrically unique O sites (:func:`s2s.environment.unique_o_sites`)."""
    return unique_o_sites(structure, structure_id=structure_id)


def plan(
    items: Iterable[tuple[str, Structure]],
    settings: XtbSettings,
    cache_dir: str | os.PathLike,
    retry_failed: bool = False,
    sites_fn: Callable[[Structure, str], list[int]] = default_sites,
) -> tuple[list[tuple[str, Structure, list[int]]], BuildReport]:
    """Split the work into units still to compute: ``[(id, structure, sites)]``.

    ``z+1``: one unit per missing site; ``ground``: one unit per structure with
    all its missing sites.  Cached sites are counted in the report.  A record
    whose structure hash differs from the structure's is stale and recomputed;
    a record without a hash (written before hashes existed) is adopted: the
    current hash is written into it.
    """
    report = BuildReport()
    units: list[tuple[str, Structure, list[int]]] = []
    seen: set[str] = set()
    for sid, structure in items:
        check_structure_id(sid)
        if sid in seen:
            raise ValueError(f"structure id {sid!r} appears twice in the input")
        seen.add(sid)
        check_si_o(structure, f"structure {sid!r}")
        sites = [int(s) for s in sites_fn(structure, sid)]
        report.n_structures += 1
        report.n_sites += len(sites)
        todo = []
        shash = structure_hash(structure)
        for s in sites:
            path = site_path(cache_dir, settings, sid, s)
            d = read_site_record(path)
            if d is not None and _is_stale(d, shash):
                report.stale += 1
                d = None
            elif d is not None and (d.get("meta") or {}).get("structure_hash") is None:
                d.setdefault("meta", {})["structure_hash"] = shash
                atomic_write_json(path, d)
            if d is not None and (d.get("ok") or not retry_failed):
                report.cached += 1
                if not d.get("ok"):
                    report.failed += 1
                    report.failures.append((sid, s, str(d.get("reason", ""))))
                continue
            todo.append(s)
        if not todo:
            continue
        if settings.variant == "ground":
            units.append((sid, structure, todo))
        else:
            units.extend((sid, structure, [s]) for s in todo)
    return units, report


def build(
    items: Iterable[tuple[str, Structure]],
    settings: XtbSettings,
    cache_dir: str | os.PathLike,
    workers: int = 1,
    executor: cf.Executor | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    sites_fn: Callable[[Structure, str], list[int]] = default_sites,
    nice: int = 15,
) -> BuildReport:
    """Compute every (unique) O-site spectrum of ``items`` not yet in the cache.

    items : ``(structure_id, pymatgen Structure)`` pairs; ids must be
        file-name safe and unique.
    workers : size of the default process pool; ``workers <= 0`` or ``1``
        with no executor runs in this process (handy for debugging/tests).
    executor : any :class:`concurrent.futures.Executor` (e.g. a Dask
        ``Client.get_executor()``); not shut down here.
    Results are written to the cache as each unit finishes (by this process).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    units, report = plan(items, settings, cache_dir, retry_failed, sites_fn)
    write_settings(cache_dir, settings)
    n_todo = sum(len(u[2]) for u in units)
    bar = tqdm(total=n_todo, desc=f"xtb {settings.variant} [{settings.calc_key()}]", unit="site", disable=not progress)

    def _record(dicts: list[dict]) -> None:
        for d in dicts:
            r = SiteResult.from_json_dict(d)
            write_site(cache_dir, settings, r)
            report.computed += 1
            if not r.ok:
                report.failed += 1
                report.failures.append((r.structure_id, r.site_index, r.reason))
        bar.update(len(dicts))

    def _fn(unit: tuple[str, Structure, list[int]]) -> tuple[Callable, tuple]:
        sid, structure, sites = unit
        if settings.variant == "ground":
            return _structure_unit, (structure, sid, sites, settings)
        return _site_unit, (structure, sid, sites[0], settings)

    try:
        if executor is None and workers <= 1:
            for unit in units:
                fn, args = _fn(unit)
                _record(fn(*args))
        else:
            own = executor is None
            with _single_threaded_env() if own else contextlib.nullcontext():
                ex = default_executor(workers, nice) if own else executor
                try:
                    futures = {}
                    for unit in units:
                        fn, args = _fn(unit)
                        futures[ex.submit(fn, *args)] = unit
                    for fut in cf.as_completed(futures):
                        _record(fut.result())
                finally:
                    if own:
                        ex.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - t0
    return report


def load_results(
    items: Iterable[tuple[str, Structure]],
    settings: XtbSettings,
    cache_dir: str | os.PathLike,
    sites_fn: Callable[[Structure, str], list[int]] = default_sites,
) -> dict[tuple[str, int], SiteResult | None]:
    """Cached results of every (unique) site of ``items``, broadened with ``settings``.

    Missing sites map to None; failed ones are SiteResult with ``ok=False``.
    """
    out: dict[tuple[str, int], SiteResult | None] = {}
    for sid, structure in items:
        for s in sites_fn(structure, sid):
            out[(sid, int(s))] = load_site(cache_dir, settings, sid, int(s), structure)
    return out


# ---------------------------------------------------------------------------
# input


def read_structures(folder: str | os.PathLike) -> list[tuple[str, Structure]]:
    """``(id, Structure)`` from a folder: StructureRecord/pymatgen JSON, CIF or POSCAR files.

    A JSON with ``id`` and ``structure`` keys is a StructureRecord (its ``id``
    is used); any other JSON must be a pymatgen Structure dict (id = file
    stem).  ``*.cif``, ``*.vasp``, ``POSCAR*`` are read by pymatgen (id = stem).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--structures {folder}: not a directory")
    out: list[tuple[str, Structure]] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        try:
            if p.suffix == ".json":
                d = json.loads(p.read_text())
                if isinstance(d, dict) and "structure" in d and "id" in d:
                    out.append((str(d["id"]), Structure.from_dict(d["structure"])))
                else:
                    out.append((p.stem, Structure.from_dict(d)))
            elif p.suffix.lower() in (".cif", ".vasp") or p.name.startswith(("POSCAR", "CONTCAR")):
                sid = p.stem if p.suffix else p.name
                out.append((sid, Structure.from_file(p)))
        except Exception as e:
            raise ValueError(f"{p}: cannot read a structure ({type(e).__name__}: {e})") from e
    if not out:
        raise ValueError(f"--structures {folder}: no *.json, *.cif, *.vasp or POSCAR files")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m s2s.simulate.build", description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", required=True, help="folder of structure files (JSON records, CIF, POSCAR)")
    ap.add_argument("--out", default="data/cache/xtb", help="cache folder (default data/cache/xtb)")
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="parallel single-threaded worker processes (with --dask local: the cluster's workers)",
    )
    ap.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="run the per-site work on Dask: 'local' (a LocalCluster of --workers processes) "
        "or a scheduler address, e.g. tcp://scheduler:8786 (needs dask[distributed])",
    )
    ap.add_argument("--variant", choices=["ground", "z+1"], default=XtbSettings.variant)
    ap.add_argument("--method", default=XtbSettings.method)
    ap.add_argument("--charge", type=int, default=None, help="total charge (default +1 for z+1, 0 for ground)")
    ap.add_argument("--min-length", type=float, default=XtbSettings.min_length, help="supercell min lattice vector, Å")
    ap.add_argument("--temperature", type=float, default=XtbSettings.temperature, help="electronic temperature, K")
    ap.add_argument("--max-iter", type=int, default=XtbSettings.max_iter)
    ap.add_argument("--only", nargs="*", default=None, help="restrict to these structure ids")
    ap.add_argument("--limit", type=int, default=None, help="at most this many structures (after --only)")
    ap.add_argument("--retry-failed", action="store_true", help="recompute cached failures")
    ap.add_argument("--nice", type=int, default=15)
    args = ap.parse_args(argv)
    if args.dask is not None:
        try:
            check_dask_address(args.dask, args.workers)
        except ValueError as e:
            ap.error(str(e))
    settings = XtbSettings(
        variant=args.variant,
        method=args.method,
        charge=args.charge,
        min_length=args.min_length,
        temperature=args.temperature,
        max_iter=args.max_iter,
    )
    items = read_structures(args.structures)
    if args.only:
        want = set(args.only)
        items = [it for it in items if it[0] in want]
    if args.limit is not None:
        items = items[: args.limit]
    print(f"settings {settings.calc_key()}: {settings.calc_fields()}", file=sys.stderr)
    if args.dask is not None:
        with dask_executor(args.dask, args.workers, args.nice) as ex:
            report = build(items, settings, args.out, executor=ex, retry_failed=args.retry_failed)
    else:
        if args.workers <= 1:  # this process computes: make it single-threaded and niced too
            _worker_init(args.nice)
        report = build(items, settings, args.out, workers=args.workers, retry_failed=args.retry_failed, nice=args.nice)
    print(report.summary())
    for sid, s, reason in report.failures[:50]:
        print(f"  failed {sid} site{s}: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
