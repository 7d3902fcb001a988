"""Users' own structures: a folder of CIF/POSCAR files, or the Materials Project (mp-api).

``load_folder(path)`` turns every ``*.cif``, ``POSCAR*``, ``CONTCAR*`` and ``*.vasp`` file
of a folder into :class:`StructureRecord` (source ``"user"``); a file that cannot be read,
or that is not an Si-O crystal, raises a ``ValueError`` naming it.

``materials_project_records()`` queries the Materials Project through the optional
``mp-api`` client (``pip install mp-api``; needs network and an API key, argument or
``MP_API_KEY``).  The same conversion, :func:`records_from_mp_docs`, reads a saved response
(a JSON list of summary documents with ``material_id`` and ``structure``), which is how the
path is tested offline.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

from pymatgen.core import Structure

from s2s.files import atomic_write_text
from s2s.structures.records import StructureRecord

STRUCTURE_PATTERNS = ("*.cif", "*.CIF", "POSCAR*", "CONTCAR*", "*.vasp", "*.poscar")
MP_FIELDS = ["material_id", "formula_pretty", "structure", "energy_above_hull", "symmetry"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def load_structure_file(path: str | os.PathLike) -> Structure:
    """Read one CIF/POSCAR file with pymatgen; ValueError naming the file if it fails."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_file(path)
    except Exception as err:  # noqa: BLE001 - pymatgen raises many types
        raise ValueError(f"{path}: not a readable CIF/POSCAR structure ({type(err).__name__}: {err})") from err
    if len(s) == 0:
        raise ValueError(f"{path}: structure has no atoms")
    return s


def load_folder(path: str | os.PathLike, prefix: str = "user") -> list[StructureRecord]:
    """Every CIF/POSCAR file in a folder as a record (ids ``<prefix>-<file stem>``)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    files = sorted({p for pat in STRUCTURE_PATTERNS for p in folder.glob(pat) if p.is_file()})
    if not files:
        raise ValueError(f"{folder}: no CIF/POSCAR files (looked for {', '.join(STRUCTURE_PATTERNS)})")
    out = []
    for f in files:
        s = load_structure_file(f)
        els = {e.symbol for e in s.composition.elements}
        if not els <= {"Si", "O"} or "Si" not in els:
            raise ValueError(f"{f}: expected an Si-O crystal, got {s.composition.reduced_formula}")
        out.append(
            StructureRecord(
                id=f"{prefix}-{_slug(f.name)}",
                source="user",
                citation=f"user file {f.name}",
                structure=s,
                name=f.stem,
                notes={"file": str(f)},
            )
        )
    return out


def _get(doc: Any, key: str) -> Any:
    return doc.get(key) if isinstance(doc, dict) else getattr(doc, key, None)


def records_from_mp_docs(docs: Iterable[Any]) -> list[StructureRecord]:
    """Records from Materials Project summary documents (dicts or mp-api document objects).

    Each document needs ``material_id`` and ``structure`` (a pymatgen Structure or its dict);
    non-Si-O entries are skipped.
    """
    out = []
    for i, doc in enumerate(docs):
        mid, st = _get(doc, "material_id"), _get(doc, "structure")
        if mid is None or st is None:
            raise ValueError(f"Materials Project document {i}: missing 'material_id' or 'structure'")
        s = st if isinstance(st, Structure) else Structure.from_dict(st)
        els = {e.symbol for e in s.composition.elements}
        if not els <= {"Si", "O"} or "Si" not in els:
            continue
        ehull = _get(doc, "energy_above_hull")
        out.append(
            StructureRecord(
                id=f"mp-{_slug(str(mid)).removeprefix('mp-')}",
                source="materials-project",
                citation=f"Materials Project {mid} (Jain et al., APL Mater. 1, 011002 (2013)), CC BY 4.0",
                structure=s,
                name=str(_get(doc, "formula_pretty") or s.composition.reduced_formula),
                notes={"material_id": str(mid), "energy_above_hull": ehull},
            )
        )
    return out


def materials_project_records(
    api_key: str | None = None, chemsys: str = "O-Si", save_response: str | os.PathLike | None = None
) -> list[StructureRecord]:
    """Si-O crystals from the Materials Project (needs ``mp-api``, network and an API key).

    save_response: optionally write the raw documents (JSON) so that the query can be
    replayed offline with :func:`records_from_mp_docs`.
    """
    try:
        from mp_api.client import MPRester
    except ImportError as err:
        raise ImportError("materials_project_records needs the optional 'mp-api' package (pip install mp-api)") from err
    key = api_key or os.environ.get("MP_API_KEY")
    if not key:
        raise ValueError("materials_project_records: no Materials Project API key (pass api_key or set MP_API_KEY)")
    with MPRester(key) as mpr:
        docs = mpr.materials.summary.search(chemsys=chemsys, fields=MP_FIELDS)
    dicts = [
        {
            "material_id": str(_get(d, "material_id")),
            "formula_pretty": _get(d, "formula_pretty"),
            "energy_above_hull": _get(d, "energy_above_hull"),
            "structure": _get(d, "structure").as_dict(),
        }
        for d in docs
    ]
    if save_response is not None:
        atomic_write_text(save_response, json.dumps(dicts))
    return records_from_mp_docs(dicts)


def load_mp_response(path: str | os.PathLike) -> list[StructureRecord]:
    """Records from a saved Materials Project response (JSON list of documents)."""
    path = Path(path)
    try:
        docs = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON response ({err})") from err
    if isinstance(docs, dict) and "data" in docs:  # raw REST response {"data": [...], "meta": ...}
        docs = docs["data"]
    if not isinstance(docs, list):
        raise ValueError(f"{path}: expected a JSON list of summary documents")
    return records_from_mp_docs(docs)
