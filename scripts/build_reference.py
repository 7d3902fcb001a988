#!/usr/bin/env python
"""Build the GPAW O K-edge reference set (data/reference/), resumably.

Step 1 (``structures``): write every reference structure as data/reference/structures/<id>.cif
(sorted sites; the site indices of the records refer to this CIF).  Published / AFLOW structures
are written as given; the built ones (suboxides, the peroxy O-rich cell) are relaxed with CHGNet
once and then read back from their CIF on every later run.
Step 2 (``run``): for every chosen O site without a record, run GPAW (``s2s.simulate.gpaw_ref``)
and write data/reference/gpaw/<id>__site<k>.json atomically.  Existing records are skipped;
failures go to <id>__site<k>.failed.json (retried with --retry-failed).

    nice -n 15 python scripts/build_reference.py structures
    nohup nice -n 15 python scripts/build_reference.py run > ref.log 2>&1 &
    python scripts/build_reference.py list          # the site plan and what is done
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from s2s.simulate.gpaw_ref import (
    GRID,
    GPAWSettings,
    broaden_to_grid,
    load_record,
    record_path,
    run_site,
    unique_o_sites,
    write_json_atomic,
)

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "reference"
STRUCT_DIR = REF / "structures"
GPAW_DIR = REF / "gpaw"
SOURCES = REF / "structures" / "sources.json"

# ----------------------------------------------------------------------------- structures


def _aflow_snl(label: str):
    from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY

    hits = [d for d in AFLOW_PROTOTYPE_LIBRARY if d["tags"].get("aflow") == label
            and {e.symbol for e in d["snl"].structure.composition.elements} == {"Si", "O"}]
    if len(hits) != 1:
        raise RuntimeError(f"AFLOW prototype library: {len(hits)} Si-O entries labelled {label!r}")
    return hits[0]


def _aflow(label: str) -> Structure:
    return _aflow_snl(label)["snl"].structure


def _aflow_citation(label: str) -> str:
    """'Authors, Journal vol, pages (year)' of the entry's original structure paper."""
    ref = _aflow_snl(label)["snl"].references.split("@article{Mehl2017")[0]
    field = {k: v.strip().strip('{}"').strip() for k, v in
             re.findall(r'(\w+)\s*=\s*("[^"]*"|\{[^\n]*\})', ref)}
    return (f"{field.get('author', '?')}, {field.get('journal', '?')} {field.get('volume', '?')}, "
            f"{field.get('pages', '?')} ({field.get('year', '?')})").replace("--", "-").replace('\\"{u}', "ü")


def _aflow_entry(label: str) -> dict:
    tags = _aflow_snl(label)["tags"]
    return {
        "build": lambda: _aflow(label),
        "source": f"pymatgen bundled AFLOW prototype library {label} "
                  f"('{tags.get('mineral') or 'unnamed'}'; Mehl et al., Comput. Mater. Sci. 136, S1 (2017), "
                  f"MIT via pymatgen); structure from {_aflow_citation(label)}",
        "relaxed": "no (as in the library)",
    }


def stishovite() -> Structure:
    """Baur & Khan, Acta Cryst. B27, 2133 (1971): P4_2/mnm, a=4.1773, c=2.6655 Å, O 4f x=0.3062."""
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.1773, 2.6655),
                                     ["Si", "O"], [[0, 0, 0], [0.3062, 0.3062, 0]])


def coesite() -> Structure:
    """Levien & Prewitt, Am. Mineral. 66, 324 (1981), P = 1 atm (AMCSD 0000816): C2/c."""
    return Structure.from_spacegroup(
        "C2/c", Lattice.monoclinic(7.1356, 12.3692, 7.1736, 120.34),
        ["Si", "Si", "O", "O", "O", "O", "O"],
        [[0.14033, 0.10833, 0.07227], [0.50682, 0.15799, 0.54077], [0, 0, 0],
         [0.5, 0.1163, 0.75], [0.266, 0.1234, 0.9401], [0.3114, 0.1038, 0.3282],
         [0.0172, 0.2117, 0.4782]])


def seifertite() -> Structure:
    """Dera et al., Am. Mineral. 87, 1018 (2002) (AMCSD 0002871): alpha-PbO2 type, Pbcn."""
    return Structure.from_spacegroup("Pbcn", Lattice.orthorhombic(4.097, 5.0462, 4.4946),
                                     ["Si", "O"], [[0, 0.1522, 0.25], [0.7336, 0.6245, 0.9186]])


