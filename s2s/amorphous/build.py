"""Resumable build of the amorphous SiO_x cells (the MD step of scripts/build_amorphous.py).

:func:`build_cells` runs :func:`s2s.amorphous.md.make_cell` for every
(composition x, cell id) that is not yet in the store with the same protocol
and seed, writes each relaxed cell as soon as it is done, and rewrites the
manifest after every cell, so an interrupted build continues where it stopped.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from s2s.amorphous import analysis
from s2s.amorphous.md import (
    COMPOSITIONS,
    PAPER_N_SITES,
    MeltQuench,
    cell_seed,
    find_potential,
    lammps_available,
    make_cell,
)
from s2s.amorphous.store import (
    cell_name,
    load_cell,
    read_manifest,
    save_cell,
    sha256_file,
    write_manifest,
)

POTENTIAL_CITATION = "S. Munetoh et al., Comput. Mater. Sci. 39, 334-339 (2007), LAMMPS SiO.tersoff"


def _entry(structure, path: Path, directory: Path) -> dict[str, Any]:
    props = structure.properties
    return {
        "name": path.stem,
        "file": str(path.relative_to(directory)),
        "x": props["x"],
        "cell_id": props["cell_id"],
        "seed": props["seed"],
        "n_si": int(sum(1 for s in structure if s.specie.symbol == "Si")),
        "n_o": int(sum(1 for s in structure if s.specie.symbol == "O")),
        "energy_eV": props.get("energy_eV"),
        "md_wall_s": props.get("md_wall_s"),
        "md_cpu_s": props.get("md_cpu_s"),
        "summary": analysis.summary(structure),
    }


def build_cells(
    directory: Path,
    protocol: MeltQuench,
    xs: Iterable[float] | None = None,
    n_cells: int | dict[float, int] = 3,
    base_seed: int = 20260101,
    counts: dict[float, tuple[int, int]] | None = None,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    tag: str = "",
    n_atoms: int | None = None,
) -> dict[str, Any]:
    """Make (or reuse) ``n_cells`` cells per composition and write the manifest.

    n_cells : one number for every x, or a number per x.
    counts : (n_Si, n_O) per x (default the paper-sized :data:`COMPOSITIONS`;
        :func:`s2s.amorphous.md.compositions_for_size` gives other sizes).
    tag : put into the cell names (``SiO2.00_<tag>_c0``), e.g. ``"n72"``.
    n_atoms : the nominal cell size, recorded in the manifest.
    A stored cell is reused when its seed and protocol equal the requested ones;
    a cell with a different protocol or seed is recomputed only with ``force``,
    otherwise a ValueError names it.  Returns the manifest dict.
    """
    directory = Path(directory)
    counts = counts or COMPOSITIONS
    xs = list(counts) if xs is None else [float(x) for x in xs]
    per_x = {x: int(n_cells[x] if isinstance(n_cells, dict) else n_cells) for x in xs}
    if min(per_x.values(), default=1) < 1:
        raise ValueError(f"build_cells: n_cells must be >= 1, got {n_cells}")
    ok, version = lammps_available()
    potential = find_potential()
    # cell 0 of every composition first, then cell 1, ...: a partial build covers every x
    jobs = [(x, k) for k in range(max(per_x.values(), default=0)) for x in xs if k < per_x[x]]
    entries: dict[str, dict[str, Any]] = {}
    previous: dict[str, Any] = {}
    try:  # keep entries of cells outside this request (e.g. a partial earlier run)
        previous = read_manifest(directory)
        for entry in previous.get("cells", []):
            entries[entry["name"]] = entry
    except Exception:  # noqa: BLE001 - no or unreadable manifest: start fresh
        entries, previous = {}, {}
    if previous.get("protocol") not in (None, protocol.to_dict()) and entries and not force:
        raise ValueError(
            f"{directory}: the store was built with another protocol ({previous['protocol']}); "
            "one store holds one protocol: use another directory (--out) or force=True"
        )

    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(jobs), desc="amorphous cells", unit="cell")
    for x, k in jobs:
        seed = cell_seed(x, k, base_seed)
        name = cell_name(x, k, tag)
        path = directory / "cells" / f"{name}.json"
        if path.exists():
            structure = load_cell(path)
            same = (
                structure.properties.get("protocol") == protocol.to_dict()
                and structure.properties.get("seed") == seed
                and structure.properties.get("counts") == list(counts[x])
            )
            if same:
                entries[name] = _entry(structure, path, directory)
                if bar is not None:
                    bar.update(1)
                continue
            if not force:
                raise ValueError(
                    f"{path}: stored with another protocol, seed or atom count; "
                    "use force=True (--force) to recompute or another directory"
                )
        if not ok:
            raise RuntimeError(f"build_cells: LAMMPS is needed for {name}: {version}")
        t0 = time.perf_counter()
        result = make_cell(x, k, protocol, seed, counts=counts)
        wall = time.perf_counter() - t0
        props = {
            "x": float(x),
            "cell_id": int(k),
            "seed": int(seed),
            "counts": list(counts[x]),
            "tag": tag,
            "energy_eV": float(result.energy),
            "md_wall_s": round(wall, 2),
            "md_cpu_s": round(result.cpu_s, 2),
            "md_stage_cpu_s": result.stage_cpu_s,
            "final_pressure_bar": float(result.thermo["press"][-1]),
            "protocol": protocol.to_dict(),
            "source": "melt-quench Tersoff (LAMMPS)",
            "thermo": {key: list(v) for key, v in result.thermo.items()},
        }
        path = save_cell(directory, result.atoms, props)
        entries[name] = _entry(load_cell(path), path, directory)
        log(
            f"{name}: {len(result.atoms)} atoms, {wall:.1f} s wall, {result.cpu_s:.1f} s CPU, "
            f"{entries[name]['summary']['density_g_cm3']:.3f} g/cm3"
        )
        _write(directory, protocol, entries, version, potential, n_cells, base_seed, counts, n_atoms, previous)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return _write(directory, protocol, entries, version, potential, n_cells, base_seed, counts, n_atoms, previous)


def _write(
    directory: Path,
    protocol: MeltQuench,
    entries: dict[str, dict[str, Any]],
    version: str,
    potential: Path,
    n_cells: int | dict[float, int],
    base_seed: int,
    counts: dict[float, tuple[int, int]],
    n_atoms: int | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the manifest; per-x fields of ``previous`` (the old manifest) for other x are kept."""
    previous = previous or {}
    requested = {f"{x:.2f}": int(v) for x, v in n_cells.items()} if isinstance(n_cells, dict) else n_cells
    if isinstance(requested, dict) and isinstance(previous.get("n_cells_requested"), dict):
        requested = {**previous["n_cells_requested"], **requested}
    counts_si_o = {**(previous.get("counts_si_o") or {}), **{f"{x:.2f}": list(c) for x, c in counts.items()}}
    cells = sorted(entries.values(), key=lambda e: (e["x"], e["cell_id"]))
    n_sites: dict[str, int] = {}
    n_cells_x: dict[str, int] = {}
    for e in cells:
        key = f"{e['x']:.2f}"
        n_sites[key] = n_sites.get(key, 0) + e["n_o"]
        n_cells_x[key] = n_cells_x.get(key, 0) + 1
    manifest = {
        "description": "Amorphous SiO_x cells, melt-quench MD with the Tersoff Si-O potential; "
        "out-of-distribution test set, never for training",
        "engine": f"LAMMPS {version}",
        "potential": {"file": potential.name, "sha256": sha256_file(potential), "citation": POTENTIAL_CITATION},
        "protocol": protocol.to_dict(),
        "base_seed": base_seed,
        "n_atoms_nominal": n_atoms,
        "n_cells_requested": {k: requested[k] for k in sorted(requested, key=float)}
        if isinstance(requested, dict)
        else requested,
        "counts_si_o": {k: counts_si_o[k] for k in sorted(counts_si_o, key=float)},
        "bond_cutoffs_A": {"-".join(k): v for k, v in analysis.DEFAULT_CUTOFFS.items()},
        "python": platform.python_version(),
        "n_cells": n_cells_x,
        "n_o_sites": n_sites,
        "paper_n_sites": {f"{x:.2f}": n for x, n in PAPER_N_SITES.items()},
        "cells": cells,
    }
    write_manifest(directory, manifest)
    return manifest
