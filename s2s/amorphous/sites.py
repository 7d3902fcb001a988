"""Which O sites of the amorphous cells get a spectrum (used by :mod:`s2s.amorphous.spectra`).

Per composition x the cells are taken in cell-id order and every O of a cell is its own site (an
amorphous cell has no symmetry): :func:`select_sites` takes the first ``target`` sites,
:func:`gated_selection` only from cells that pass the SCF probe (:mod:`s2s.amorphous.probe`),
:func:`spare_sites` adds whole spare cells, and :func:`round_robin` orders the sites so that an
interrupted run has sites of every composition and cell.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from s2s.amorphous import probe as pr
from s2s.simulate.build import load_site


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


def unusable_sites(
    cache_dir: Path, settings, structures: Mapping[str, Any], names: Collection[str], keep_small_gap: bool = True
) -> set[tuple[str, int]]:
    """(cell, O site) pairs whose cached result will not become a record.

    That is an SCF (or other) failure, or with ``keep_small_gap=False`` also a
    gap below ``settings.min_gap``.  Stale records (another structure under the
    same name) are ignored.
    """
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
