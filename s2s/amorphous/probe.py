"""Cheap per-cell SCF probe: does the training simulator converge on this glass at all?

Convergence of the GFN1-xTB SCF on the Tersoff glasses is mostly a property of
the *cell* (docs/amorphous.md): a cell converges on (nearly) all of its O sites
or on none, and the ground-state SCF of a failing cell fails too.  A failed
site costs all ``max_iter`` = 250 cycles of the training simulator, so before
any site of a cell is computed, one short SCF decides whether the cell is used:

* ``mode="z+1"`` (default): the Z+1 SCF of the cell's first O site (lowest
  index), exactly the training simulator except ``max_iter`` (``PROBE_MAX_ITER``
  = 60 cycles);
* ``mode="ground"``: the ground-state SCF of the cell (no core hole), same cap.

The probe *passes* when that SCF converges (a converged SCF with a HOMO-LUMO
gap below ``min_gap`` passes too: the gap rule is applied per site later).  The
probe's result is never used as a spectrum (its cache key differs: ``max_iter``);
the spectra are computed with the unchanged simulator.

Probe records live in ``<store>/probes.json`` (one entry per cell name with the
structure hash, the mode, the cap and the base simulator's cache key), written
atomically after every probe, so a probe run resumes and a changed cell or
changed settings are probed again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PROBE_MAX_ITER = 60
PROBE_MODES = ("z+1", "ground")
PROBES_FILE = "probes.json"


def probe_site(structure) -> int:
    """Index of the O site the Z+1 probe uses: the first O of the cell."""
    for i, s in enumerate(structure):
        if s.specie.symbol == "O":
            return i
    raise ValueError("probe_site: the cell has no O site")


def probe_settings(settings, mode: str = "z+1", max_iter: int = PROBE_MAX_ITER):
    """The simulator settings of a probe: ``settings`` with ``max_iter`` (and the variant for ``ground``)."""
    if mode not in PROBE_MODES:
        raise ValueError(f"probe: mode must be one of {PROBE_MODES}, got {mode!r}")
    if not int(max_iter) > 0:
        raise ValueError(f"probe: max_iter must be > 0, got {max_iter}")
    st = settings.with_(max_iter=int(max_iter))
    return st.with_(variant="ground") if mode == "ground" else st


def _scf_failed(result) -> bool:
    return (not result.ok) and str(result.reason).startswith("scf failed")


def probe_cell(
    structure, name: str, settings, mode: str = "z+1", max_iter: int = PROBE_MAX_ITER, simulate: Callable | None = None
) -> dict[str, Any]:
    """Run one probe SCF on a cell; returns its JSON record.

    simulate : ``f(structure, site, settings, structure_id) -> SiteResult``
        (default :func:`s2s.simulate.xtb.simulate_site`, which runs the
        ground-state SCF when ``settings.variant == "ground"``).
    Record keys: ``ok`` (SCF converged), ``seconds`` (wall), ``mode``,
    ``max_iter``, ``site``, ``gap_eV`` (None when failed), ``reason``,
    ``structure_hash``, ``base_calc_key`` (the key of ``settings``).
    """
    from s2s.simulate.xtb import structure_hash  # noqa: PLC0415

    if simulate is None:
        from s2s.simulate.xtb import simulate_site as simulate  # noqa: PLC0415
    site = probe_site(structure)
    st = probe_settings(settings, mode, max_iter)
    t0 = time.perf_counter()
    result = simulate(structure, site, st, structure_id=name)
    seconds = time.perf_counter() - t0
    failed = _scf_failed(result)
    gap = float(result.gap) if not failed and result.gap == result.gap else None
    return {
        "ok": not failed,
        "seconds": round(seconds, 2),
        "mode": mode,
        "max_iter": int(max_iter),
        "site": int(site),
        "gap_eV": None if gap is None else round(gap, 4),
        "reason": "" if not failed else str(result.reason)[:200],
        "structure_hash": structure_hash(structure),
        "base_calc_key": settings.calc_key(),
    }


def read_probes(path: Path) -> dict[str, dict[str, Any]]:
    """Probe records by cell name from ``path`` ({} when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("cells"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'cells' mapping (probe records)")
    return data["cells"]


def write_probes(path: Path, probes: Mapping[str, Mapping[str, Any]]) -> None:
    from s2s.amorphous.store import atomic_write_text  # noqa: PLC0415

    doc = {
        "description": "per-cell SCF probe of the training simulator (s2s.amorphous.probe)",
        "cells": {k: dict(probes[k]) for k in sorted(probes)},
    }
    atomic_write_text(Path(path), json.dumps(doc, indent=1) + "\n")


def is_current(record: Mapping[str, Any] | None, structure, settings, mode: str, max_iter: int) -> bool:
    """Whether a stored probe record belongs to this cell, mode, cap and base simulator."""
    if not record:
        return False
    from s2s.simulate.xtb import structure_hash  # noqa: PLC0415

    return (
        record.get("mode") == mode
        and int(record.get("max_iter", -1)) == int(max_iter)
        and record.get("base_calc_key") == settings.calc_key()
        and record.get("structure_hash") == structure_hash(structure)
    )


def run_probes(
    structures: Mapping[str, Any],
    path: Path,
    settings,
    mode: str = "z+1",
    max_iter: int = PROBE_MAX_ITER,
    names: Sequence[str] | None = None,
    simulate: Callable | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Probe every cell of ``names`` (default all) that has no current record; returns all records.

    Records of other cells already in ``path`` are kept, also those another
    process (a second builder) wrote while this one probed: the file is read
    again and merged before it is rewritten after every probe (resumable).
    """
    probes = read_probes(path)
    todo = [
        n
        for n in (names if names is not None else list(structures))
        if not is_current(probes.get(n), structures[n], settings, mode, max_iter)
    ]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(todo), desc=f"probe {mode} max_iter {max_iter}", unit="cell", mininterval=0)
    mine: dict[str, dict[str, Any]] = {}
    try:
        for name in todo:
            rec = probe_cell(structures[name], name, settings, mode, max_iter, simulate=simulate)
            mine[name] = rec
            probes = {**read_probes(path), **mine}  # keep what another process wrote meanwhile
            write_probes(path, probes)
            if log is not None:
                log(
                    f"probe {name}: {'ok' if rec['ok'] else 'FAILED'} {rec['seconds']:.1f} s"
                    + (f", gap {rec['gap_eV']} eV" if rec["ok"] else "")
                )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return probes


def passing_cells(
    probes: Mapping[str, Mapping[str, Any]],
    structures: Mapping[str, Any],
    settings,
    mode: str = "z+1",
    max_iter: int = PROBE_MAX_ITER,
) -> tuple[set[str], set[str], set[str]]:
    """(passed, failed, unprobed) cell names among ``structures`` by their current probe record."""
    passed, failed, unprobed = set(), set(), set()
    for name, cell in structures.items():
        rec = probes.get(name)
        if not is_current(rec, cell, settings, mode, max_iter):
            unprobed.add(name)
        elif rec["ok"]:
            passed.add(name)
        else:
            failed.add(name)
    return passed, failed, unprobed


def probe_summary(
    probes: Mapping[str, Mapping[str, Any]], x_of: Mapping[str, float], names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per composition: cells probed / passed / failed and mean seconds of passing and failing probes."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        key = f"{float(x_of[name]):.2f}"
        row = out.setdefault(key, {"cells": 0, "probed": 0, "passed": 0, "failed": 0, "_s_ok": [], "_s_fail": []})
        row["cells"] += 1
        rec = probes.get(name)
        if rec is None:
            continue
        row["probed"] += 1
        row["passed" if rec["ok"] else "failed"] += 1
        row["_s_ok" if rec["ok"] else "_s_fail"].append(float(rec["seconds"]))
    for row in out.values():
        s_ok, s_fail = row.pop("_s_ok"), row.pop("_s_fail")
        row["s_probe_passed"] = round(sum(s_ok) / len(s_ok), 2) if s_ok else None
        row["s_probe_failed"] = round(sum(s_fail) / len(s_fail), 2) if s_fail else None
    return {k: out[k] for k in sorted(out, key=float)}


def si0_units(structure) -> int:
    """Number of Si(Si4) units of a cell: Si with no O neighbour (Si-O cutoff of
    :data:`s2s.amorphous.analysis.DEFAULT_CUTOFFS`), the units the Z+1 SCF cannot converge beside
    when they sit isolated in the oxide (docs/amorphous.md)."""
    from s2s.amorphous import analysis as an  # noqa: PLC0415

    atoms = an.as_atoms(structure)
    si = np.array(atoms.get_chemical_symbols()) == "Si"
    return int(np.count_nonzero(an.coordination(atoms)["O"][si] == 0))


def probe_by_si0(
    probes: Mapping[str, Mapping[str, Any]], structures: Mapping[str, Any], x_of: Mapping[str, float]
) -> dict[str, dict[str, list[int]]]:
    """Probe verdicts by the number of Si(Si4) units of the cell: per composition ("0.75"), per bucket
    "0", "1", ">=2", ``[passed, probed]`` over the probed cells of ``structures``."""
    out: dict[str, dict[str, list[int]]] = {}
    for name, cell in structures.items():
        rec = probes.get(name)
        if rec is None:
            continue
        n = si0_units(cell)
        row = out.setdefault(f"{float(x_of[name]):.2f}", {"0": [0, 0], "1": [0, 0], ">=2": [0, 0]})
        cnt = row["0" if n == 0 else "1" if n == 1 else ">=2"]
        cnt[0] += int(bool(rec["ok"]))
        cnt[1] += 1
    return {k: out[k] for k in sorted(out, key=float)}


def probe_by_si0_markdown(table: Mapping[str, Mapping[str, Sequence[int]]]) -> str:
    """Markdown of :func:`probe_by_si0`: cells passing the probe / probed, per x and Si(Si4) count."""
    lines = [
        "| x | no Si(Si4) | one Si(Si4) | two or more |",
        "|---|---|---|---|",
    ]
    for x, row in table.items():
        lines.append(
            f"| {x} | " + " | ".join(f"{p}/{n}" if n else "-" for p, n in (row[k] for k in ("0", "1", ">=2"))) + " |"
        )
    return "\n".join(lines) + "\n"
