"""The spectra step of the amorphous test set as a library; ``scripts/build_amorphous.py spectra`` is its CLI.

One store (one MD protocol) serves each composition x (:func:`store_groups`).  The O sites are
chosen either behind the per-cell SCF probe (:func:`select_and_compute`: rounds of gated selection
and simulation, failed sites replaced by the next ones) or, without the probe, as the paper's sites
plus spare cells of the compositions whose sites fail.  The cached results become the test dataset
(``amorphous.h5``), ``spectra.json`` (:func:`spectra_json`) and the ``results.json`` entry
(:func:`results_entry`); :func:`status_block` is the status table of docs/amorphous.md, printed, not
written into the doc.  Times: ``deadline`` is epoch seconds (UTC); gaps in eV; durations in s.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from s2s.amorphous import spectra as sp
from s2s.amorphous.store import load_cells, read_manifest
from s2s.simulate.build import read_site_record, site_path

Log = Callable[[str], None]


@dataclass(frozen=True)
class SpectraOptions:
    """Choices of the spectra step; the CLI flags of the same names (``--probe-mode`` ...) set them.

    probe_mode : ``z+1`` or ``ground`` (per-cell SCF probe gates the cells) or ``none`` (the paper's
        selection plus ``extra_cells`` spare cells of the compositions whose sites fail).
    probe_max_iter : SCF cycles of the probe.  probe_all : probe every cell of the requested x.
    keep_small_gap : keep sites with a gap below ``min_gap`` eV (flagged ``gap_ok=False``).
    rounds : select-compute rounds of the gated selection.  retry_failed : recompute cached failures.
    probe : sites tried per cell before a cell that keeps failing is postponed (:func:`sp.compute`).
    compute : run the simulator (False: only collect what is cached).
    deadline : epoch seconds (UTC) after which no new site starts (:func:`deadline_utc`); None: none.
    """

    probe_mode: str = "z+1"
    probe_max_iter: int = 60
    probe_all: bool = False
    keep_small_gap: bool = True
    rounds: int = 3
    retry_failed: bool = False
    probe: int = 1
    extra_cells: int = 1
    compute: bool = True
    deadline: float | None = None
    progress: bool = True


class StoreGroup(NamedTuple):
    """The cells of one store that serve the compositions ``targets`` (x -> number of sites)."""

    path: Path
    manifest: dict
    entries: list[dict]
    cells: list
    targets: dict[float, int]


class Selection(NamedTuple):
    """The sites chosen (cell name -> O sites), the merged probe gate (None without it) and the spare cells."""

    selected: dict[str, list[int]]
    gate: dict | None
    extra: dict[str, list[int]]


def deadline_utc(stop_at: str | None, now: dt.datetime | None = None) -> float | None:
    """Epoch seconds of the next ``HH:MM`` UTC (within 24 h, so 00:30 given at 22:40 is after midnight), or None.

    ValueError when ``stop_at`` is not ``HH:MM``.
    """
    if not stop_at:
        return None
    try:
        hh, mm = (int(v) for v in stop_at.split(":"))
        now = now or dt.datetime.now(dt.timezone.utc)
        when = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    except ValueError as err:
        raise ValueError(f"expected HH:MM (UTC), got {stop_at!r} ({err})") from None
    if when <= now:
        when += dt.timedelta(days=1)
    return when.timestamp()


def spectra_targets(
    manifest: Mapping[str, Any], xs: Sequence[float] | None = None, max_sites: int | None = None
) -> dict[float, int]:
    """Sites wanted per x: the paper's counts of the store's manifest, only ``xs`` (when given), at most
    ``max_sites`` each."""
    targets = {float(x): int(n) for x, n in manifest["paper_n_sites"].items()}
    if xs:
        targets = {x: n for x, n in targets.items() if x in xs}
    if max_sites is not None:
        targets = {x: min(n, max_sites) for x, n in targets.items()}
    return targets


def store_groups(
    stores: Mapping[Path, Sequence[float]], store: Path, manifest: dict, targets: Mapping[float, int]
) -> list[StoreGroup]:
    """One :class:`StoreGroup` per store of ``stores`` (store -> the x it serves); ``store`` is the default
    store, whose ``manifest`` is already read.  Each entry gets ``store`` (the store's folder name);
    ValueError when two stores hold cells of the same name."""
    groups = []
    for path, xs in stores.items():
        man = manifest if path == store else read_manifest(path)
        ents, cls = [], []
        for e, c in zip(man["cells"], load_cells(path)):
            if float(e["x"]) in xs:
                ents.append({**e, "store": path.name})
                cls.append(c)
        groups.append(StoreGroup(path, man, ents, cls, {x: targets[x] for x in xs}))
    names = [e["name"] for g in groups for e in g.entries]
    if len(set(names)) != len(names):
        raise ValueError("two stores hold cells of the same name; build variant stores with --tag")
    return groups


def gated_over_stores(
    groups: Sequence[StoreGroup], settings, cache: Path, opts: SpectraOptions, run: bool, log: Log = print
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """:func:`s2s.amorphous.sites.gated_selection` in each store (its own ``probes.json``), merged: the
    sites per cell and one info dict (dicts merged, lists joined, shortfall and summary sorted by x)."""
    selected: dict = {}
    merged: dict = {"probes": {}, "passed": [], "failed": [], "unprobed": [], "unusable": [], "shortfall": {}}
    merged["summary"] = {}
    for g in groups:
        sel, info = sp.gated_selection(
            g.entries,
            g.cells,
            g.targets,
            g.path / "probes.json",
            settings,
            cache,
            mode=opts.probe_mode,
            max_iter=opts.probe_max_iter,
            run=run,
            probe_all=opts.probe_all,
            keep_small_gap=opts.keep_small_gap,
            progress=opts.progress,
            log=log,
        )
        selected.update(sel)
        for k, v in info.items():
            merged[k] = {**merged[k], **v} if isinstance(v, dict) else merged[k] + v
    merged["shortfall"] = {k: merged["shortfall"][k] for k in sorted(merged["shortfall"], key=float)}
    merged["summary"] = {k: merged["summary"][k] for k in sorted(merged["summary"], key=float)}
    return selected, merged


def scf_failed(cache: Path, settings, name: str, site: int) -> bool:
    """Whether the cached result of ``site`` of cell ``name`` is an SCF failure."""
    d = read_site_record(site_path(cache, settings, name, site))
    return d is not None and not d.get("ok", False) and sp.failure_kind(str(d.get("reason", ""))) == "scf"


def select_and_compute(
    groups: Sequence[StoreGroup], settings, cache: Path, opts: SpectraOptions, log: Log = print
) -> Selection:
    """Choose the sites and simulate those not in the cache (``cache``) unless ``opts.compute`` is False.

    With the gate (``probe_mode`` not ``none``): up to ``rounds`` times select among the cells that pass
    the probe (probing new ones) and simulate; a round that computes nothing, fails nothing or meets the
    deadline ends them; the final selection reads the stored probes only.  Without it (one store only,
    else ValueError): the paper's sites, plus every O of ``extra_cells`` spare cells at each x whose
    selected sites have SCF failures in the cache, simulated in :func:`s2s.amorphous.sites.round_robin` order.
    """
    entries = [e for g in groups for e in g.entries]
    by_name = {e["name"]: e for e in entries}
    structures = {e["name"]: c for g in groups for e, c in zip(g.entries, g.cells)}
    if opts.probe_mode != "none":
        for _ in range(opts.rounds):
            if not opts.compute:
                break
            selected, gate = gated_over_stores(groups, settings, cache, opts, run=True, log=log)
            done = _compute(selected, by_name, structures, settings, cache, opts, log=log)
            log(f"spectra compute: {done} shortfall before: {gate['shortfall']}")
            if done["computed"] == 0 or done["failed_now"] == 0 or done["stopped_at_deadline"]:
                break
        selected, gate = gated_over_stores(groups, settings, cache, opts, run=False, log=log)
        return Selection(selected, gate, {})
    if len(groups) > 1:
        raise ValueError("--store-for needs the probe gate (--probe-mode z+1 or ground)")
    cells = [c for g in groups for c in g.cells]
    targets = {x: n for g in groups for x, n in g.targets.items()}
    selected = sp.select_sites(entries, cells, targets)
    failing = sorted(
        {float(by_name[n]["x"]) for n, sites in selected.items() for k in sites if scf_failed(cache, settings, n, k)}
    )
    extra = sp.spare_sites(entries, cells, selected, opts.extra_cells, failing) if opts.extra_cells else {}
    selected = {**selected, **extra}
    if opts.compute:
        log(f"spectra compute: {_compute(selected, by_name, structures, settings, cache, opts)}")
    return Selection(selected, None, extra)


def _compute(
    selected: Mapping[str, Sequence[int]],
    by_name: Mapping[str, Mapping[str, Any]],
    structures: Mapping[str, Any],
    settings,
    cache: Path,
    opts: SpectraOptions,
    log: Log | None = None,
) -> dict[str, Any]:
    """:func:`s2s.amorphous.spectra.compute` of the selected sites in round-robin order; its counts."""
    x_of = {n: by_name[n]["x"] for n in selected}
    order = sp.round_robin(selected, x_of, {n: by_name[n]["cell_id"] for n in selected})
    return sp.compute(
        order,
        structures,
        settings,
        cache,
        x_of,
        progress=opts.progress,
        retry_failed=opts.retry_failed,
        probe=opts.probe,
        deadline=opts.deadline,
        log=log,
    )


def probe_meta(opts: SpectraOptions, gate: Mapping[str, Any] | None) -> dict[str, Any]:
    """The probe gate as recorded in the dataset, ``spectra.json`` and ``results.json``."""
    if gate is None:
        return {"mode": "none"}
    return {
        "mode": opts.probe_mode,
        "max_iter": opts.probe_max_iter,
        "file": "probes.json (in the store)",
        "rule": "a cell is used only if the SCF of its probe converges within max_iter cycles",
        "per_x": gate["summary"],
        "failed_cells": gate["failed"],
        "unprobed_cells": gate["unprobed"],
    }


def cell_atoms(selected: Mapping[str, Sequence[int]], by_name: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Atoms per cell at each x (``"%.2f"``, sorted by x), whichever store serves it."""
    return {
        f"{x:.2f}": int(by_name[n]["n_si"] + by_name[n]["n_o"])
        for n in sorted(selected, key=lambda n: float(by_name[n]["x"]))
        for x in [float(by_name[n]["x"])]
    }


def sites_used(selected: Mapping[str, Sequence[int]], by_name: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Cell name -> its selected O sites, ``"all"`` when every O of the cell is selected."""
    return {n: ("all" if len(s) == by_name[n]["n_o"] else s) for n, s in selected.items()}


@dataclass(frozen=True)
class SpectraRun:
    """What the spectra step chose and collected: the selection, the :func:`s2s.amorphous.spectra.collect` summary,
    the manifest entries by cell name, the simulator settings and name, the default store's manifest, the store
    and protocol of each x (``"%.2f"``) and the options.  Its records: the dataset meta, ``spectra.json`` and the
    ``results.json`` entry."""

    sel: Selection
    summary: Mapping[str, Any]
    by_name: Mapping[str, Mapping[str, Any]]
    settings: Any
    simulator: str
    manifest: Mapping[str, Any]
    protocol_by_x: Mapping[str, Any]
    opts: SpectraOptions

    def dataset_meta(self, store: str) -> dict[str, Any]:
        """The ``meta`` of the test dataset (``amorphous.h5``); ``store`` as shown (relative to the checkout)."""
        return {
            "description": "amorphous SiO_x O K-edge test set (never for training)",
            "protocol": self.manifest["protocol"],
            "protocol_by_x": self.protocol_by_x,
            "simulator": self.simulator,
            "settings": self.settings.to_dict(),
            "calc_key": self.settings.calc_key(),
            "store": store,
            "sites_used": sites_used(self.sel.selected, self.by_name),
            "extra_cells": sorted(self.sel.extra),
            "failures": self.summary["failures"],
            "probe": probe_meta(self.opts, self.sel.gate),
            "skipped_empty_first_shell": self.summary["skipped"],
        }

    def spectra_json(self, dataset: Path, store: Path) -> dict[str, Any]:
        """The content of ``spectra.json``: the selection, where each x comes from, the probe gate and the
        collected ``summary`` of :func:`s2s.amorphous.spectra.collect`."""
        return {
            "dataset": str(dataset),
            "store": str(store),
            "simulator": self.simulator,
            "settings": self.settings.to_dict(),
            "calc_key": self.settings.calc_key(),
            "cells_used": {n: self.by_name[n]["x"] for n in self.sel.selected},
            "sites_used": sites_used(self.sel.selected, self.by_name),
            "extra_cells": sorted(self.sel.extra),
            "cell_atoms": cell_atoms(self.sel.selected, self.by_name),
            "paper_n_sites": self.manifest["paper_n_sites"],
            "protocol_by_x": dict(self.protocol_by_x),
            "probe": {**probe_meta(self.opts, self.sel.gate), **(self.sel.gate or {})},
            **self.summary,
        }

    def results_entry(self) -> dict[str, Any]:
        """The ``results.json`` entry of the spectra step (key ``amorphous`` or ``amorphous_network``)."""
        keys = ("n_sites", "n_sites_gap_ok", "n_sites_extra_cells", "n_selected", "n_pending", "n_failed")
        result = {
            k: self.summary[k] for k in keys + ("s_per_site_mean", "s_per_site_converged", "s_per_site_scf_failed")
        }
        atoms = cell_atoms(self.sel.selected, self.by_name)
        result.update(
            {
                "paper_n_sites": self.manifest["paper_n_sites"],
                "cell_atoms": atoms,
                "n_cells": {k: sum(1 for n in self.sel.selected if f"{self.by_name[n]['x']:.2f}" == k) for k in atoms},
                "gap_eV_median": {k: v.get("median") for k, v in self.summary["gap_eV"].items()},
                "n_computed": self.summary["n_computed"],
                "scf_pass_rate": self.summary["scf_pass_rate"],
                "simulator": self.simulator,
                "calc_key": self.settings.calc_key(),
                "min_gap_eV": self.settings.min_gap,
                "extra_cells": sorted(self.sel.extra),
                "probe": probe_meta(self.opts, self.sel.gate),
                "store_by_x": {k: self.protocol_by_x[k]["store"] for k in sorted(self.protocol_by_x, key=float)},
            }
        )
        gate = self.sel.gate
        if gate is not None:
            result.update(
                {
                    "n_cells_probed": {k: v["probed"] for k, v in gate["summary"].items()},
                    "n_cells_probe_passed": {k: v["passed"] for k, v in gate["summary"].items()},
                    "s_probe_passed": {k: v["s_probe_passed"] for k, v in gate["summary"].items()},
                    "s_probe_failed": {k: v["s_probe_failed"] for k, v in gate["summary"].items()},
                    "shortfall": gate["shortfall"],
                }
            )
        return result


STATUS_NOTE = (
    "Rendered from `data/amorphous/spectra.json` by `python scripts/build_amorphous.py spectra {opts}`\n"
    'at {when} UTC (the same numbers as `figures/results.json` key `amorphous`). "cells built" and\n'
    '"probed" count the cells of the store that serves x; "shortfall" = sites missing to the paper\'s\n'
    "count that no passing cell can fill (pending sites count as usable); seconds are wall time on the\n"
    "loaded 2-core machine (`nice -n 15`, one thread).\n\n"
)


def status_block(
    full: Mapping[str, Any],
    family: str = "tersoff",
    atoms: int = 72,
    store_for: Sequence[str] = (),
    when: str | None = None,
) -> tuple[str, str]:
    """The docs' status block of a family: ``(block name, text)``, the text a note naming the command that
    prints it, then :func:`s2s.amorphous.spectra.status_table` of ``full`` (``spectra.json``).

    Block ``status`` (Tersoff family) or ``status_network``; ``when``: UTC time shown (default now).
    """
    opts = " ".join(["--atoms", str(atoms)] + [f"--store-for {v}" for v in store_for or []] + ["--no-compute"])
    block = "status"
    if family == "network":  # its own block; never the Tersoff family's table
        opts = "--family network " + opts
        block = "status_network"
    note = STATUS_NOTE.format(opts=opts, when=when or time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
    if block == "status_network":
        note = (
            note.replace("data/amorphous/spectra.json", "data/amorphous/network/spectra.json")
            .replace(
                "`figures/results.json` key `amorphous`",
                "`data/amorphous/network/results.json` key `amorphous_network`",
            )
            .replace("`nice -n 15`", "`nice -n 19`")
        )
    return block, note + sp.status_table(full)
