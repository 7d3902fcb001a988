"""Si-O crystal structures for the open dataset.

Sources (see data/structures/README.md for the licence chain):

* :mod:`.prototypes` - pymatgen's bundled AFLOW prototypes and pyxtal's SiO2 CIFs;
* :mod:`.literature` - SiO2 polymorphs entered from published crystallographic data and
  decorated high-pressure prototypes;
* :mod:`.frameworks` - SiO2 frameworks on 4-connected nets;
* :mod:`.generate` - random symmetric SiOx cells (pyxtal) relaxed with CHGNet;
* :mod:`.user` - a user's own CIF/POSCAR folder, or the Materials Project (mp-api).

Every crystal is a :class:`~.records.StructureRecord`, stored as one JSON per structure.
"""

from __future__ import annotations

from s2s.structures.records import (
    Relaxation,
    StructureRecord,
    load_records,
    unique_o_sites,
)

#: Default location of the shipped structures (relative to the repository root).
DEFAULT_DIR = "data/structures"

__all__ = [
    "DEFAULT_DIR",
    "Relaxation",
    "StructureRecord",
    "fixed_records",
    "load_records",
    "unique_o_sites",
]


def fixed_records(max_layers: int = 8) -> tuple[list[StructureRecord], dict[str, str]]:
    """Literature, AFLOW, pyxtal and framework records, deduplicated in that priority order.

    Returns (records, {dropped id: id of the record it duplicates}).  Each record's
    ``notes["filter"]`` lists why :func:`.filters.check_structure` would reject it (empty
    list = passes); fixed sources are kept either way (high-pressure prototypes are
    deliberately outside the ambient-pressure filter).
    """
    from s2s.structures.filters import check_structure, deduplicate
    from s2s.structures.frameworks import framework_records
    from s2s.structures.literature import literature_records
    from s2s.structures.prototypes import aflow_records, pyxtal_records

    recs = literature_records() + aflow_records() + pyxtal_records() + framework_records(max_layers)
    for r in recs:
        r.notes["filter"] = check_structure(r.structure)
    return deduplicate(recs)
