"""StructureRecord: one Si-O crystal with its provenance, JSON round trip, atomic write.

Every structure of the open dataset is stored as one JSON file holding the pymatgen
``Structure`` (lengths in Å) and where it came from: source, citation, composition
x = O/Si, space group and relaxation provenance.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from s2s.environment import unique_o_sites as _unique
from s2s.files import atomic_write_text

#: Allowed values of :attr:`StructureRecord.source`.
SOURCES: tuple[str, ...] = (
    "aflow-prototype",  # pymatgen's bundled AFLOW prototype library (MIT)
    "pyxtal-cif",  # CIFs shipped in pyxtal's wheel (MIT)
    "literature",  # entered by hand from published crystallographic data
    "framework",  # O at the midpoint of every Si-Si bond of a 4-connected Si net
    "generated",  # random symmetric cell (pyxtal) relaxed with CHGNet
    "user",  # a user's own CIF/POSCAR file
    "materials-project",  # downloaded through mp-api by a user with a key
)

RECORD_VERSION = 1


@dataclass
class Relaxation:
    """How the coordinates were relaxed (``method="none"`` if they were not).

    energy_per_atom is in eV/atom (the relaxer's own scale), fmax in eV/Å.
    """

    method: str = "none"
    version: str | None = None
    fmax: float | None = None
    steps: int | None = None
    converged: bool | None = None
    energy_per_atom: float | None = None
    seconds: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class StructureRecord:
    """One Si-O crystal of the dataset.

    Attributes
    ----------
    id : unique, file-name safe identifier (``"lit-stishovite"``, ``"gen-000123"``, ...).
    source : one of :data:`SOURCES`.
    citation : where the crystal data came from (reference, DOI or seed).
    structure : the pymatgen Structure (Å).
    relaxation : :class:`Relaxation` provenance.
    name : human-readable name (mineral or prototype), may be empty.
    notes : free-form extra provenance (seed, parent net, flags such as ``peroxide``).
    formula, x, spacegroup, spacegroup_number, n_atoms are derived from the structure.
    """

    id: str
    source: str
    citation: str
    structure: Structure
    relaxation: Relaxation = field(default_factory=Relaxation)
    name: str = ""
    notes: dict = field(default_factory=dict)
    formula: str = ""
    x: float = 0.0
    spacegroup: str = ""
    spacegroup_number: int = 0
    n_atoms: int = 0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"StructureRecord {self.id!r}: source {self.source!r} not in {SOURCES}")
        if not self.id or any(c in self.id for c in "/\\ \t\n"):
            raise ValueError(f"StructureRecord: id {self.id!r} must be non-empty and file-name safe")
        if isinstance(self.relaxation, dict):
            self.relaxation = Relaxation(**self.relaxation)
        comp = self.structure.composition
        els = {e.symbol for e in comp.elements}
        if not els <= {"Si", "O"} or "Si" not in els:
            raise ValueError(f"StructureRecord {self.id!r}: expected an Si-O crystal, got {comp.formula}")
        self.formula = comp.reduced_formula
        self.x = float(comp["O"] / comp["Si"])
        self.n_atoms = len(self.structure)
        if not self.spacegroup:
            self.spacegroup, self.spacegroup_number = spacegroup_of(self.structure)

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "record_version": RECORD_VERSION,
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "citation": self.citation,
            "formula": self.formula,
            "x": self.x,
            "n_atoms": self.n_atoms,
            "spacegroup": self.spacegroup,
            "spacegroup_number": self.spacegroup_number,
            "relaxation": asdict(self.relaxation),
            "notes": self.notes,
            "structure": self.structure.as_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StructureRecord:
        missing = [k for k in ("id", "source", "citation", "structure") if k not in d]
        if missing:
            raise ValueError(f"StructureRecord.from_dict: missing field(s) {missing}")
        return cls(
            id=d["id"],
            source=d["source"],
            citation=d["citation"],
            structure=Structure.from_dict(d["structure"]),
            relaxation=Relaxation(**d.get("relaxation", {})),
            name=d.get("name", ""),
            notes=d.get("notes", {}),
            spacegroup=d.get("spacegroup", ""),
            spacegroup_number=int(d.get("spacegroup_number", 0)),
        )

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``<folder>/<id>.json`` atomically; return its path."""
        path = Path(folder) / f"{self.id}.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> StructureRecord:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable StructureRecord JSON ({err})") from err
        try:
            return cls.from_dict(d)
        except Exception as err:  # noqa: BLE001 - re-raise naming the file
            raise ValueError(f"{path}: bad StructureRecord ({err})") from err


def spacegroup_of(structure: Structure, symprec: float = 0.1) -> tuple[str, int]:
    """International symbol and number (spglib through pymatgen, symprec in Å)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sga = SpacegroupAnalyzer(structure, symprec=symprec)
            return sga.get_space_group_symbol(), int(sga.get_space_group_number())
        except Exception:  # noqa: BLE001 - spglib can fail on odd cells
            return "P1", 1


def unique_o_sites(structure: Structure, symprec: float = 0.01) -> int:
    """Number of symmetrically distinct O sites (spglib orbits, symprec in Å).

    Delegates to :func:`s2s.environment.unique_o_sites`, so that the count is the one the
    spectrum simulator and the dataset use.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(_unique(structure, symprec=symprec))


def load_records(folder: str | os.PathLike) -> list[StructureRecord]:
    """Every ``*.json`` record in a folder, sorted by id."""
    return sorted((StructureRecord.load(p) for p in sorted(Path(folder).glob("*.json"))), key=lambda r: r.id)
