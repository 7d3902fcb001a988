"""Agreement of the open simulator with the first-principles (GPAW) reference set.

Reference records live in ``data/reference/gpaw/<id>__site<k>.json`` with their structures in
``data/reference/structures/<id>.cif`` (site indices refer to those files).  The xTB spectra of
the same sites are computed through the normal cached build (:mod:`s2s.simulate.build`), so
they are cached, resumable and shipped like the dataset's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from s2s.simulate.build import build, load_site
from s2s.simulate.xtb import XtbSettings


@dataclass
class ReferenceSite:
    structure_id: str
    site_index: int
    spectrum: np.ndarray  # (200,) on the grid, unit area
    structure: Structure
    formula: str


def load_reference_sites(ref_dir: str | Path) -> list[ReferenceSite]:
    """Every GPAW reference site whose sanity check passed, sorted by (structure, site)."""
    ref_dir = Path(ref_dir)
    files = sorted((ref_dir / "gpaw").glob("*__site*.json"))
    if not files:
        raise FileNotFoundError(f"{ref_dir / 'gpaw'}: no reference records (*__site*.json)")
    structures: dict[str, Structure] = {}
    out = []
    for p in files:
        d = json.loads(p.read_text())
        for key in ("structure_id", "site_index", "grid_spectrum"):
            if key not in d:
                raise ValueError(f"{p}: missing field {key!r}")
        if not d.get("sanity", {}).get("passed", True):
            continue
        sid = d["structure_id"]
        if sid not in structures:
            cif = ref_dir / d.get("structure_file", f"structures/{sid}.cif")
            structures[sid] = Structure.from_file(cif)
        spec = np.asarray(d["grid_spectrum"], dtype=float)
        if spec.shape != (200,):
            raise ValueError(f"{p}: grid_spectrum must have 200 values, got {spec.shape}")
        out.append(ReferenceSite(sid, int(d["site_index"]), spec, structures[sid], d.get("formula", "")))
    return sorted(out, key=lambda r: (r.structure_id, r.site_index))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def simulate_reference_sites(
    refs: list[ReferenceSite],
    settings: XtbSettings,
    cache_dir,
    workers: int = 1,
    compute: bool = True,
    progress: bool = False,
) -> dict[tuple[str, int], np.ndarray | None]:
    """xTB spectra of the reference sites (cached; computed if missing and ``compute``)."""
    sites: dict[str, list[int]] = {}
    structs: dict[str, Structure] = {}
    for r in refs:
        sites.setdefault(r.structure_id, []).append(r.site_index)
        structs[r.structure_id] = r.structure
    if compute:
        build(
            list(structs.items()),
            settings,
            cache_dir,
            workers=workers,
            progress=progress,
            sites_fn=lambda s, sid: sites[sid],
        )
    out = {}
    for r in refs:
        res = load_site(cache_dir, settings, r.structure_id, r.site_index)
        out[(r.structure_id, r.site_index)] = res.spectrum if (res is not None and res.ok) else None
    return out


def agreement(refs: list[ReferenceSite], simulated: dict[tuple[str, int], np.ndarray | None]) -> list[dict]:
    """Per site: Pearson r and cosine between the simulator and the reference (sites not simulated are skipped)."""
    rows = []
    for r in refs:
        s = simulated.get((r.structure_id, r.site_index))
        if s is None:
            continue
        rows.append(
            {
                "structure_id": r.structure_id,
                "site_index": r.site_index,
                "formula": r.formula,
                "pearson": pearson(s, r.spectrum),
                "cosine": cosine(s, r.spectrum),
            }
        )
    return rows
