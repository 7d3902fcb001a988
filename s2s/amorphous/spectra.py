"""O K-edge spectra of the amorphous cells with the training simulator.

Three steps, used by ``scripts/build_amorphous.py spectra``:

1. :func:`select_sites` picks, per composition x, the first ``target`` O sites
   of the cells in cell-id order: every O of cells 0, 1, ..., and the
   lowest-index O sites of the last cell needed (an amorphous cell has no
   symmetry, so every O site is its own spectrum).
2. :func:`compute` runs the simulator (one Z+1 SCF per site with the default
   :class:`s2s.simulate.xtb.XtbSettings`) over the selected sites that are not
   cached yet, in :func:`round_robin` order (x = 0.25, 0.5, ..., 2.0, then the
   next site of each x; within an x the cells take turns), so an interrupted
   run has sites of every composition and cell.  Compositions whose SCF keeps
   failing are postponed after a few probe sites.  Every result is written to
   the per-site cache of :mod:`s2s.simulate.build` as soon as it exists, so a
   restart resumes.
3. :func:`collect` reads whatever is cached into :class:`s2s.dataset.SiteRecord`
   objects (split ``"test"``) and a summary with counts per x, failures by
   kind and HOMO-LUMO gap statistics.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SOURCE = "amorphous-meltquench-tersoff"


def o_sites(structure) -> list[int]:
    """Indices of every O site of a cell."""
    return [i for i, s in enumerate(structure) if s.specie.symbol == "O"]


def select_sites(
    entries: Sequence[Mapping[str, Any]],
    cells: Sequence,
    targets: Mapping[float, int],
    use: Collection[str] | None = None,
    failed: Collection[tuple[str, int]] = (),
    strict: bool = True,
) -> dict[str, list[int]]:
    """Sites to compute per cell name: the first ``targets[x]`` O sites of each composition.

    entries : manifest cell entries (``name``, ``x``, ``cell_id``), parallel to ``cells``
        (pymatgen Structures).  Cells are used in cell-id order; a cell whose x is
        not in ``targets`` or that is not needed gets no sites (and no key).
    use : only these cells (e.g. the cells that passed the SCF probe); default all.
    failed : (cell, site) pairs known to have failed; they stay selected (so they are
        reported) but do not count towards the target, so the next sites replace them.
    strict : raise ValueError when a composition has fewer usable O sites than its
        target (otherwise the selection is simply short; see :func:`shortfall`).
    """
    if len(entries) != len(cells):
        raise ValueError(f"select_sites: {len(entries)} manifest entries but {len(cells)} cells")
    allowed = None if use is None else set(use)
    bad = set(failed)
    by_x: dict[float, list[tuple[int, str, Any]]] = defaultdict(list)
    for entry, cell in zip(entries, cells):
        if allowed is None or entry["name"] in allowed:
            by_x[float(entry["x"])].append((int(entry["cell_id"]), str(entry["name"]), cell))
    selected: dict[str, list[int]] = {}
    for x, target in targets.items():
        left = int(target)
        for _, name, cell in sorted(by_x.get(float(x), []), key=lambda t: t[0]):
            if left <= 0:
                break
            sites: list[int] = []
            for site in o_sites(cell):
                if left <= 0:
                    break
                sites.append(site)
                left -= (name, site) not in bad
            selected[name] = sites
        if left > 0 and strict:
            raise ValueError(
                f"select_sites: x={x} needs {target} O sites, the cells hold only "
                f"{target - left}; build more cells (scripts/build_amorphous.py md)"
            )
    return selected


def shortfall(
    selected: Mapping[str, Sequence[int]],
    x_of: Mapping[str, float],
    targets: Mapping[float, int],
    failed: Collection[tuple[str, int]] = (),
) -> dict[str, int]:
    """Per composition (``"0.50"``): how many usable sites the selection lacks for its target (>= 0)."""
    have: dict[float, int] = defaultdict(int)
    bad = set(failed)
    for name, sites in selected.items():
        have[float(x_of[name])] += sum((name, s) not in bad for s in sites)
    return {f"{float(x):.2f}": max(0, int(n) - have[float(x)]) for x, n in sorted(targets.items())}


def spare_sites(
    entries: Sequence[Mapping[str, Any]],
    cells: Sequence,
    selected: Mapping[str, Sequence[int]],
    n_extra: int,
    xs: Sequence[float] | None = None,
) -> dict[str, list[int]]:
    """Every O site of the next ``n_extra`` cells (by cell id) of each x that ``selected`` does not use.

    xs : only these compositions (default all).  Used to add the spare cells of
    compositions whose selected cells fail in the simulator.
    """
    by_x: dict[float, list[tuple[int, str, Any]]] = defaultdict(list)
    for entry, cell in zip(entries, cells):
        if entry["name"] not in selected:
            by_x[float(entry["x"])].append((int(entry["cell_id"]), str(entry["name"]), cell))
    wanted = None if xs is None else {float(x) for x in xs}
    out: dict[str, list[int]] = {}
    for x, rows in by_x.items():
        if wanted is not None and x not in wanted:
            continue
        for _, name, cell in sorted(rows, key=lambda t: t[0])[: max(0, int(n_extra))]:
            out[name] = o_sites(cell)
    return out


def round_robin(
    selected: Mapping[str, Sequence[int]], x_of: Mapping[str, float], cell_id_of: Mapping[str, int]
) -> list[tuple[str, int]]:
    """Order ``(cell name, site)`` so that every composition and every cell gets sites early.

    Within a composition the cells take turns (1st site of each cell, then the
    2nd, ...); the compositions take turns in increasing x.
    """
    per_x: dict[float, list[tuple[int, int, str, int]]] = defaultdict(list)
    for name, sites in selected.items():
        for rank, site in enumerate(sites):
            per_x[float(x_of[name])].append((rank, int(cell_id_of[name]), name, int(site)))
    queues = {x: [(name, site) for _, _, name, site in sorted(v)] for x, v in sorted(per_x.items())}
    order: list[tuple[str, int]] = []
    depth = max((len(q) for q in queues.values()), default=0)
    for i in range(depth):
        for q in queues.values():
            if i < len(q):
                order.append(q[i])
    return order


def compute(
    order: Sequence[tuple[str, int]],
    structures: Mapping[str, Any],
    settings,
    cache_dir: Path,
    x_of: Mapping[str, float],
    progress: bool = True,
    retry_failed: bool = False,
    probe: int = 3,
    max_fail_fraction: float = 2 / 3,
    simulate: Callable | None = None,
    log: Callable[[str], None] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Simulate every site of ``order`` not in the cache; write each to the cache as it comes.

    deadline : ``time.time()`` after which no new site is started (the rest stays
    pending; ``stopped_at_deadline`` in the returned dict).

    The compositions take turns (one site each per round, in the order the sites
    of each x have in ``order``).  A *cell* whose SCF failed on at least
    ``max_fail_fraction`` of at least ``probe`` attempted sites (cached ones
    included) is *postponed*: its composition goes on with its other cells, and
    the postponed sites run only after every other site is done, so failing
    SCFs (each one costs all ``max_iter`` cycles) do not eat the time of the
    cells that converge.

    structures : cell name -> pymatgen Structure; x_of : cell name -> x.
    simulate : ``f(structure, site, settings, structure_id) -> SiteResult``
        (default :func:`s2s.simulate.xtb.simulate_site`).  Uses the cache layout,
    the staleness check (structure hash) and the failure records of
    :mod:`s2s.simulate.build`.  Returns counts, the postponed compositions and
    the mean seconds per computed site.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415

    from s2s.simulate.build import plan, read_site_record, site_path, write_settings, write_site  # noqa: PLC0415
    from s2s.simulate.xtb import simulate_site  # noqa: PLC0415

    simulate = simulate or simulate_site
    wanted: dict[str, list[int]] = defaultdict(list)
    for name, site in order:
        wanted[name].append(site)
    items = [(name, structures[name]) for name in wanted]
    units, report = plan(
        items, settings, cache_dir, retry_failed=retry_failed, sites_fn=lambda structure, sid: wanted[sid]
    )
    todo = {(sid, s) for sid, _, sites in units for s in sites}
    write_settings(cache_dir, settings)
    attempts: dict[str, int] = defaultdict(int)
    scf_failed: dict[str, int] = defaultdict(int)
    queues: dict[float, list[tuple[str, int]]] = {}
    for name, site in order:
        x = float(x_of[name])
        queues.setdefault(x, [])
        if (name, site) in todo:
            queues[x].append((name, site))
            continue
        d = read_site_record(site_path(cache_dir, settings, name, site)) or {}
        attempts[name] += 1
        scf_failed[name] += failure_kind(str(d.get("reason", ""))) == "scf" and not d.get("ok", False)

    def postponed(name: str) -> bool:
        return attempts[name] >= probe and scf_failed[name] >= max_fail_fraction * attempts[name]

    def next_site(x: float, allow_postponed: bool) -> int | None:
        for i, (name, _) in enumerate(queues[x]):
            if allow_postponed or not postponed(name):
                return i
        return None

    n_todo = sum(len(q) for q in queues.values())
    bar = tqdm(
        total=n_todo,
        desc=f"amorphous xtb {settings.variant} [{settings.calc_key()}]",
        unit="site",
        disable=not progress,
        mininterval=0,
    )
    seconds: list[float] = []
    n_failed = 0
    stopped = False
    try:
        while any(queues.values()) and not stopped:
            picks = {x: next_site(x, False) for x, q in queues.items() if q}
            picks = {x: i for x, i in picks.items() if i is not None}
            if not picks:  # only postponed cells are left: run them after all
                picks = {x: 0 for x, q in queues.items() if q}
            for x, i in picks.items():
                if deadline is not None and time.time() >= deadline:
                    stopped = True
                    break
                name, site = queues[x].pop(i)
                t0 = time.perf_counter()
                result = simulate(structures[name], site, settings, structure_id=name)
                write_site(cache_dir, settings, result)
                seconds.append(time.perf_counter() - t0)
                n_failed += not result.ok
                attempts[name] += 1
                scf_failed[name] += (not result.ok) and failure_kind(result.reason) == "scf"
                bar.set_postfix_str(
                    f"{name}:{site} {seconds[-1]:.1f}s gap {result.gap:.2f} "
                    f"{'ok' if result.ok else result.reason[:40]}",
                    refresh=False,
                )
                bar.update(1)
                if log is not None:
                    log(
                        f"{name} site {site}: {seconds[-1]:.1f} s, gap {result.gap:.3f} eV, "
                        f"{'ok' if result.ok else result.reason}"
                    )
    finally:
        bar.close()
    return {
        "n_sites": len(order),
        "cached_before": report.cached,
        "computed": len(seconds),
        "failed_now": n_failed,
        "postponed_cells": sorted(n for n in attempts if postponed(n)),
        "mean_s_per_site": float(np.mean(seconds)) if seconds else None,
        "stopped_at_deadline": stopped,
    }


def failure_kind(reason: str) -> str:
    """Short class of a failure reason: ``scf``, ``gap`` or ``other``."""
    if reason.startswith("scf failed"):
        return "scf"
    if reason.startswith("gap collapse"):
        return "gap"
    return "other"


def collect(
    order: Sequence[tuple[str, int]],
    structures: Mapping[str, Any],
    entries: Mapping[str, Mapping[str, Any]],
    settings,
    cache_dir: Path,
    simulator: str,
    keep_small_gap: bool = True,
    extra_cells: Sequence[str] = (),
    compositions: Sequence[float] = (),
    source: str = SOURCE,
) -> tuple[list, dict[str, Any]]:
    """Cached results of the selected sites as test records, and a summary.

    entries : cell name -> manifest entry (x, cell_id, seed, n_si, n_o).
    Sites are returned sorted by (x, cell id, site); the summary has, per x, ``n_computed``
    (selected sites in the cache), ``scf_pass_rate`` (the fraction of those whose SCF converged,
    gap failures included) and ``gap_eV`` (min/median/max of the converged sites).  A site is *pending* (not
    cached), *failed* (``ok=False``: SCF failure, no empty O-p weight, or a
    HOMO-LUMO gap below ``settings.min_gap``), *skipped* (no Si within the
    environment cutoff), or a record.

    keep_small_gap : keep converged sites whose gap is below ``settings.min_gap``
        (but >= 0) as records with ``meta["gap_ok"] = False`` instead of failing
        them; the crystal set excludes such sites, so filter on ``gap_ok`` for
        the identical rule.
    extra_cells : names of spare cells added beyond the paper's selection; their
        records carry ``meta["extra_cell"] = True`` and are counted in
        ``n_sites_extra_cells`` as well as in ``n_sites``.
    compositions : x values that appear in the per-x counts even when none of
        their sites was selected (a composition with no usable cell counts 0,
        it is not left out).
    source : ``SiteRecord.source`` of the records (the glass family).
    """
    extra = set(extra_cells)
    from s2s.dataset import SiteRecord  # noqa: PLC0415
    from s2s.environment import EmptyFirstShellError, environment_from_structure  # noqa: PLC0415
    from s2s.simulate.build import load_site  # noqa: PLC0415

    records = []
    failures: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    pending: dict[str, int] = defaultdict(int)
    gaps: dict[str, list[float]] = defaultdict(list)
    secs: dict[str, list[float]] = defaultdict(list)
    secs_conv: dict[str, list[float]] = defaultdict(list)
    secs_scf: dict[str, list[float]] = defaultdict(list)
    fail_x: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    n_sel: dict[str, int] = defaultdict(int)
    per_cell: dict[str, dict[str, Any]] = {}
    key_of = {name: f"{float(e['x']):.2f}" for name, e in entries.items()}
    ordered = sorted(order, key=lambda t: (float(entries[t[0]]["x"]), int(entries[t[0]]["cell_id"]), t[1]))
    for name, site in ordered:
        entry, cell, xk = entries[name], structures[name], key_of[name]
        n_sel[xk] += 1
        cell_row = per_cell.setdefault(
            name,
            {
                "x": float(entry["x"]),
                "si_cn4_fraction": (entry.get("summary") or {}).get("si_cn4_fraction"),
                "selected": 0,
                "ok": 0,
                "gap_below_min": 0,
                "scf": 0,
                "other": 0,
                "pending": 0,
            },
        )
        cell_row["selected"] += 1
        r = load_site(cache_dir, settings.with_(min_gap=0.0) if keep_small_gap else settings, name, site, cell)
        if r is None:
            pending[xk] += 1
            cell_row["pending"] += 1
            continue
        if np.isfinite(r.gap):
            gaps[xk].append(float(r.gap))
        secs[xk].append(float(r.seconds))
        failed_scf = (not r.ok) and failure_kind(r.reason) == "scf"
        (secs_scf if failed_scf else secs_conv)[xk].append(float(r.seconds))
        if not r.ok:
            kind = failure_kind(r.reason)
            fail_x[xk][kind] += 1
            cell_row["gap_below_min" if kind == "gap" else kind] += 1
            failures.append(
                {
                    "cell": name,
                    "site": site,
                    "x": float(entry["x"]),
                    "kind": kind,
                    "reason": r.reason,
                    "gap_eV": _f(r.gap),
                }
            )
            continue
        try:
            env = environment_from_structure(cell, site, structure_id=name)
        except EmptyFirstShellError as err:
            skipped.append({"cell": name, "site": site, "reason": str(err)})
            continue
        cell_row["ok"] += 1
        cell_row["gap_below_min"] += not r.gap >= settings.min_gap
        records.append(
            SiteRecord(
                spectrum=r.spectrum,
                environment=env,
                structure_id=name,
                site_index=site,
                multiplicity=1,
                formula=cell.composition.reduced_formula,
                x=float(entry["x"]),
                source=source,
                simulator=simulator,
                settings=settings.to_dict(),
                split="test",
                meta={
                    "cell_id": int(entry["cell_id"]),
                    "seed": int(entry["seed"]),
                    "composition_x": float(entry["x"]),
                    "gap_eV": _f(r.gap),
                    "n_atoms_cell": len(cell),
                    "calc_key": settings.calc_key(),
                    "seconds": round(float(r.seconds), 2),
                    "gap_ok": bool(r.gap >= settings.min_gap),
                    "min_gap_eV": settings.min_gap,
                    "extra_cell": name in extra,
                    "store": str(entry.get("store", "")),
                },
            )
        )
    n_sites: dict[str, int] = defaultdict(int)
    n_gap_ok: dict[str, int] = defaultdict(int)
    n_extra: dict[str, int] = defaultdict(int)
    for rec in records:
        n_extra[f"{rec.x:.2f}"] += rec.meta["extra_cell"]
        n_sites[f"{rec.x:.2f}"] += 1
        n_gap_ok[f"{rec.x:.2f}"] += rec.meta["gap_ok"]
    keys = sorted(set(n_sel) | {f"{float(x):.2f}" for x in compositions}, key=float)
    summary = {
        "n_selected": {k: n_sel[k] for k in keys},
        "n_sites": {k: n_sites.get(k, 0) for k in keys},
        "n_sites_gap_ok": {k: n_gap_ok.get(k, 0) for k in keys},
        "n_sites_extra_cells": {k: n_extra.get(k, 0) for k in keys},
        "n_pending": {k: pending.get(k, 0) for k in keys},
        "n_failed": {k: dict(fail_x[k]) for k in keys},
        "n_computed": {k: n_sel[k] - pending.get(k, 0) for k in keys},
        "scf_pass_rate": {k: _scf_rate(n_sel[k] - pending.get(k, 0), fail_x[k].get("scf", 0)) for k in keys},
        "n_skipped_empty_first_shell": len(skipped),
        "gap_eV": {k: _gap_stats(gaps[k], settings.min_gap) for k in keys},
        "s_per_site_mean": {k: (round(float(np.mean(secs[k])), 2) if secs[k] else None) for k in keys},
        "s_per_site_converged": {k: (round(float(np.mean(secs_conv[k])), 2) if secs_conv[k] else None) for k in keys},
        "s_per_site_scf_failed": {k: (round(float(np.mean(secs_scf[k])), 2) if secs_scf[k] else None) for k in keys},
        "per_cell": per_cell,
        "failures": failures,
        "skipped": skipped,
    }
    return records, summary


def _scf_rate(n_computed: int, n_scf_failed: int) -> float | None:
    """Fraction of the computed (cached) sites whose SCF converged; None when none was computed."""
    return round((n_computed - n_scf_failed) / n_computed, 3) if n_computed else None


def _f(v: float) -> float | None:
    return round(float(v), 4) if np.isfinite(v) else None


def _gap_stats(gaps: list[float], min_gap: float) -> dict[str, Any]:
    if not gaps:
        return {"n": 0}
    g = np.asarray(gaps)
    return {
        "n": int(g.size),
        "min": round(float(g.min()), 4),
        "median": round(float(np.median(g)), 4),
        "max": round(float(g.max()), 4),
        f"below_{min_gap:g}": int((g < min_gap).sum()),
        "below_0.5": int((g < 0.5).sum()),
    }


def unusable_sites(
    cache_dir: Path, settings, structures: Mapping[str, Any], names: Collection[str], keep_small_gap: bool = True
) -> set[tuple[str, int]]:
    """(cell, O site) pairs whose cached result will not become a record.

    That is an SCF (or other) failure, or with ``keep_small_gap=False`` also a
    gap below ``settings.min_gap``.  Stale records (another structure under the
    same name) are ignored.
    """
    from s2s.simulate.build import load_site  # noqa: PLC0415

    st = settings.with_(min_gap=0.0) if keep_small_gap else settings
    bad: set[tuple[str, int]] = set()
    for name in names:
        cell = structures[name]
        for site in o_sites(cell):
            r = load_site(cache_dir, st, name, site, cell)
            if r is not None and not r.ok:
                bad.add((name, site))
    return bad


def gated_selection(
    entries: Sequence[Mapping[str, Any]],
    cells: Sequence,
    targets: Mapping[float, int],
    probes_path: Path,
    settings,
    cache_dir: Path,
    mode: str = "z+1",
    max_iter: int = 60,
    run: bool = True,
    probe_all: bool = False,
    keep_small_gap: bool = True,
    simulate: Callable | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Select sites only from cells that pass the SCF probe (:mod:`s2s.amorphous.probe`).

    Per composition the cells are taken in cell-id order; with ``run`` a cell
    without a current probe record is probed when it is reached (``probe_all``:
    every cell of the composition is probed, so the pass rate is known for all).
    A cell that fails the probe gets no site.  Sites already known to fail in
    the cache (:func:`unusable_sites`) stay selected but do not count towards
    the target, so later sites replace them.  Without ``run`` only stored probe
    records are used and unprobed cells are left out.

    Returns ``(selected, info)``; info: ``probes`` (records of the cells of the
    requested compositions), ``passed``, ``failed``, ``unprobed`` (sorted
    names), ``unusable`` (list of [cell, site]) and ``shortfall`` per x.
    """
    from s2s.amorphous import probe as pr  # noqa: PLC0415

    if len(entries) != len(cells):
        raise ValueError(f"gated_selection: {len(entries)} manifest entries but {len(cells)} cells")
    structures = {str(e["name"]): c for e, c in zip(entries, cells)}
    x_of = {str(e["name"]): float(e["x"]) for e in entries}
    wanted_x = {float(x) for x in targets}
    by_x: dict[float, list[tuple[int, str]]] = defaultdict(list)
    for e in entries:
        if float(e["x"]) in wanted_x:
            by_x[float(e["x"])].append((int(e["cell_id"]), str(e["name"])))
    probes = pr.read_probes(probes_path)
    unusable = unusable_sites(cache_dir, settings, structures, [n for v in by_x.values() for _, n in v], keep_small_gap)
    for x, rows in sorted(by_x.items()):
        capacity = 0
        for _, name in sorted(rows):
            cell = structures[name]
            current = pr.is_current(probes.get(name), cell, settings, mode, max_iter)
            if capacity >= targets[x] and not probe_all:
                break
            if not current:
                if not run:
                    continue
                probes = pr.run_probes(
                    {name: cell}, probes_path, settings, mode, max_iter, simulate=simulate, progress=False, log=log
                )
            if probes[name]["ok"]:
                capacity += sum((name, s) not in unusable for s in o_sites(cell))
    names = [n for v in by_x.values() for _, n in v]
    passed, failed, unprobed = pr.passing_cells(probes, {n: structures[n] for n in names}, settings, mode, max_iter)
    selected = select_sites(entries, cells, targets, use=passed, failed=unusable, strict=False)
    info = {
        "probes": {n: probes[n] for n in sorted(names) if n in probes and n not in unprobed},
        "passed": sorted(passed),
        "failed": sorted(failed),
        "unprobed": sorted(unprobed),
        "unusable": sorted([list(t) for t in unusable]),
        "shortfall": shortfall(selected, x_of, targets, unusable),
        "summary": pr.probe_summary({n: probes[n] for n in names if n not in unprobed}, x_of, names),
    }
    return selected, info


