"""Physical sanity filter for Si-O crystals (bond lengths in Å, energies in eV/atom).

:func:`bond_analysis` counts neighbours with fixed cutoffs; :func:`check_structure`
returns the list of reasons a crystal is unphysical (empty = it passes);
:func:`hull_distances` gives each crystal's energy above the lower convex hull of
energy per atom vs O fraction, built from what we have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Structure

#: Bonding cutoffs (Å): a pair closer than this counts as a bond.
SI_O_CUT = 2.05  # Si-O bonds are 1.55-1.80 (VI-Si up to ~1.85); 2.05 leaves room
SI_SI_CUT = 2.62  # Si-Si bonds 2.2-2.6; edge-sharing SiO6 (stishovite, Si-Si 2.67 Å) stays unbonded
O_O_CUT = 1.70  # peroxide O-O ~1.45-1.50

#: Acceptance windows.
SI_O_RANGE = (1.55, 1.80)
SI_O_RANGE_HIGH_CN = (1.60, 1.95)  # 5-9-coordinated Si (high-pressure phases)
SI_SI_RANGE = (2.20, 2.60)  # CHGNet (PBE-trained) puts Si-Si bonds at 2.30-2.55 Å
O_O_NONBONDED_MIN = 2.20
PEROXIDE_RANGE = (1.35, 1.60)


@dataclass
class BondAnalysis:
    """Coordination and bond lengths of one crystal (Å)."""

    si_cn_o: np.ndarray  # per Si: number of O within SI_O_CUT
    si_cn_si: np.ndarray  # per Si: number of Si within SI_SI_CUT
    o_cn_si: np.ndarray  # per O: number of Si within SI_O_CUT
    o_cn_o: np.ndarray  # per O: number of O within O_O_CUT
    si_o: np.ndarray  # all Si-O bond lengths
    si_si: np.ndarray  # all Si-Si bond lengths
    o_o: np.ndarray  # all O-O distances < O_O_NONBONDED_MIN
    min_dist: float  # shortest interatomic distance of any kind
    extra: dict = field(default_factory=dict)

    @property
    def n_si_si_bonds(self) -> int:
        return int(len(self.si_si) // 2)

    @property
    def n_peroxide(self) -> int:
        return int(np.sum(self.o_o < O_O_CUT) // 2)


def bond_analysis(structure: Structure) -> BondAnalysis:
    """Neighbour counts and bond lengths with the module's cutoffs."""
    sym = np.array([sp.symbol for sp in structure.species])
    if not set(sym) <= {"Si", "O"}:
        raise ValueError(f"bond_analysis: expected only Si and O, got {sorted(set(sym))}")
    cut = max(SI_SI_CUT, O_O_NONBONDED_MIN, SI_O_CUT)
    ci, ni, _, d = structure.get_neighbor_list(cut)
    n = len(structure)
    is_si = sym == "Si"
    a_si, b_si = is_si[ci], is_si[ni]
    sio = (a_si != b_si) & (d < SI_O_CUT)
    sisi = a_si & b_si & (d < SI_SI_CUT)
    oo = ~a_si & ~b_si & (d < O_O_NONBONDED_MIN)
    oo_bond = ~a_si & ~b_si & (d < O_O_CUT)
    cn_o = np.bincount(ci[sio], minlength=n)
    cn_si = np.bincount(ci[sisi], minlength=n)
    cn_oo = np.bincount(ci[oo_bond], minlength=n)
    min_dist = float(d.min()) if len(d) else np.inf
    return BondAnalysis(
        si_cn_o=cn_o[is_si],
        si_cn_si=cn_si[is_si],
        o_cn_si=cn_o[~is_si],
        o_cn_o=cn_oo[~is_si],
        si_o=d[sio & a_si],
        si_si=d[sisi],
        o_o=d[oo],
        min_dist=min_dist,
    )