def _relax(structure: Structure, relax_cell: bool = True, fmax: float = 0.05) -> Structure:
    import torch
    from chgnet.model import StructOptimizer

    torch.set_num_threads(1)
    opt = StructOptimizer()
    res = opt.relax(structure, fmax=fmax, steps=1000, relax_cell=relax_cell, verbose=False)
    return res["final_structure"]


def decorated_diamond(n_o_per_si: int) -> Structure:
    """Suboxide Si8O_(4n): the 8-atom diamond-Si cell (a = 5.431 Å) with an O inserted in
    ``n_o_per_si`` of the 4 Si-Si bonds of every Si (the first such bond set in a fixed
    enumeration); relaxed later with CHGNet.
    n=1: Si2O (Si+), n=2: SiO (Si2+), n=3: Si2O3 (Si3+); every Si keeps 4-n Si-Si bonds.
    The start is scaled part-way and rattled (seeded) so the relaxation can bend Si-O-Si."""
    a = 5.431
    si = Structure(Lattice.cubic(a), ["Si"] * 8,
                   [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                    [.25, .25, .25], [.25, .75, .75], [.75, .25, .75], [.75, .75, .25]])
    bonds = []  # (i, j, image of j)
    for i in range(8):
        for nb in si.get_neighbors(si[i], 2.5):
            if i < nb.index:
                bonds.append((i, nb.index, tuple(int(x) for x in nb.image)))
    bonds = sorted(set(bonds))
    if len(bonds) != 16:
        raise RuntimeError(f"diamond cell: expected 16 bonds, found {len(bonds)}")
    for chosen in itertools.combinations(range(16), 4 * n_o_per_si):
        deg = np.zeros(8, int)
        for b in chosen:
            deg[bonds[b][0]] += 1
            deg[bonds[b][1]] += 1
        if np.all(deg == n_o_per_si):
            break
    else:
        raise RuntimeError(f"no bond set with {n_o_per_si} O per Si")
    scale = 1.0 + 0.15 * n_o_per_si / 2  # part-way between Si-Si (2.35 Å) and Si-O-Si (~3.1 Å)
    s = Structure(Lattice.cubic(a * scale), ["Si"] * 8, si.frac_coords)
    for b in chosen:
        i, j, img = bonds[b]
        s.append("O", (si.frac_coords[i] + si.frac_coords[j] + np.array(img)) / 2)
    # break the ideal symmetry (linear Si-O-Si is a saddle point): fixed-seed 0.1 Å rattle
    rng = np.random.default_rng(n_o_per_si)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.1, (len(s), 3)),
                     coords_are_cartesian=True)


def peroxy_quartz() -> Structure:
    """O-rich SiO_(2+1/24): a 2x2x2 alpha-quartz cell (AFLOW) with one bridging O replaced by a
    peroxy bridge Si-O-O-Si (the 'peroxy linkage' defect of silica), relaxed with CHGNet at fixed
    cell.  The two peroxy O are the reference sites."""
    q = _aflow("A2B_hP9_152_c_a") * (2, 2, 2)
    o = next(i for i, s in enumerate(q) if s.specie.symbol == "O")
    si = [n for n in q.get_neighbors(q[o], 1.8) if n.specie.symbol == "Si"]
    if len(si) != 2:
        raise RuntimeError("peroxy_quartz: bridging O without two Si neighbours")
    a, b = si[0].coords, si[1].coords
    centre = q[o].coords
    axis = (b - a) / np.linalg.norm(b - a)
    q.remove_sites([o])
    q.append("O", centre - 0.72 * axis, coords_are_cartesian=True)
    q.append("O", centre + 0.72 * axis, coords_are_cartesian=True)
    return q


def _peroxy_sites(s: Structure) -> list[tuple[int, int]]:
    out = []
    for i, site in enumerate(s):
        if site.specie.symbol == "O" and any(n.specie.symbol == "O" for n in s.get_neighbors(site, 1.7)):
            out.append((i, 1))
    if len(out) != 2:
        raise RuntimeError(f"peroxy cell: expected 2 O-O bonded O, found {len(out)}")
    return out


