"""The GPAW O K-edge reference set: which structures, which sites, the resumable build and its reports.

Layout under the reference folder ``ref_dir`` (``data/reference`` in a checkout, see
:mod:`s2s.resources`, key ``"reference"``):

* ``structures/<id>.cif``: every reference structure, sites sorted (the records' site indices
  refer to these files), written once by :func:`load_or_build`; ``structures/sources.json``
  holds source / citation / relaxation of each;
* ``gpaw/<id>__site<k>.json``: one record per computed O site (:func:`run_sites`);
  failures go to ``<id>__site<k>.failed.json``; ``gpaw_pw/`` holds the plane-wave check.

A *plan* is a list of ``(structure id, Structure, site index, multiplicity)``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from s2s.environment import unique_o_site_groups
from s2s.simulate.gpaw_ref import (
    GRID,
    GPAWSettings,
    broaden_to_grid,
    load_record,
    record_path,
    run_site,
    write_json_atomic,
)
from s2s.structures.literature import stishovite
from s2s.structures.prototypes import aflow_entry, aflow_original_citation, aflow_structure
from s2s.structures.reference import (
    coesite_levien_prewitt,
    decorated_diamond,
    peroxy_quartz,
    peroxy_sites,
    relax_chgnet,
    seifertite_dera,
)

Plan = list[tuple[str, Structure, int, int]]

CHGNET_FULL = "CHGNet (package 0.4.2, model v0.3.0; cell + positions, fmax 0.05 eV/Å)"
CHGNET_FIXED_CELL = "CHGNet (package 0.4.2, model v0.3.0; positions, fixed cell, fmax 0.05 eV/Å)"


def aflow_reference(label: str) -> dict:
    """Reference-set entry of an AFLOW prototype: build function, source text (with the original paper)."""
    tags = aflow_entry(label)["tags"]
    return {
        "build": lambda: aflow_structure(label),
        "source": f"pymatgen bundled AFLOW prototype library {label} "
        f"('{tags.get('mineral') or 'unnamed'}'; Mehl et al., Comput. Mater. Sci. 136, S1 (2017), "
        f"MIT via pymatgen); structure from {aflow_original_citation(label)}",
        "relaxed": "no (as in the library)",
    }


def reference_structures() -> dict[str, dict]:
    """id -> how to build it (``build``; ``source``, ``relaxed`` text; optional ``symprec``, ``sites``).

    The order is the priority of the GPAW runs.  ``sites`` (Structure -> [(index, multiplicity)])
    overrides the symmetry-unique O sites; ``symprec`` (Å) is the tolerance of that symmetry search.
    """
    return {
        "alpha_quartz": aflow_reference("A2B_hP9_152_c_a"),
        "alpha_cristobalite": aflow_reference("A2B_tP12_92_b_a"),
        "stishovite": {
            "build": lambda: stishovite(merge=False),
            "source": "Baur & Khan, Acta Cryst. B27, 2133 (1971)",
            "relaxed": "no (experimental)",
        },
        "coesite": {
            "build": coesite_levien_prewitt,
            "source": "Levien & Prewitt, Am. Mineral. 66, 324 (1981), 1 atm",
            "relaxed": "no (experimental)",
        },
        "tridymite_high_c2221": aflow_reference("A2B_oC24_20_abc_c"),
        "suboxide_sio": {
            "build": lambda: relax_chgnet(decorated_diamond(2)),
            "source": "built: diamond Si with O in 2 of the 4 bonds of every Si (SiO, Si2+)",
            "relaxed": CHGNET_FULL,
        },
        "peroxy_quartz": {
            "build": lambda: relax_chgnet(peroxy_quartz(), relax_cell=False),
            "source": "built: 2x2x2 alpha-quartz with one Si-O-O-Si peroxy bridge (O-rich)",
            "relaxed": CHGNET_FIXED_CELL,
            "sites": peroxy_sites,
        },
        "suboxide_si2o3": {
            "build": lambda: relax_chgnet(decorated_diamond(3)),
            "symprec": 0.05,  # the CHGNet relaxation leaves ~0.02 Å of the rattle
            "source": "built: diamond Si with O in 3 of the 4 bonds of every Si (Si2O3, Si3+)",
            "relaxed": CHGNET_FULL,
        },
        "suboxide_si2o": {
            "build": lambda: relax_chgnet(decorated_diamond(1)),
            "symprec": 0.05,  # the CHGNet relaxation leaves ~0.02 Å of the rattle
            "source": "built: diamond Si with O in 1 of the 4 bonds of every Si (Si2O, Si+)",
            "relaxed": CHGNET_FULL,
        },
        "seifertite": {
            "build": seifertite_dera,
            "source": "Dera et al., Am. Mineral. 87, 1018 (2002)",
            "relaxed": "no (experimental)",
        },
        "beta_quartz": aflow_reference("A2B_hP9_180_j_c"),
        "beta_cristobalite": aflow_reference("A2B_cF24_227_c_a"),
        "beta_tridymite": aflow_reference("A2B_hP12_194_cg_f"),
        "keatite": aflow_reference("A2B_tP36_96_3b_ab"),
        # hypothetical framework of Boisen, Gibbs & Bukowinski, Phys. Chem. Minerals 21, 269 (1994)
        "silica_p2_boisen": aflow_reference("A2B_mP12_3_bc3e_2e"),
    }


def load_or_build(sid: str, ref_dir: Path, structures: dict[str, dict]) -> Structure:
    """Reference structure ``sid`` from ``ref_dir/structures/<sid>.cif`` (built, sorted and written first
    if missing; the CIF round trip must keep the site order); keeps ``structures/sources.json`` current."""
    struct_dir = Path(ref_dir) / "structures"
    sources_path = struct_dir / "sources.json"
    path = struct_dir / f"{sid}.cif"
    if not path.exists():
        from pymatgen.io.cif import CifWriter

        s = structures[sid]["build"]().get_sorted_structure()
        struct_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp{os.getpid()}_{path.name}")
        CifWriter(s).write_file(tmp)
        back = Structure.from_file(tmp)
        if [x.specie.symbol for x in back] != [x.specie.symbol for x in s] or not np.allclose(
            (back.frac_coords - s.frac_coords + 0.5) % 1 - 0.5, 0, atol=1e-5
        ):
            raise RuntimeError(f"{path}: CIF round trip changed the site order")
        os.replace(tmp, path)
    s = Structure.from_file(path)
    sources = json.loads(sources_path.read_text()) if sources_path.exists() else {}
    entry = {k: v for k, v in structures[sid].items() if isinstance(v, (str, float))}
    entry.update(formula=s.composition.formula, n_atoms=len(s), file=f"{sid}.cif")
    if sources.get(sid) != entry:
        sources[sid] = entry
        write_json_atomic(sources_path, sources)
    return s


def site_plan(sid: str, s: Structure, structures: dict[str, dict]) -> list[tuple[int, int]]:
    """(site index, multiplicity) of the O sites to compute for structure ``sid``."""
    chooser: Callable[[Structure], list[tuple[int, int]]] | None = structures[sid].get("sites")
    return chooser(s) if chooser else unique_o_site_groups(s, structures[sid].get("symprec", 0.01), sid)


def make_plan(ids: list[str], ref_dir: Path, structures: dict[str, dict]) -> Plan:
    """The plan of structures ``ids`` in that order: every chosen O site of each (structures built if missing)."""
    plan: Plan = []
    for sid in ids:
        s = load_or_build(sid, ref_dir, structures)
        for k, mult in site_plan(sid, s, structures):
            plan.append((sid, s, k, mult))
    return plan


def site_state(gpaw_dir: Path, sid: str, k: int) -> str:
    """'done' (record present), 'FAILED' (a .failed.json) or 'todo'."""
    p = record_path(gpaw_dir, sid, k)
    return "done" if p.exists() else ("FAILED" if p.with_suffix(".failed.json").exists() else "todo")


# ----------------------------------------------------------------------------- reports


def summary_table(plan: Plan, gpaw_dir: Path) -> str:
    """Markdown table of the records on disk (numbers straight from the JSONs)."""
    rows = [
        "| structure | site | mult. | formula | atoms | gap (eV) | sanity | SCF it. | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    n, walls = 0, []
    for sid, s, k, mult in plan:
        p = record_path(gpaw_dir, sid, k)
        if not p.exists():
            continue
        r = load_record(p)
        n += 1
        walls.append(r["wall_time_s"]["total"])
        san = r["sanity"]
        verdict = (
            ("ok" + (" (small gap)" if san.get("warnings") else "")) if san["passed"] else "FAIL: " + san["message"]
        )
        rows.append(
            f"| {sid} | {k} | {mult} | {s.composition.reduced_formula} | "
            f"{r['settings']['supercell_atoms']} | {san['gap_eV']:.2f} | "
            f"{verdict} "
            f"({san['n_fully_occupied']}/{san['expected_valence_over_2']:g}) | "
            f"{r.get('scf_iterations')} | {r['wall_time_s']['total']:.0f} |"
        )
    rows.append(
        f"\n{n}/{len(plan)} sites done; wall time total {sum(walls) / 3600:.2f} h, "
        f"median {np.median(walls) if walls else float('nan'):.0f} s per site"
    )
    return "\n".join(rows)


def compare_pw(plan: Plan, ref_dir: Path, fwhms: tuple[float, ...] = (0.5, 1.0, 1.5)) -> str:
    """LCAO (gpaw/) vs plane-wave (gpaw_pw/) spectra of the same sites: Pearson r and cosine
    on the grid after broadening both stick sets with the same Gaussian (FWHM in eV)."""
    ref_dir = Path(ref_dir)
    head = " | ".join(f"r / cos @{f} eV" for f in fwhms)
    rows = [
        f"| structure | site | gap LCAO / PW (eV) | window (eV) | {head} |",
        "|---|---|---|---|" + "---|" * len(fwhms),
    ]
    acc: dict[float, list[tuple[float, float]]] = {f: [] for f in fwhms}
    for sid, s, k, mult in plan:
        pl, pp = record_path(ref_dir / "gpaw", sid, k), record_path(ref_dir / "gpaw_pw", sid, k)
        if not (pl.exists() and pp.exists()):
            continue
        a, b = load_record(pl), load_record(pp)
        top = min(float(GRID[-1]), b.get("converged_max_energy_eV", b["max_energy_eV"]) - 1.0)
        win = GRID <= top  # compare only where the pw empty bands are converged
        cells = []
        for f in fwhms:
            ya = broaden_to_grid(np.asarray(a["energies_eV"]), np.asarray(a["intensity"]), f)[win]
            yb = broaden_to_grid(np.asarray(b["energies_eV"]), np.asarray(b["intensity"]), f)[win]
            r = float(np.corrcoef(ya, yb)[0, 1])
            c = float(ya @ yb / np.linalg.norm(ya) / np.linalg.norm(yb))
            acc[f].append((r, c))
            cells.append(f"{r:.3f} / {c:.3f}")
        rows.append(
            f"| {sid} | {k} | {a['sanity']['gap_eV']:.2f} / {b['sanity']['gap_eV']:.2f} | "
            f"{GRID[0]:.0f}..{GRID[win][-1]:.1f} | " + " | ".join(cells) + " |"
        )
    if acc[fwhms[0]]:
        rows.append(
            "| **mean** | | | | "
            + " | ".join(
                f"{np.mean([x[0] for x in acc[f]]):.3f} / {np.mean([x[1] for x in acc[f]]):.3f}" for f in fwhms
            )
            + " |"
        )
    return "\n".join(rows)


def regrid(plan: Plan, gpaw_dir: Path, fwhm: float) -> int:
    """Recompute grid_spectrum (and the grid fields) of every record from its raw sticks (Gaussian FWHM, eV)."""
    n = 0
    for sid, s, k, mult in plan:
        p = record_path(gpaw_dir, sid, k)
        if not p.exists():
            continue
        r = load_record(p)
        if r["sanity"]["passed"]:
            y = broaden_to_grid(np.asarray(r["energies_eV"]), np.asarray(r["intensity"]), fwhm, source=str(p))
            r["grid_spectrum"] = [float(f"{x:.6g}") for x in y]
        r["settings"]["fwhm"] = fwhm
        r["settings"]["broadening"] = f"Gaussian FWHM {fwhm} eV (grid_spectrum only)"
        r["grid"] = {"start_eV": float(GRID[0]), "step_eV": round(float(GRID[1] - GRID[0]), 10), "n": int(GRID.size)}
        write_json_atomic(p, r)
        n += 1
    return n


# ----------------------------------------------------------------------------- running


def sites_to_run(plan: Plan, gpaw_dir: Path, retry_failed: bool = False, max_sites: int = 0) -> Plan:
    """The plan's sites without a record (and without a .failed.json unless ``retry_failed``), at most
    ``max_sites`` of them (0 = all)."""
    todo = []
    for sid, s, k, mult in plan:
        p = record_path(gpaw_dir, sid, k)
        failed = p.with_suffix(".failed.json")
        if p.exists() or (failed.exists() and not retry_failed):
            continue
        todo.append((sid, s, k, mult))
    return todo[:max_sites] if max_sites else todo


def run_sites(
    todo: Plan, gpaw_dir: Path, settings: GPAWSettings, workdir: str | None = None, progress: bool = True
) -> None:
    """Run GPAW on every site of ``todo`` and write its record atomically (a failure is recorded in
    ``<id>__site<k>.failed.json`` and the loop goes on); prints one line per site."""
    from tqdm import tqdm

    for sid, s, k, mult in tqdm(todo, desc="GPAW sites", file=sys.stdout, disable=not progress):
        p = record_path(gpaw_dir, sid, k)
        t0 = time.time()
        try:
            rec = run_site(
                s,
                sid,
                k,
                settings,
                workdir=workdir,
                extra={
                    "multiplicity": mult,
                    "formula": s.composition.reduced_formula,
                    "structure_file": f"structures/{sid}.cif",
                },
            )
        except Exception as exc:  # record and go on with the next site
            write_json_atomic(
                p.with_suffix(".failed.json"),
                {
                    "structure_id": sid,
                    "site_index": k,
                    "error": str(exc)[-4000:],
                    "traceback": traceback.format_exc()[-4000:],
                    "wall_time_s": time.time() - t0,
                },
            )
            print(f"FAILED {sid} site {k}: {str(exc)[:300]}", flush=True)
            continue
        write_json_atomic(p, rec)
        if p.with_suffix(".failed.json").exists():
            p.with_suffix(".failed.json").unlink()
        print(
            f"{sid} site {k}: {rec['settings']['supercell_atoms']} atoms, "
            f"wall {rec['wall_time_s']['total']:.0f} s, sanity {rec['sanity']['message']}, "
            f"gap {rec['sanity']['gap_eV']:.2f} eV, max E {rec['max_energy_eV']:.1f} eV",
            flush=True,
        )