def check_structure(structure: Structure, allow_peroxide: bool = False) -> list[str]:
    """Reasons why a crystal is unphysical; an empty list means it passes.

    Rules: every Si bonded to 4 O/Si neighbours in total (tetrahedral; Si-Si bonds allowed in
    suboxides) or 5-6 O at high density; Si-O bond lengths 1.55-1.80 Å (1.60-1.95 Å for 5-6-fold
    Si); Si-Si bonds 2.2-2.6 Å; every O bonded to 1-3 Si; no O-O closer than 2.2 Å unless
    ``allow_peroxide`` and it is a single O-O bond of 1.35-1.60 Å (peroxide bridge) whose O
    atoms are each bonded to one Si.
    """
    b = bond_analysis(structure)
    why: list[str] = []
    if b.min_dist < 1.3:
        why.append(f"atoms overlap (shortest distance {b.min_dist:.2f} Å)")
    total = b.si_cn_o + b.si_cn_si
    tetra = total == 4
    octa = (b.si_cn_si == 0) & ((b.si_cn_o == 5) | (b.si_cn_o == 6))
    bad_si = ~(tetra | octa)
    if bad_si.any():
        cns = sorted({(int(o), int(s)) for o, s in zip(b.si_cn_o[bad_si], b.si_cn_si[bad_si])})
        why.append(f"{int(bad_si.sum())} Si with coordination (O, Si) in {cns}, expected 4 or 6")
    if len(b.si_o):
        lo, hi = SI_O_RANGE_HIGH_CN if octa.any() and not tetra.any() else SI_O_RANGE
        if b.si_o.min() < lo or b.si_o.max() > hi:
            why.append(f"Si-O bond lengths {b.si_o.min():.3f}-{b.si_o.max():.3f} Å outside {lo}-{hi}")
    else:
        why.append("no Si-O bonds")
    if len(b.si_si) and (b.si_si.min() < SI_SI_RANGE[0] or b.si_si.max() > SI_SI_RANGE[1]):
        why.append(f"Si-Si bonds {b.si_si.min():.3f}-{b.si_si.max():.3f} Å outside {SI_SI_RANGE}")
    bad_o = (b.o_cn_si < 1) | (b.o_cn_si > 3)
    if bad_o.any():
        why.append(f"{int(bad_o.sum())} O bonded to {sorted(set(b.o_cn_si[bad_o].tolist()))} Si")
    if len(b.o_o):
        peroxide_ok = (
            allow_peroxide
            and np.all((b.o_o >= PEROXIDE_RANGE[0]) & (b.o_o <= PEROXIDE_RANGE[1]))
            and np.all(b.o_cn_o <= 1)
            and np.all(b.o_cn_si[b.o_cn_o == 1] == 1)
        )
        if not peroxide_ok:
            why.append(f"O-O contact {b.o_o.min():.3f} Å < {O_O_NONBONDED_MIN} Å")
    return why


def hull_distances(x_o: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Energy above the lower convex hull (eV/atom) of energy per atom vs O fraction.

    x_o: O atomic fraction O/(Si+O) of each crystal, energy: eV/atom (same relaxer).
    The end points of the hull are the lowest-energy crystals at the smallest and largest
    fraction present, so a crystal is compared with what we have, not with Si or O2.
    """
    x_o = np.asarray(x_o, float)
    energy = np.asarray(energy, float)
    if x_o.shape != energy.shape or x_o.ndim != 1:
        raise ValueError("hull_distances: x_o and energy must be 1-D arrays of equal length")
    # lowest energy at each distinct composition, then the lower hull (monotone chain)
    xr = np.round(x_o, 6)
    xs = np.unique(xr)
    es = np.array([energy[xr == xv].min() for xv in xs])
    hull: list[tuple[float, float]] = []
    for p in zip(xs, es):
        while len(hull) >= 2:
            (x1, e1), (x2, e2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - e1) - (e2 - e1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    hx, he = np.array(hull).T
    return energy - np.interp(xr, hx, he)


#: Enantiomorphic space-group pairs (mirror images give the same spectra): mapped to one.
ENANTIOMORPHS = {78: 76, 95: 91, 96: 92, 145: 144, 153: 151, 154: 152, 170: 169, 172: 171, 179: 178, 181: 180, 213: 212}


def deduplicate(
    records: list, matcher=None, existing: list | None = None, same_spacegroup: bool = True
) -> tuple[list, dict[str, str]]:
    """Drop records whose structure matches an earlier one (pymatgen StructureMatcher).

    Two crystals are duplicates if they have the same formula and space group (enantiomorphs
    count as one) and
    StructureMatcher (tight tolerances, volume-scaled) maps one onto the other, so that
    displacive variants such as alpha/beta quartz or stishovite/CaCl2-type stay distinct.
    ``records`` are kept in the given order of priority; ``existing`` (already accepted
    records) are matched against but not returned.  ``same_spacegroup=False`` drops the
    space-group condition (for relaxed cells whose symmetry may be broken by a hair).
    Returns (kept, {dropped id: kept id}).
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    sm = matcher or StructureMatcher(ltol=0.1, stol=0.15, angle_tol=3, primitive_cell=True, scale=True)
    kept: list = []
    dropped: dict[str, str] = {}
    pool = list(existing or [])
    for rec in records:
        dup = None
        for other in pool:
            if (
                other.formula == rec.formula
                and (not same_spacegroup or _sg(other) == _sg(rec))
                and sm.fit(rec.structure, other.structure)
            ):
                dup = other
                break
        if dup is None:
            kept.append(rec)
            pool.append(rec)
        else:
            dropped[rec.id] = dup.id
    return kept, dropped


def _sg(rec) -> int:
    return ENANTIOMORPHS.get(rec.spacegroup_number, rec.spacegroup_number)


def composition_distances(x: np.ndarray, energy: np.ndarray, decimals: int = 4) -> np.ndarray:
    """Energy above the lowest energy of the same composition (eV/atom).

    x: O/Si of each crystal (compared after rounding to ``decimals``), energy: eV/atom.
    Intermediate suboxides always lie above the tie line between their neighbours (they are
    metastable against phase separation), so the generated set is screened per composition.
    """
    x = np.round(np.asarray(x, float), decimals)
    energy = np.asarray(energy, float)
    if x.shape != energy.shape or x.ndim != 1:
        raise ValueError("composition_distances: x and energy must be 1-D arrays of equal length")
    best = {xv: energy[x == xv].min() for xv in np.unique(x)}
    return energy - np.array([best[xv] for xv in x])
