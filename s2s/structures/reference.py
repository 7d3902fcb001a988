"""Structures built for the GPAW reference set (data/reference/structures/, docs/reference.md).

Besides the literature and AFLOW crystals, the reference set holds two published polymorphs at the
coordinates of their original papers (more digits than :mod:`s2s.structures.literature`), the
Si-rich suboxides (diamond Si with O in some Si-Si bonds) and an O-rich peroxy-bridged quartz.
The built ones are relaxed once with CHGNet (:func:`relax_chgnet`); the reference build
(:mod:`s2s.simulate.reference`) then reads them back from their CIF.
"""

from __future__ import annotations

import itertools

import numpy as np
from pymatgen.core import Lattice, Structure

from s2s.structures.prototypes import aflow_structure


def coesite_levien_prewitt() -> Structure:
    """Levien & Prewitt, Am. Mineral. 66, 324 (1981), P = 1 atm (AMCSD 0000816): C2/c, 48 atoms."""
    return Structure.from_spacegroup(
        "C2/c",
        Lattice.monoclinic(7.1356, 12.3692, 7.1736, 120.34),
        ["Si", "Si", "O", "O", "O", "O", "O"],
        [
            [0.14033, 0.10833, 0.07227],
            [0.50682, 0.15799, 0.54077],
            [0, 0, 0],
            [0.5, 0.1163, 0.75],
            [0.266, 0.1234, 0.9401],
            [0.3114, 0.1038, 0.3282],
            [0.0172, 0.2117, 0.4782],
        ],
    )


def seifertite_dera() -> Structure:
    """Dera et al., Am. Mineral. 87, 1018 (2002) (AMCSD 0002871): alpha-PbO2 type, Pbcn (cell in Å)."""
    return Structure.from_spacegroup(
        "Pbcn", Lattice.orthorhombic(4.097, 5.0462, 4.4946), ["Si", "O"], [[0, 0.1522, 0.25], [0.7336, 0.6245, 0.9186]]
    )


def relax_chgnet(structure: Structure, relax_cell: bool = True, fmax: float = 0.05) -> Structure:
    """CHGNet relaxation (at most 1000 steps, forces below ``fmax`` eV/Å; one torch thread)."""
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
    si = Structure(
        Lattice.cubic(a),
        ["Si"] * 8,
        [
            [0, 0, 0],
            [0, 0.5, 0.5],
            [0.5, 0, 0.5],
            [0.5, 0.5, 0],
            [0.25, 0.25, 0.25],
            [0.25, 0.75, 0.75],
            [0.75, 0.25, 0.75],
            [0.75, 0.75, 0.25],
        ],
    )
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
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(0, 0.1, (len(s), 3)), coords_are_cartesian=True)


def peroxy_quartz() -> Structure:
    """O-rich SiO_(2+1/24): a 2x2x2 alpha-quartz cell (AFLOW) with one bridging O replaced by a
    peroxy bridge Si-O-O-Si (the 'peroxy linkage' defect of silica), relaxed with CHGNet at fixed
    cell.  The two peroxy O are the reference sites."""
    q = aflow_structure("A2B_hP9_152_c_a") * (2, 2, 2)
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


def peroxy_sites(s: Structure) -> list[tuple[int, int]]:
    """(site index, multiplicity 1) of the two O-O bonded O (O-O < 1.7 Å) of a peroxy cell."""
    out = []
    for i, site in enumerate(s):
        if site.specie.symbol == "O" and any(n.specie.symbol == "O" for n in s.get_neighbors(site, 1.7)):
            out.append((i, 1))
    if len(out) != 2:
        raise RuntimeError(f"peroxy cell: expected 2 O-O bonded O, found {len(out)}")
    return out