# id -> how to build it; order = priority of the GPAW runs
STRUCTURES: dict[str, dict] = {
    "alpha_quartz": _aflow_entry("A2B_hP9_152_c_a"),
    "alpha_cristobalite": _aflow_entry("A2B_tP12_92_b_a"),
    "stishovite": {"build": stishovite, "source": "Baur & Khan, Acta Cryst. B27, 2133 (1971)",
                   "relaxed": "no (experimental)"},
    "coesite": {"build": coesite, "source": "Levien & Prewitt, Am. Mineral. 66, 324 (1981), 1 atm",
                "relaxed": "no (experimental)"},
    "tridymite_high_c2221": _aflow_entry("A2B_oC24_20_abc_c"),
    "suboxide_sio": {"build": lambda: _relax(decorated_diamond(2)),
                     "source": "built: diamond Si with O in 2 of the 4 bonds of every Si (SiO, Si2+)",
                     "relaxed": "CHGNet (package 0.4.2, model v0.3.0; cell + positions, fmax 0.05 eV/Å)"},
    "peroxy_quartz": {"build": lambda: _relax(peroxy_quartz(), relax_cell=False),
                      "source": "built: 2x2x2 alpha-quartz with one Si-O-O-Si peroxy bridge (O-rich)",
                      "relaxed": "CHGNet (package 0.4.2, model v0.3.0; positions, fixed cell, fmax 0.05 eV/Å)",
                      "sites": _peroxy_sites},
    "suboxide_si2o3": {"build": lambda: _relax(decorated_diamond(3)),
                       "symprec": 0.05,  # the CHGNet relaxation leaves ~0.02 Å of the rattle
                       "source": "built: diamond Si with O in 3 of the 4 bonds of every Si (Si2O3, Si3+)",
                       "relaxed": "CHGNet (package 0.4.2, model v0.3.0; cell + positions, fmax 0.05 eV/Å)"},
    "suboxide_si2o": {"build": lambda: _relax(decorated_diamond(1)),
                       "symprec": 0.05,  # the CHGNet relaxation leaves ~0.02 Å of the rattle
                      "source": "built: diamond Si with O in 1 of the 4 bonds of every Si (Si2O, Si+)",
                      "relaxed": "CHGNet (package 0.4.2, model v0.3.0; cell + positions, fmax 0.05 eV/Å)"},
    "seifertite": {"build": seifertite, "source": "Dera et al., Am. Mineral. 87, 1018 (2002)",
                   "relaxed": "no (experimental)"},
    "beta_quartz": _aflow_entry("A2B_hP9_180_j_c"),
    "beta_cristobalite": _aflow_entry("A2B_cF24_227_c_a"),
    "beta_tridymite": _aflow_entry("A2B_hP12_194_cg_f"),
    "keatite": _aflow_entry("A2B_tP36_96_3b_ab"),
    # hypothetical framework of Boisen, Gibbs & Bukowinski, Phys. Chem. Minerals 21, 269 (1994)
    "silica_p2_boisen": _aflow_entry("A2B_mP12_3_bc3e_2e"),
}


def load_or_build(sid: str) -> Structure:
    """The reference structure from its CIF (built and written first if missing)."""
    path = STRUCT_DIR / f"{sid}.cif"
    if not path.exists():
        s = STRUCTURES[sid]["build"]().get_sorted_structure()
        STRUCT_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp{os.getpid()}_{path.name}")
        CifWriter(s).write_file(tmp)
        back = Structure.from_file(tmp)
        if [x.specie.symbol for x in back] != [x.specie.symbol for x in s] or not np.allclose(
                (back.frac_coords - s.frac_coords + 0.5) % 1 - 0.5, 0, atol=1e-5):
            raise RuntimeError(f"{path}: CIF round trip changed the site order")
        os.replace(tmp, path)
    s = Structure.from_file(path)
    sources = json.loads(SOURCES.read_text()) if SOURCES.exists() else {}
    entry = {k: v for k, v in STRUCTURES[sid].items() if isinstance(v, (str, float))}
    entry.update(formula=s.composition.formula, n_atoms=len(s), file=f"{sid}.cif")
    if sources.get(sid) != entry:
        sources[sid] = entry
        write_json_atomic(SOURCES, sources)
    return s


def site_plan(sid: str, s: Structure) -> list[tuple[int, int]]:
    """(site index, multiplicity) of the O sites to compute for structure ``sid``."""
    chooser = STRUCTURES[sid].get("sites")
    return chooser(s) if chooser else unique_o_sites(s, STRUCTURES[sid].get("symprec", 0.01))


# ----------------------------------------------------------------------------- reports


