"""Which bonds CHGNet breaks in a network-family cell, and whether the relaxation path matters.

    python benchmarks/network_broken_bonds.py data/amorphous/network/n72_v2/dropped/SiO0.50_net72_c1.json
    python benchmarks/network_broken_bonds.py CELL.json --variant pos_first  # positions at the Keating cell first
    python benchmarks/network_broken_bonds.py CELL.json --variant parent     # CHGNet on the a-Si parent alone

Rebuilds the cell's Keating start from its recorded seeds (parent seed, insertion seed, protocol;
bit for bit: the Keating energy is printed beside the recorded one), relaxes it with CHGNet
(``base``: the protocol's FIRE on cell + positions) and lists the bonds of the inserted network
longer than the glass checks' cutoffs after relaxation (:func:`s2s.amorphous.network.broken_bonds`),
with their length in the Keating start and the step at which they first pass the cutoff.
One torch thread; ~0.5-2 min CPU per cell.  Nothing is written.  docs/amorphous.md (third session).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.amorphous import network as nw  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cell", type=Path, help="a network cell file (cells/ or dropped/ of a store)")
    ap.add_argument("--variant", choices=("base", "pos_first", "parent"), default="base")
    args = ap.parse_args(argv)

    import torch
    from ase import Atoms
    from chgnet.model import CHGNet, StructOptimizer
    from pymatgen.core import Structure

    torch.set_num_threads(1)
    props = Structure.from_dict(json.loads(args.cell.read_text())).properties
    known = {f.name for f in __import__("dataclasses").fields(nw.NetworkProtocol)}
    stored = {k: v for k, v in props["protocol"].items() if k in known}
    p = nw.NetworkProtocol(**{"insert_tries": 1, **stored})
    parent, info = nw.asi_parent(props["counts"][0], props["parent"]["seed"], p)
    iseed = props.get("insertion", {}).get("seed", props["seed"] + 1)
    ins, ii = nw.insert_oxygen(
        parent,
        props["x"],
        iseed,
        rule=props.get("rule", "uniform"),
        cutoff=p.si_cutoff,
        si_o=p.si_o,
        expand=p.expand_fraction,
        directions=p.o_directions,
        bridges=info.get("bridges", ()),
    )
    start, kinfo = nw.keating_relax(ins, ii["topology"], relax_cell=p.keating_cell)
    recorded = props.get("keating", {}).get("energy_eV")
    print(f"{args.cell.name}: Keating energy {kinfo['energy_eV']} eV (recorded {recorded})")
    model = CHGNet.load(verbose=False)

    def run(atoms, relax_cell):
        res = StructOptimizer(model=model, optimizer_class="FIRE", use_device="cpu").relax(
            atoms.copy(), fmax=p.fmax, steps=p.relax_steps, relax_cell=relax_cell, verbose=False, assign_magmoms=False
        )
        tr = res["trajectory"]
        return Atoms(atoms.get_chemical_symbols(), tr.atom_positions[-1], cell=tr.cells[-1], pbc=True), tr

    c0 = time.process_time()
    if args.variant == "parent":
        out, tr = run(parent, True)
        cn = nw.si_coordination(out, 2.7)
        print(f"parent after CHGNet: {int(np.sum(cn != 4))} Si with CN != 4 (2.7 A), {len(tr.energies)} steps")
        return 0
    trs = []
    if args.variant == "pos_first":
        start, tr = run(start, False)
        trs.append(tr)
    out, tr = run(start, True)
    trs.append(tr)
    chk = nw.cell_checks(out, p.min_pair)
    e = float(trs[-1].energies[-1]) / len(out)
    steps = sum(len(t.energies) for t in trs)
    cpu = time.process_time() - c0
    print(f"{args.variant}: {chk['reason'] or 'passes'}; {steps} steps, {e:.4f} eV/atom, {cpu:.0f} s CPU")
    frames = [(pos, cell) for t in trs for pos, cell in zip(t.atom_positions, t.cells)]
    k_len = {(a, b): d for a, b, d in nw.broken_bonds(start, ii["topology"], {("Si", "Si"): 0.0, ("Si", "O"): 0.0})}
    sym = out.get_chemical_symbols()
    for a, b, d in nw.broken_bonds(out, ii["topology"]):
        first = next(
            k
            for k, (pos, cell) in enumerate(frames)
            if Atoms(sym, pos, cell=cell, pbc=True).get_distance(a, b, mic=True) > 2.7
        )
        print(
            f"  broken {sym[a]}{a}-{sym[b]}{b}: {k_len[(a, b)]:.2f} A in the Keating start, {d:.2f} A after, ", end=""
        )
        print(f"past 2.7 A at step {first}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