def status_table(summary: Mapping[str, Any]) -> str:
    """Markdown table of where each composition stands, from ``spectra.json`` (the collected summary).

    Columns: paper count, store and melt temperature, cells in that store, probed, passed the
    probe, spectra, spectra with gap >= ``min_gap``, failed sites (SCF), pending sites,
    shortfall to the paper's count, and mean seconds per probe / site; a last row sums the counts.
    """
    settings = summary.get("settings", {})
    min_gap = settings.get("min_gap", 0.1)
    probe = summary.get("probe", {})
    per_x, short = probe.get("per_x", {}), probe.get("shortfall", {})
    proto = summary.get("protocol_by_x", {})

    def num(v: Any) -> str:
        return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    cols = [
        "x",
        "paper",
        "store (melt T)",
        "cells built",
        "probed",
        "passed probe",
        "spectra",
        f"of which gap >= {min_gap:g} eV",
        "sites failed (SCF)",
        "pending",
        "shortfall",
        "s/probe passed",
        "s/probe failed",
        "s/site converged",
        "s/site SCF failed",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    total = defaultdict(int)
    for x in sorted(summary.get("paper_n_sites", {}), key=float):
        px, pr = per_x.get(x, {}), proto.get(x, {})
        melt = pr.get("protocol", {}).get("melt_T")
        store = f"{pr.get('store', '-')} ({melt:g} K)" if melt is not None else pr.get("store", "-")
        counts = [
            px.get("cells"),
            px.get("probed"),
            px.get("passed"),
            summary.get("n_sites", {}).get(x, 0),
            summary.get("n_sites_gap_ok", {}).get(x, 0),
            summary.get("n_failed", {}).get(x, {}).get("scf", 0),
            summary.get("n_pending", {}).get(x, 0),
        ]  # "cells built" ... "pending", summed in the last row
        paper = summary["paper_n_sites"][x]
        total["paper"] += paper
        for i, v in enumerate(counts):
            total[i] += v or 0
        seconds = [
            px.get("s_probe_passed"),
            px.get("s_probe_failed"),
            summary.get("s_per_site_converged", {}).get(x),
            summary.get("s_per_site_scf_failed", {}).get(x),
        ]
        row = [x, num(paper), store, *map(num, counts), num(short.get(x)), *map(num, seconds)]
        lines.append("| " + " | ".join(row) + " |")
    last = ["all", num(total["paper"]), "", *(num(total[i]) for i in range(7))] + [""] * 5
    lines.append("| " + " | ".join(last) + " |")
    return "\n".join(lines)