def summary_table(plan) -> str:
    """Markdown table of the records on disk (numbers straight from the JSONs)."""
    rows = ["| structure | site | mult. | formula | atoms | gap (eV) | sanity | SCF it. | wall (s) |",
            "|---|---|---|---|---|---|---|---|---|"]
    n, walls = 0, []
    for sid, s, k, mult in plan:
        p = record_path(GPAW_DIR, sid, k)
        if not p.exists():
            continue
        r = load_record(p)
        n += 1
        walls.append(r["wall_time_s"]["total"])
        san = r["sanity"]
        rows.append(f"| {sid} | {k} | {mult} | {s.composition.reduced_formula} | "
                    f"{r['settings']['supercell_atoms']} | {san['gap_eV']:.2f} | "
                    f"{('ok' + (' (small gap)' if san.get('warnings') else '')) if san['passed'] else 'FAIL: ' + san['message']} "
                    f"({san['n_fully_occupied']}/{san['expected_valence_over_2']:g}) | "
                    f"{r.get('scf_iterations')} | {r['wall_time_s']['total']:.0f} |")
    rows.append(f"\n{n}/{len(plan)} sites done; wall time total {sum(walls) / 3600:.2f} h, "
                f"median {np.median(walls) if walls else float('nan'):.0f} s per site")
    return "\n".join(rows)


def compare_pw(plan, fwhms=(0.5, 1.0, 1.5)) -> str:
    """LCAO (gpaw/) vs plane-wave (gpaw_pw/) spectra of the same sites: Pearson r and cosine
    on the grid after broadening both stick sets with the same Gaussian."""
    head = " | ".join(f"r / cos @{f} eV" for f in fwhms)
    rows = [f"| structure | site | gap LCAO / PW (eV) | window (eV) | {head} |",
            "|---|---|---|---|" + "---|" * len(fwhms)]
    acc = {f: [] for f in fwhms}
    for sid, s, k, mult in plan:
        pl, pp = record_path(REF / "gpaw", sid, k), record_path(REF / "gpaw_pw", sid, k)
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
        rows.append(f"| {sid} | {k} | {a['sanity']['gap_eV']:.2f} / {b['sanity']['gap_eV']:.2f} | "
                    f"{GRID[0]:.0f}..{GRID[win][-1]:.1f} | "
                    + " | ".join(cells) + " |")
    if acc[fwhms[0]]:
        rows.append("| **mean** | | | | " + " | ".join(
            f"{np.mean([x[0] for x in acc[f]]):.3f} / {np.mean([x[1] for x in acc[f]]):.3f}"
            for f in fwhms) + " |")
    return "\n".join(rows)


