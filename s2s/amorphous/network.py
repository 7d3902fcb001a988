"""The ``network`` glass family: amorphous SiO_x as a four-fold Si network with O in Si-Si bonds.

The Tersoff (Munetoh) melt-quench glasses of :mod:`s2s.amorphous.md` carry 20-38 %
three-fold Si at intermediate x, and GFN1-xTB's SCF collapses onto those atoms
(docs/amorphous.md).  Real SiO_x is a network of four-fold Si and two-fold O
(random-bonding and random-mixture models).  This module builds such cells:

1. **amorphous-Si parent** (:func:`asi_parent`): ``n_si`` Si at random positions,
   melt-quench in LAMMPS with the Stillinger-Weber potential of Vink et al.
   (J. Non-Cryst. Solids 282, 248 (2001): epsilon 1.64833 eV, lambda 31.5; the
   standard SW gives too many defects), then *defect-removal cycles* (anneal at
   ``anneal_T`` + minimise) until every Si has exactly four neighbours within
   ``si_cutoff`` (or ``max_cycles`` is reached).  A parent that keeps a three- or
   five-fold Si is rejected (:class:`NetworkRejected`), the next seed is tried.
2. **O insertion** (:func:`insert_oxygen`): ``n_O = x * n_Si`` (exact, an integer,
   0 < x <= 2) Si-Si bonds of the parent graph get one O each, chosen by a seeded
   rule: ``uniform`` = random bonding (bonds drawn uniformly), ``clustered`` =
   random mixture (the bonds nearest to a random centre, i.e. one SiO2 region in an
   Si matrix), ``dispersed`` = random bonding conditioned on every Si having at
   least one O (no Si(Si4) unit; uniform draws rejected until none is left: the
   training simulator's SCF does not converge on isolated Si(Si4) units,
   docs/amorphous.md).  The cell is expanded first (volume per Si interpolated between a-Si
   and a-SiO2), the O goes to the bond midpoint displaced sideways so that
   Si-O = ``si_o`` Å.
3. **CHGNet relaxation** (:func:`chgnet_relax`): cell and positions (FIRE,
   ``fmax`` eV/Å), one thread.
4. **Checks** (:func:`cell_checks`): the cell is dropped, with a reason, when a Si
   is under-coordinated (Si-O 2.0 Å, Si-Si 2.7 Å cutoffs of
   :mod:`s2s.amorphous.analysis`), an O is not bonded to exactly two Si, or two
   atoms are closer than ``min_pair`` = 1.4 Å.

Everything random comes from one integer seed per cell (:func:`network_seed`).

The steps live in their own modules, and this one re-exports their names: :mod:`.protocol`
(:class:`NetworkProtocol`, composition, seeds), :mod:`.parent` (the a-Si parent and its graph),
:mod:`.rules` (which bonds get an O), :mod:`.insertion` (placing the O), :mod:`.relaxation`
(Keating, CHGNet, checks).  Here: one cell (:func:`make_network_cell`) and the store
(:func:`build_network_store`, :func:`cells_markdown`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ase import Atoms

from s2s.amorphous.build import _entry
from s2s.amorphous.insertion import V_SI_ASI, V_SI_SIO2, insert_oxygen, o_between_two_si, place_oxygen, volume_per_si
from s2s.amorphous.md import PAPER_N_SITES
from s2s.amorphous.parent import asi_parent, parent_defects, si_coordination, si_graph, sw_file
from s2s.amorphous.protocol import (
    FAMILIES,
    SOURCE,
    SW_PARAMS,
    VALUE_BEFORE_FIELD,
    NetworkProtocol,
    NetworkRejected,
    check_x,
    insertion_seed,
    n_oxygen,
    network_seed,
    same_protocol,
)
from s2s.amorphous.relaxation import KEATING, broken_bonds, cell_checks, chgnet_relax, keating_relax
from s2s.amorphous.rules import DISPERSED_TRIES, RULES, choose_bonds
from s2s.amorphous.store import (
    atomic_write_text,
    atoms_to_structure,
    cell_name,
    load_cell,
    read_manifest,
    save_cell,
    write_manifest,
)

__all__ = [
    "DISPERSED_TRIES",
    "FAMILIES",
    "KEATING",
    "RULES",
    "SOURCE",
    "SW_PARAMS",
    "VALUE_BEFORE_FIELD",
    "V_SI_ASI",
    "V_SI_SIO2",
    "NetworkProtocol",
    "NetworkRejected",
    "asi_parent",
    "broken_bonds",
    "build_network_store",
    "cell_checks",
    "cells_markdown",
    "check_x",
    "chgnet_relax",
    "choose_bonds",
    "insert_oxygen",
    "insertion_seed",
    "keating_relax",
    "make_network_cell",
    "n_oxygen",
    "network_seed",
    "o_between_two_si",
    "parent_defects",
    "place_oxygen",
    "same_protocol",
    "si_coordination",
    "si_graph",
    "spectra_settings",
    "sw_file",
    "volume_per_si",
]


def spectra_settings():
    """Simulator settings of the network family's spectra: exactly the training set's ``XtbSettings()``."""
    from s2s.simulate.xtb import XtbSettings  # noqa: PLC0415

    return XtbSettings()


# --------------------------------------------------------------------------- one cell, and the store


def make_network_cell(
    x: float,
    cell_id: int,
    n_si: int,
    protocol: NetworkProtocol | None = None,
    rule: str = "uniform",
    base_seed: int = 20270101,
    relax=None,
) -> tuple[Atoms | None, dict]:
    """One network cell: a-Si parent (up to ``parent_tries`` seeds), O insertion, CHGNet, checks.

    Returns ``(atoms, props)``; ``atoms`` is None and ``props["reason"]`` says why when the
    cell is dropped (parent defects, close pair, under-coordinated Si, O not two-fold).
    relax : ``f(atoms) -> (atoms, info)`` (default :func:`chgnet_relax` with the protocol's fmax/steps).
    """
    p = protocol or NetworkProtocol()
    x = check_x(x)
    n_o = n_oxygen(x, n_si)
    seed = network_seed(x, cell_id, base_seed)
    props: dict[str, Any] = {
        "x": x,
        "cell_id": int(cell_id),
        "seed": seed,
        "counts": [int(n_si), n_o],
        "family": "network",
        "rule": rule,
        "protocol": p.to_dict(),
        "source": SOURCE,
    }
    t0, c0 = time.perf_counter(), time.process_time()
    parent, parent_info, tries = None, {}, []
    for t in range(max(1, p.parent_tries)):
        try:
            parent, parent_info = asi_parent(n_si, seed + 100 * t, p)
            break
        except NetworkRejected as err:
            tries.append({"seed": seed + 100 * t, "reason": err.reason, **err.info})
    props["parent_rejected"] = tries
    if parent is None:
        props.update(
            ok=False,
            reason=f"no defect-free a-Si parent in {p.parent_tries} seeds",
            wall_s=round(time.perf_counter() - t0, 2),
            cpu_s=round(time.process_time() - c0, 2),
        )
        return None, props
    props["parent"] = {**parent_info, "seed": seed + 100 * len(tries)}
    relax = relax or (lambda a: chgnet_relax(a, p.fmax, p.relax_steps))
    rejected: list[dict] = []
    for t in range(max(1, p.insert_tries)):
        iseed = insertion_seed(seed, t)
        try:
            inserted, ins = insert_oxygen(
                parent,
                x,
                iseed,
                rule=rule,
                cutoff=p.si_cutoff,
                si_o=p.si_o,
                expand=p.expand_fraction,
                directions=p.o_directions,
                bridges=parent_info.get("bridges", ()),
            )
        except NetworkRejected as err:  # the dispersed rule found no insertion on this parent
            props.update(
                ok=False,
                reason=err.reason,
                insert_rejected=rejected,
                wall_s=round(time.perf_counter() - t0, 2),
                cpu_s=round(time.process_time() - c0, 2),
            )
            return None, props
        props["insertion"] = {k: v for k, v in ins.items() if k not in ("o_bonds", "topology")}
        props["insertion"]["seed"] = iseed
        pre = cell_checks(inserted, p.min_pair)
        props["before_relax"] = {k: pre[k] for k in ("shortest_pair_A", "si_cn_lt4", "o_not_2si", "density")}
        if p.prerelax == "keating":
            c1 = time.process_time()
            inserted, kinfo = keating_relax(inserted, ins["topology"], relax_cell=p.keating_cell)
            pre = cell_checks(inserted, p.min_pair)
            props["keating"] = {
                **kinfo,
                "cpu_s": round(time.process_time() - c1, 2),
                **{k: pre[k] for k in ("shortest_pair_A", "si_cn_lt4", "si_cn_gt4", "o_not_2si", "density")},
            }
        c2 = time.process_time()
        try:
            relaxed, rinfo = relax(inserted)
        except Exception as err:  # noqa: BLE001 - a relaxation that blows up drops the try
            relaxed, rinfo = None, {"error": f"{type(err).__name__}: {err}"[:300]}
        props["relax"] = rinfo
        if relaxed is None:
            chk = {"ok": False, "reason": f"relaxation failed: {rinfo['error']}"}
        else:
            chk = cell_checks(relaxed, p.min_pair)
            same = relaxed.get_chemical_symbols() == inserted.get_chemical_symbols()
            chk["broken_bonds"] = broken_bonds(relaxed, ins["topology"]) if same else []
        props["checks"] = chk
        if chk["ok"] or t + 1 >= max(1, p.insert_tries):
            break
        rejected.append(
            {
                "seed": iseed,
                "reason": chk["reason"],
                "broken_bonds": chk.get("broken_bonds", []),
                "cpu_s": round(time.process_time() - c2, 2),
            }
        )
    props["insert_rejected"] = rejected
    props.update(wall_s=round(time.perf_counter() - t0, 2), cpu_s=round(time.process_time() - c0, 2))
    props.update(ok=chk["ok"], reason=chk["reason"])
    if relaxed is None:
        props.pop("checks")
        return None, props
    props["energy_eV"] = rinfo.get("energy_eV_per_atom", 0.0) * len(relaxed)
    return (relaxed if chk["ok"] else None), {**props, "_relaxed": relaxed}


def build_network_store(
    directory: Path,
    xs,
    n_cells: int | dict,
    counts: dict[float, tuple[int, int]],
    protocol: NetworkProtocol | None = None,
    rule: str = "uniform",
    base_seed: int = 20270101,
    tag: str = "net72",
    progress: bool = True,
    log=print,
    relax=None,
    passing: int | dict | None = None,
    usable=None,
    first_cell: int = 0,
) -> dict[str, Any]:
    """Build (resumably) ``n_cells`` network cells per x into ``directory``.

    With ``passing`` (an int, or a dict x -> int), ``n_cells`` is a cap: cells are built at x, in
    seed order, only until ``passing[x]`` of them pass (cells already in the store count), so a
    composition with a low pass rate gets more tries and an easy one no extra CPU.  ``usable(name,
    structure) -> bool`` (e.g. the SCF probe of the spectra step, :mod:`s2s.amorphous.probe`) is asked
    once per passing cell; only usable cells count towards ``passing``.  ``first_cell`` skips the
    cell ids below it, so a second builder on the same x can start further along the seed order
    (cells already in the store, whoever built them, still count).

    Passing cells: ``cells/<name>.json`` (the layout of :mod:`s2s.amorphous.store`, so
    :func:`s2s.amorphous.store.load_cells` and the spectra step read them); dropped cells:
    ``dropped/<name>.json`` with their reason.  The manifest lists both (``cells``,
    ``dropped``) and the pass rate per x; a cell already built (passed or dropped, same
    seed and protocol) is not rebuilt.
    """
    p = protocol or NetworkProtocol()
    directory = Path(directory)
    xs = [check_x(x) for x in xs]
    if rule == "dispersed" and any(x < 0.5 for x in xs):  # before any parent is built
        raise ValueError(f"the dispersed rule needs x >= 0.5 (every Si an O), got x = {min(xs)}")
    per_x = {x: int(n_cells[x] if isinstance(n_cells, dict) else n_cells) for x in xs}
    previous = _read_manifest_or_empty(directory)
    if not same_protocol(previous.get("protocol"), p) or previous.get("rule") not in (None, rule):
        raise ValueError(f"{directory}: built with another protocol or rule; use another --store-name")
    cells = {e["name"]: e for e in previous.get("cells", [])}
    dropped = {e["name"]: e for e in previous.get("dropped", [])}
    want = None if passing is None else {x: int(passing[x] if isinstance(passing, dict) else passing) for x in xs}
    if int(first_cell) < 0:
        raise ValueError(f"build_network_store: first_cell must be >= 0, got {first_cell}")
    jobs = [(x, k) for k in range(int(first_cell), max(per_x.values(), default=0)) for x in xs if k < per_x[x]]

    verdict: dict[str, bool] = {}

    def is_usable(e: dict) -> bool:
        if usable is None:
            return True
        if e["name"] not in verdict:
            verdict[e["name"]] = bool(usable(e["name"], load_cell(directory / e["file"])))
        return verdict[e["name"]]

    def enough(x: float) -> bool:
        return want is not None and sum(1 for e in cells.values() if abs(e["x"] - x) < 1e-9 and is_usable(e)) >= want[x]

    def write() -> dict:
        head = {"rule": rule, "protocol": p.to_dict(), "base_seed": base_seed}
        return _write_store_manifest(directory, cells, dropped, previous, counts, head)

    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(jobs), desc=f"network cells ({rule})", unit="cell")
    for x, k in jobs:
        name = cell_name(x, k, tag)
        seed = network_seed(x, k, base_seed)
        old = cells.get(name) or dropped.get(name)
        if (enough(x) and old is None) or (old is not None and old.get("seed") == seed):
            if bar is not None:
                bar.update(1)
            continue
        atoms, props = make_network_cell(x, k, counts[x][0], p, rule, base_seed, relax=relax)
        relaxed = props.pop("_relaxed", None)
        props["tag"] = tag
        if atoms is not None:
            cells[name] = _passed_entry(directory, atoms, props, rule)
            dropped.pop(name, None)
        else:
            dropped[name] = _dropped_entry(directory, name, x, k, seed, props, relaxed)
        log(_cell_line(name, atoms, props))
        write()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return write()


def _read_manifest_or_empty(directory: Path) -> dict:
    """The store's manifest, or {} when there is none (or it cannot be read)."""
    try:
        return read_manifest(directory)
    except Exception:  # noqa: BLE001
        return {}


def _passed_entry(directory: Path, atoms: Atoms, props: dict, rule: str) -> dict:
    """Save a passing cell under ``directory/cells`` and return its manifest entry."""
    path = save_cell(directory, atoms, props)
    entry = _entry(load_cell(path), path, directory)
    entry.update(cpu_s=props["cpu_s"], wall_s=props["wall_s"], rule=rule)
    entry["insert_try"] = len(props.get("insert_rejected", []))
    return entry


def _dropped_entry(
    directory: Path, name: str, x: float, k: int, seed: int, props: dict, relaxed: Atoms | None
) -> dict[str, Any]:
    """The manifest entry of a dropped cell, with its reason; its relaxed structure (when there is one) is
    written to ``directory/dropped/<name>.json`` for diagnosis, else the entry keeps ``props``."""
    entry = {
        "name": name,
        "x": x,
        "cell_id": k,
        "seed": seed,
        "reason": props["reason"],
        "cpu_s": props["cpu_s"],
        "wall_s": props["wall_s"],
    }
    if "insertion" in props:  # the insertions tried (the last one is the cell's own checks)
        entry["insert_rejected"] = [
            {k: r[k] for k in ("seed", "reason", "broken_bonds")} for r in props.get("insert_rejected", [])
        ]
        entry["broken_bonds"] = props.get("checks", {}).get("broken_bonds", [])
    if relaxed is not None:
        path = directory / "dropped" / f"{name}.json"
        atomic_write_text(path, json.dumps(atoms_to_structure(relaxed, props).as_dict()))
        entry["file"] = str(path.relative_to(directory))
    else:
        entry["props"] = props
    return entry


def _cell_line(name: str, atoms: Atoms | None, props: dict) -> str:
    """The log line of one built cell: passed or dropped (with the reason), wall and CPU seconds, density."""
    return (
        f"{name}: {'ok' if atoms is not None else 'DROPPED (' + props['reason'] + ')'}, "
        f"{props['wall_s']:.0f} s wall, {props['cpu_s']:.0f} s CPU"
        + (f", {props['checks']['density']:.3f} g/cm3" if "checks" in props else "")
    )


def _pass_rate(rows: list[dict], gone: list[dict]) -> dict[str, dict]:
    """Per x (``"%.2f"``): cells built and passed, the pass rate, O insertions relaxed and CPU s per cell."""
    rate: dict[str, dict] = {}
    for e in rows + gone:
        r = rate.setdefault(f"{e['x']:.2f}", {"built": 0, "passed": 0, "insertions": 0, "cpu_s": []})
        r["built"] += 1
        r["passed"] += e in rows
        # O insertions relaxed (insert_tries); 0 for a cell dropped for want of a parent
        if e in rows:
            r["insertions"] += e.get("insert_try", 0) + 1
        elif "insert_rejected" in e:
            r["insertions"] += len(e["insert_rejected"]) + 1
        r["cpu_s"].append(e.get("cpu_s") or 0.0)
    for r in rate.values():
        c = r.pop("cpu_s")
        r["pass_rate"] = round(r["passed"] / r["built"], 3)
        r["cpu_s_per_cell"] = round(sum(c) / len(c), 1)
    return rate


def _write_store_manifest(
    directory: Path, cells: dict, dropped: dict, previous: dict, counts: dict, head: dict
) -> dict[str, Any]:
    """Write the store's manifest (the checkpoint of a build) and return it.

    Another builder may work on other x in the same store: the entries it wrote since ``previous`` was read
    are merged into ``cells`` / ``dropped`` first.  ``head`` holds ``rule``, ``protocol`` and ``base_seed``.
    """
    now = _read_manifest_or_empty(directory)
    for e in now.get("cells", []):
        if e["name"] not in cells and e["name"] not in dropped:
            cells[e["name"]] = e
    for e in now.get("dropped", []):
        if e["name"] not in cells and e["name"] not in dropped:
            dropped[e["name"]] = e
    rows = sorted(cells.values(), key=lambda e: (e["x"], e["cell_id"]))
    gone = sorted(dropped.values(), key=lambda e: (e["x"], e["cell_id"]))
    rate = _pass_rate(rows, gone)
    n_sites: dict[str, int] = {}
    for e in rows:
        n_sites[f"{e['x']:.2f}"] = n_sites.get(f"{e['x']:.2f}", 0) + e["n_o"]
    man = {
        "description": "Amorphous SiO_x, network family: SW a-Si parent, O in Si-Si bonds, CHGNet "
        "relaxation; out-of-distribution test set, never for training",
        "family": "network",
        "rule": head["rule"],
        "protocol": head["protocol"],
        "base_seed": head["base_seed"],
        # (n_Si, n_O) of every x built so far, not only of this call's xs
        "counts_si_o": dict(
            sorted(
                {**previous.get("counts_si_o", {}), **{f"{x:.2f}": list(counts[x]) for x in counts}}.items(),
                key=lambda kv: float(kv[0]),
            )
        ),
        "n_cells": {k: sum(1 for e in rows if f"{e['x']:.2f}" == k) for k in sorted(rate, key=float)},
        "n_o_sites": n_sites,
        "pass_rate": {k: rate[k] for k in sorted(rate, key=float)},
        "paper_n_sites": {f"{x:.2f}": n for x, n in PAPER_N_SITES.items()},
        "cells": rows,
        "dropped": gone,
    }
    write_manifest(directory, man)
    return man


def cells_markdown(manifest: dict) -> str:
    """Markdown table of a network store's manifest: per x the cells built / passed, the pass rate, the O
    insertions relaxed (``insert_tries``; "-" for stores built before it), CPU seconds per cell, O sites of
    the passing cells against the paper's count, and the drop reasons."""
    rate, sites, paper = manifest.get("pass_rate", {}), manifest.get("n_o_sites", {}), manifest.get("paper_n_sites", {})
    counts = manifest.get("counts_si_o", {})
    reasons: dict[str, list[str]] = {}
    for d in manifest.get("dropped", []):
        reasons.setdefault(f"{float(d['x']):.2f}", []).append(f"c{d['cell_id']}: {d['reason']}")
    lines = [
        "| x | Si + O | cells built | passed | pass rate | O insertions relaxed | CPU s per cell | O sites (passing) "
        "| paper | dropped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in sorted(set(rate) | set(paper), key=float):
        r = rate.get(x, {})
        c = counts.get(x)
        lines.append(
            "| "
            + " | ".join(
                [
                    x,
                    f"{c[0]} + {c[1]}" if c else "-",
                    str(r.get("built", 0)),
                    str(r.get("passed", 0)),
                    f"{r['pass_rate']:.2f}" if r else "-",
                    str(r.get("insertions", "-")) if r else "-",
                    f"{r['cpu_s_per_cell']:.0f}" if r else "-",
                    str(sites.get(x, 0)),
                    str(paper.get(x, "-")),
                    "; ".join(reasons.get(x, [])) or "-",
                ]
            )
            + " |"
        )
    return "\n".join(lines)
