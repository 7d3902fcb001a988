"""O K-edge spectra of the amorphous cells with the training simulator.

Three steps, used by ``scripts/build_amorphous.py spectra`` (the site selection is in
:mod:`s2s.amorphous.sites`; its names are re-exported here):

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
from tqdm.auto import tqdm

from s2s.amorphous.sites import (
    gated_selection,
    o_sites,
    round_robin,
    select_sites,
    shortfall,
    spare_sites,
    unusable_sites,
)
from s2s.dataset import SiteRecord
from s2s.environment import EmptyFirstShellError, environment_from_structure
from s2s.simulate.build import load_site, plan, read_site_record, site_path, write_settings, write_site
from s2s.simulate.xtb import simulate_site

__all__ = [
    "SOURCE",
    "collect",
    "compute",
    "failure_kind",
    "gated_selection",
    "o_sites",
    "round_robin",
    "select_sites",
    "shortfall",
    "spare_sites",
    "status_table",
    "unusable_sites",
]

SOURCE = "amorphous-meltquench-tersoff"


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
    queues, attempts, scf_failed = _queues(order, todo, x_of, cache_dir, settings)

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


def _queues(
    order: Sequence[tuple[str, int]],
    todo: Collection[tuple[str, int]],
    x_of: Mapping[str, float],
    cache_dir: Path,
    settings,
) -> tuple[dict[float, list[tuple[str, int]]], dict[str, int], dict[str, int]]:
    """Per x the sites of ``order`` still to do, in order; and per cell the sites attempted so far and those whose
    SCF failed, counted from the cached records of the sites not in ``todo``."""
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
    return queues, attempts, scf_failed


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
        rec = _site_record(r, cell, name, site, entry, settings, simulator, source, name in extra, skipped)
        if rec is not None:
            cell_row["ok"] += 1
            cell_row["gap_below_min"] += not r.gap >= settings.min_gap
            records.append(rec)
    summary = _summary(
        records, n_sel, pending, fail_x, gaps, secs, secs_conv, secs_scf, compositions, settings.min_gap, len(skipped)
    )
    summary.update(per_cell=per_cell, failures=failures, skipped=skipped)
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


def _site_record(
    r,
    cell,
    name: str,
    site: int,
    entry: Mapping[str, Any],
    settings,
    simulator: str,
    source: str,
    extra_cell: bool,
    skipped: list[dict[str, Any]],
):
    """The test :class:`s2s.dataset.SiteRecord` of a converged cached site ``r`` of ``cell``; None (and a row
    appended to ``skipped``) when the site has no Si within the environment cutoff."""
    try:
        env = environment_from_structure(cell, site, structure_id=name)
    except EmptyFirstShellError as err:
        skipped.append({"cell": name, "site": site, "reason": str(err)})
        return None
    return SiteRecord(
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
            "extra_cell": extra_cell,
            "store": str(entry.get("store", "")),
        },
    )


def _summary(
    records: list,
    n_sel: Mapping[str, int],
    pending: Mapping[str, int],
    fail_x: Mapping[str, Mapping[str, int]],
    gaps: Mapping[str, list[float]],
    secs: Mapping[str, list[float]],
    secs_conv: Mapping[str, list[float]],
    secs_scf: Mapping[str, list[float]],
    compositions: Sequence[float],
    min_gap: float,
    n_skipped: int = 0,
) -> dict[str, Any]:
    """The per-x counts of :func:`collect`'s summary (keys ``"%.2f"``; gaps in eV, times in s per site)."""
    n_sites: dict[str, int] = defaultdict(int)
    n_gap_ok: dict[str, int] = defaultdict(int)
    n_extra: dict[str, int] = defaultdict(int)
    for rec in records:
        n_extra[f"{rec.x:.2f}"] += rec.meta["extra_cell"]
        n_sites[f"{rec.x:.2f}"] += 1
        n_gap_ok[f"{rec.x:.2f}"] += rec.meta["gap_ok"]
    keys = sorted(set(n_sel) | {f"{float(x):.2f}" for x in compositions}, key=float)
    return {
        "n_selected": {k: n_sel[k] for k in keys},
        "n_sites": {k: n_sites.get(k, 0) for k in keys},
        "n_sites_gap_ok": {k: n_gap_ok.get(k, 0) for k in keys},
        "n_sites_extra_cells": {k: n_extra.get(k, 0) for k in keys},
        "n_pending": {k: pending.get(k, 0) for k in keys},
        "n_failed": {k: dict(fail_x[k]) for k in keys},
        "n_computed": {k: n_sel[k] - pending.get(k, 0) for k in keys},
        "scf_pass_rate": {k: _scf_rate(n_sel[k] - pending.get(k, 0), fail_x[k].get("scf", 0)) for k in keys},
        "n_skipped_empty_first_shell": n_skipped,
        "gap_eV": {k: _gap_stats(gaps[k], min_gap) for k in keys},
        "s_per_site_mean": {k: (round(float(np.mean(secs[k])), 2) if secs[k] else None) for k in keys},
        "s_per_site_converged": {k: (round(float(np.mean(secs_conv[k])), 2) if secs_conv[k] else None) for k in keys},
        "s_per_site_scf_failed": {k: (round(float(np.mean(secs_scf[k])), 2) if secs_scf[k] else None) for k in keys},
    }


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