def regrid(plan, fwhm: float) -> int:
    """Recompute grid_spectrum (and the grid fields) of every record from its raw sticks."""
    n = 0
    for sid, s, k, mult in plan:
        p = record_path(GPAW_DIR, sid, k)
        if not p.exists():
            continue
        r = load_record(p)
        if r["sanity"]["passed"]:
            y = broaden_to_grid(np.asarray(r["energies_eV"]), np.asarray(r["intensity"]), fwhm,
                                source=str(p))
            r["grid_spectrum"] = [float(f"{x:.6g}") for x in y]
        r["settings"]["fwhm"] = fwhm
        r["settings"]["broadening"] = f"Gaussian FWHM {fwhm} eV (grid_spectrum only)"
        r["grid"] = {"start_eV": float(GRID[0]), "step_eV": round(float(GRID[1] - GRID[0]), 10),
                     "n": int(GRID.size)}
        write_json_atomic(p, r)
        n += 1
    return n


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["structures", "run", "list", "summary", "regrid", "compare-pw"])
    ap.add_argument("--only", default="", help="comma-separated structure ids (default: all, in order)")
    ap.add_argument("--max-sites", type=int, default=0, help="stop after N new sites (0 = no limit)")
    ap.add_argument("--sites", default="", help="run only these, e.g. keatite:12,seifertite:4 "
                                                "(structure id:site index; order kept)")
    ap.add_argument("--retry-failed", action="store_true")
    ap.add_argument("--mpi-procs", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="scratch folder for GPAW files (default: /tmp)")
    ap.add_argument("--fwhm", type=float, default=GPAWSettings().fwhm,
                    help="regrid: Gaussian FWHM (eV) for grid_spectrum")
    ap.add_argument("--mode", choices=["lcao", "pw"], default="lcao",
                    help="pw: plane-wave check (ecut --ecut, complex wave functions, automatic band "
                         "count); records go to data/reference/gpaw_pw unless --out-subdir is given")
    ap.add_argument("--ecut", type=float, default=400.0, help="pw cutoff (eV)")
    ap.add_argument("--out-subdir", default="", help="records folder under data/reference")
    args = ap.parse_args(argv)
    global GPAW_DIR
    GPAW_DIR = REF / (args.out_subdir or ("gpaw" if args.mode == "lcao" else "gpaw_pw"))

    ids = [x for x in args.only.split(",") if x] or list(STRUCTURES)
    unknown = [x for x in ids if x not in STRUCTURES]
    if unknown:
        ap.error(f"unknown structure id(s) {unknown}; known: {list(STRUCTURES)}")
    if args.mode == "pw":
        settings = GPAWSettings(mode="pw", ecut=args.ecut, nbands="auto", converge_bands="auto",
                                force_complex_dtype=True, mpi_procs=args.mpi_procs)
    else:
        settings = GPAWSettings(mpi_procs=args.mpi_procs)

    plan = []
    for sid in ids:
        s = load_or_build(sid)
        for k, mult in site_plan(sid, s):
            plan.append((sid, s, k, mult))
    if args.sites:
        want = [(x.split(":")[0], int(x.split(":")[1])) for x in args.sites.split(",") if x]
        by_key = {(sid, k): (sid, s, k, mult) for sid, s, k, mult in plan}
        missing = [w for w in want if w not in by_key]
        if missing:
            ap.error(f"--sites: not in the plan: {missing}")
        plan = [by_key[w] for w in want]
    if args.step == "structures":
        for sid in ids:
            print(sid, (STRUCT_DIR / f"{sid}.cif").relative_to(ROOT))
        print(f"{len(plan)} O sites planned")
        return 0
    if args.step == "list":
        done = 0
        for sid, s, k, mult in plan:
            p = record_path(GPAW_DIR, sid, k)
            state = "done" if p.exists() else ("FAILED" if p.with_suffix(".failed.json").exists() else "todo")
            done += state == "done"
            print(f"{sid:24s} site {k:3d} x{mult:<3d} {s.composition.reduced_formula:8s} {state}")
        print(f"{done}/{len(plan)} sites done")
        return 0

    if args.step == "summary":
        print(summary_table(plan))
        return 0
    if args.step == "compare-pw":
        print(compare_pw(plan))
        return 0
    if args.step == "regrid":
        n = regrid(plan, args.fwhm)
        print(f"re-broadened {n} records (Gaussian FWHM {args.fwhm} eV)")
        return 0

    from tqdm import tqdm

    todo = []
    for sid, s, k, mult in plan:
        p = record_path(GPAW_DIR, sid, k)
        failed = p.with_suffix(".failed.json")
        if p.exists() or (failed.exists() and not args.retry_failed):
            continue
        todo.append((sid, s, k, mult))
    if args.max_sites:
        todo = todo[: args.max_sites]
    print(f"{len(plan)} sites planned, {len(todo)} to run", flush=True)
    for sid, s, k, mult in tqdm(todo, desc="GPAW sites", file=sys.stdout):
        p = record_path(GPAW_DIR, sid, k)
        t0 = time.time()
        try:
            rec = run_site(s, sid, k, settings, workdir=args.workdir,
                           extra={"multiplicity": mult, "formula": s.composition.reduced_formula,
                                  "structure_file": f"structures/{sid}.cif"})
        except Exception as exc:  # record and go on with the next site
            write_json_atomic(p.with_suffix(".failed.json"), {
                "structure_id": sid, "site_index": k, "error": str(exc)[-4000:],
                "traceback": traceback.format_exc()[-4000:], "wall_time_s": time.time() - t0})
            print(f"FAILED {sid} site {k}: {str(exc)[:300]}", flush=True)
            continue
        write_json_atomic(p, rec)
        if p.with_suffix(".failed.json").exists():
            p.with_suffix(".failed.json").unlink()
        print(f"{sid} site {k}: {rec['settings']['supercell_atoms']} atoms, "
              f"wall {rec['wall_time_s']['total']:.0f} s, sanity {rec['sanity']['message']}, "
              f"gap {rec['sanity']['gap_eV']:.2f} eV, max E {rec['max_energy_eV']:.1f} eV", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
