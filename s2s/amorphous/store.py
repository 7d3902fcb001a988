"""On-disk store of the amorphous cells: one pymatgen JSON per cell plus a manifest.

Layout of a store directory (``data/amorphous/`` in the repository)::

    manifest.json            protocol, potential, per-cell entries, O-site counts
    cells/SiO2.00_c0.json    pymatgen Structure.as_dict(); ``properties`` holds
                             x, cell_id, seed, energy_eV and the protocol

Every file is written to a temporary file and ``os.replace``'d into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ase import Atoms

MANIFEST = "manifest.json"
FORMAT_NAME = "s2s-amorphous-cells"
FORMAT_VERSION = 1


class StoreError(ValueError):
    """A store file is missing or does not have the expected content."""


def cell_name(x: float, cell_id: int, tag: str = "") -> str:
    """File stem of a cell, e.g. ``SiO0.25_c1``, or ``SiO0.25_n72_c1`` with ``tag="n72"``."""
    if tag and not tag.replace("-", "").isalnum():
        raise ValueError(f"cell_name: tag must be alphanumeric, got {tag!r}")
    return f"SiO{x:.2f}_{tag}_c{int(cell_id)}" if tag else f"SiO{x:.2f}_c{int(cell_id)}"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atoms_to_structure(atoms: Atoms, properties: dict[str, Any]):
    """pymatgen Structure of ``atoms`` with ``properties`` attached (JSON-serialisable)."""
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    clean = Atoms(symbols=atoms.get_chemical_symbols(), positions=atoms.get_positions(), cell=atoms.cell, pbc=True)
    structure = AseAtomsAdaptor.get_structure(clean)
    json.dumps(properties)  # fail early on non-JSON values
    structure.properties = dict(properties)
    return structure


def save_cell(directory: Path, atoms: Atoms, properties: dict[str, Any]) -> Path:
    """Write one cell as ``<directory>/cells/<name>.json``; ``properties`` needs ``x`` and ``cell_id``."""
    for key in ("x", "cell_id"):
        if key not in properties:
            raise StoreError(f"save_cell: properties must contain {key!r}")
    structure = atoms_to_structure(atoms, properties)
    name = cell_name(properties["x"], properties["cell_id"], properties.get("tag", ""))
    path = Path(directory) / "cells" / f"{name}.json"
    atomic_write_text(path, json.dumps(structure.as_dict()))
    return path


def load_cell(path: Path):
    """pymatgen Structure of a cell file (``structure.properties`` carries the metadata)."""
    from pymatgen.core import Structure  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: cell file not found")
    try:
        structure = Structure.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise StoreError(f"{path}: not a pymatgen Structure JSON ({err})") from err
    for key in ("x", "cell_id", "seed"):
        if key not in structure.properties:
            raise StoreError(f"{path}: properties lack {key!r} (expected x, cell_id, seed, protocol)")
    return structure


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path}: manifest not found (run scripts/build_amorphous.py md)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_NAME or int(manifest.get("format_version", -1)) > FORMAT_VERSION:
        raise StoreError(f"{path}: expected format {FORMAT_NAME!r} version <= {FORMAT_VERSION}")
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest}
    path = Path(directory) / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return path


def load_cells(directory: Path) -> list:
    """All cells listed in the manifest, in manifest order, as pymatgen Structures."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    return [load_cell(directory / entry["file"]) for entry in manifest["cells"]]
