"""Does a Tersoff pre-relaxation (LAMMPS) make the CHGNet relaxation of generated crystals cheaper?

For N random symmetric SiO2 seed cells (the ``random_sio2`` strategy of
``s2s.structures.generate``; seeds ``--seed + k``), each cell is relaxed two ways:

* ``chgnet``: CHGNet alone (the production relaxer: FIRE, cell free, fmax 0.05 eV/Å);
* ``tersoff+chgnet``: first a Tersoff minimisation in LAMMPS (positions and cell,
  ``s2s.amorphous.md.minimise``), then the same CHGNet relaxation.

Printed per cell and on average: CHGNet steps and seconds, Tersoff seconds, whether the
result passes the dataset's filter (``check_structure``), the final CHGNet energy, and
whether both routes end in the same crystal (pymatgen StructureMatcher).  ``--json FILE``
writes the table.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_prerelax.py [--n 8] [--seed 7000000]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="seed cells")
    ap.add_argument("--seed", type=int, default=7_000_000, help="numpy seed of cell k is seed + k")
    ap.add_argument("--steps", type=int, default=800, help="CHGNet step limit (production: 800)")
    ap.add_argument("--json", default=None, help="write the per-cell table here")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")

    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.ase import AseAtomsAdaptor

    from s2s.amorphous.md import minimise
    from s2s.structures.filters import check_structure
    from s2s.structures.generate import Relaxer, random_pyxtal_cell

    relaxer = Relaxer(steps=a.steps)
    matcher = StructureMatcher(ltol=0.1, stol=0.15, angle_tol=3, primitive_cell=True, scale=True)
    rows = []
    head = (
        f"{'cell':>4} {'formula':>8} {'atoms':>5} | {'chgnet steps':>12} {'s':>6} {'pass':>4} {'E eV/at':>8} | "
        f"{'tersoff s':>9} {'steps':>5} {'s':>6} {'pass':>4} {'E eV/at':>8} | same"
    )
    print(head)
    for k in range(a.n):
        seed = random_pyxtal_cell(np.random.default_rng(a.seed + k), sio2_only=True)
        s0 = seed.structure
        row: dict = {"k": k, "seed": a.seed + k, "formula": s0.composition.reduced_formula, "n_atoms": len(s0)}
        f1, r1 = relaxer.relax(s0)
        pre, _, info = minimise(AseAtomsAdaptor.get_atoms(s0))
        f2, r2 = relaxer.relax(AseAtomsAdaptor.get_structure(pre))
        why1 = check_structure(f1) + ([] if r1.converged else ["not converged"])
        why2 = check_structure(f2) + ([] if r2.converged else ["not converged"])
        p1, p2 = not why1, not why2
        row.update(
            chgnet_steps=r1.steps,
            chgnet_s=r1.seconds,
            chgnet_pass=p1,
            chgnet_e=r1.energy_per_atom,
            tersoff_s=info["seconds"],
            pre_steps=r2.steps,
            pre_s=r2.seconds,
            pre_pass=p2,
            pre_e=r2.energy_per_atom,
            same=bool(matcher.fit(f1, f2)),
            chgnet_why="; ".join(why1),
            pre_why="; ".join(why2),
        )
        rows.append(row)
        print(
            f"{k:>4} {row['formula']:>8} {len(s0):>5} | {r1.steps:>12} {r1.seconds:>6.1f} {p1!s:>4} "
            f"{r1.energy_per_atom:>8.3f} | {info['seconds']:>9.2f} {r2.steps:>5} {r2.seconds:>6.1f} {p2!s:>4} "
            f"{r2.energy_per_atom:>8.3f} | {row['same']}",
            flush=True,
        )
        for name, why in (("chgnet", why1), ("tersoff+chgnet", why2)):
            if why:
                print(f"       {name} rejected: {'; '.join(why)[:150]}")

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    t1 = mean("chgnet_s")
    t2 = mean("tersoff_s") + mean("pre_s")
    print(
        f"\n{len(rows)} cells: CHGNet alone {mean('chgnet_steps'):.0f} steps, {t1:.1f} s, "
        f"{sum(r['chgnet_pass'] for r in rows)} pass the filter;"
    )
    print(
        f"Tersoff first: {mean('tersoff_s'):.2f} s + CHGNet {mean('pre_steps'):.0f} steps, {mean('pre_s'):.1f} s "
        f"= {t2:.1f} s ({t2 / t1:.2f}x), {sum(r['pre_pass'] for r in rows)} pass; same crystal in "
        f"{sum(r['same'] for r in rows)}/{len(rows)}; mean energy difference (pre - alone) "
        f"{mean('pre_e') - mean('chgnet_e'):+.4f} eV/atom"
    )
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "rows": rows, "time": time.strftime("%Y-%m-%d %H:%M")}, fh, indent=1)


if __name__ == "__main__":
    main()
