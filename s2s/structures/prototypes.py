"""Si-O crystals shipped with our dependencies (offline, MIT licensed).

* pymatgen's bundled AFLOW prototype library (``pymatgen.analysis.prototypes``): the pure
  Si-O entries (quartz, cristobalites, tridymites, keatite, a P2 SiO2).  Its coesite is
  broken (an O 1.98 Å from Si, half the Si 5-coordinated) and is skipped here; coesite is
  rebuilt from published coordinates in :mod:`s2s.structures.literature`.
* the SiO2 CIFs in pyxtal's wheel (``pyxtal/database/cifs``: quartz, cristobalite, FAU).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from pymatgen.core import Structure

from s2s.structures.records import StructureRecord

AFLOW_CITATION = (
    "AFLOW prototype library as bundled with pymatgen (MIT): Mehl et al., Comput. Mater. Sci. "
    "136, S1 (2017); Hicks et al., Comput. Mater. Sci. 161, S1 (2019)"
)
PYXTAL_CITATION = "CIF shipped in the pyxtal wheel (MIT): Fredericks et al., Comput. Phys. Commun. 261, 107810 (2021)"

#: AFLOW entries that are known to be wrong and are replaced elsewhere.
AFLOW_SKIP = {"A2B_mC48_15_ae3f_2f": "coesite: O 1.98 Å from Si; rebuilt in literature.py"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def aflow_library() -> list[dict]:
    """The raw AFLOW prototype library bundled with pymatgen (list of dicts: snl, tags)."""
    from pymatgen.analysis.prototypes._data import AFLOW_PROTOTYPE_LIBRARY

    return AFLOW_PROTOTYPE_LIBRARY


def aflow_entry(label: str) -> dict:
    """The one pure Si-O entry of the AFLOW library with this prototype label (dict: snl, tags).

    Raises RuntimeError if the label does not name exactly one Si-O entry.
    """
    hits = [
        d
        for d in aflow_library()
        if d["tags"].get("aflow") == label
        and {e.symbol for e in d["snl"].structure.composition.elements} == {"Si", "O"}
    ]
    if len(hits) != 1:
        raise RuntimeError(f"AFLOW prototype library: {len(hits)} Si-O entries labelled {label!r}")
    return hits[0]


def aflow_structure(label: str) -> Structure:
    """The structure of the Si-O AFLOW prototype ``label`` (a copy; e.g. ``"A2B_hP9_152_c_a"``, alpha-quartz)."""
    return aflow_entry(label)["snl"].structure.copy()


def aflow_original_citation(label: str) -> str:
    """'Authors, Journal vol, pages (year)' of the original structure paper of AFLOW entry ``label``."""
    ref = aflow_entry(label)["snl"].references.split("@article{Mehl2017")[0]
    field = {k: v.strip().strip('{}"').strip() for k, v in re.findall(r'(\w+)\s*=\s*("[^"]*"|\{[^\n]*\})', ref)}
    return (
        (
            f"{field.get('author', '?')}, {field.get('journal', '?')} {field.get('volume', '?')}, "
            f"{field.get('pages', '?')} ({field.get('year', '?')})"
        )
        .replace("--", "-")
        .replace('\\"{u}', "ü")
    )


def aflow_records() -> list[StructureRecord]:
    """Pure Si-O entries of the AFLOW library (minus :data:`AFLOW_SKIP`)."""
    out = []
    for entry in aflow_library():
        s: Structure = entry["snl"].structure
        els = {e.symbol for e in s.composition.elements}
        if els != {"Si", "O"}:
            continue
        label = entry["tags"]["aflow"]
        if label in AFLOW_SKIP:
            continue
        mineral = entry["tags"].get("mineral") or ""
        out.append(
            StructureRecord(
                id=f"aflow-{_slug(label)}",
                source="aflow-prototype",
                citation=f"{AFLOW_CITATION}; prototype {label}",
                structure=s.copy(),
                name=mineral or label,
                notes={"aflow_label": label, "pearson": entry["tags"].get("pearson", "")},
            )
        )
    return out


def pyxtal_cif_dir() -> Path:
    import pyxtal

    return Path(pyxtal.__file__).parent / "database" / "cifs"


def pyxtal_records() -> list[StructureRecord]:
    """Pure Si-O CIFs shipped in pyxtal's wheel."""
    out = []
    for path in sorted(pyxtal_cif_dir().glob("*.cif")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = Structure.from_file(path)
        except Exception:  # noqa: BLE001 - many of pyxtal's CIFs are molecular; skip unreadable ones
            continue
        if {e.symbol for e in s.composition.elements} != {"Si", "O"}:
            continue
        out.append(
            StructureRecord(
                id=f"pyxtal-{_slug(path.stem)}",
                source="pyxtal-cif",
                citation=f"{PYXTAL_CITATION}; file database/cifs/{path.name}",
                structure=s,
                name=path.stem,
                notes={"file": path.name},
            )
        )
    return out
