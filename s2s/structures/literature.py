"""SiO2 polymorphs entered by hand from published crystallographic data, and
high-pressure AX2 prototypes decorated with Si/O.

Each entry gives the space group (standard or the published setting), the cell (Å, °)
and the asymmetric unit; :func:`literature_records` expands them with pymatgen.

The decorated prototypes (CaCl2, pyrite, cotunnite, fluorite, SiS2 types) are not
measured SiO2 phases at ambient conditions: their fractional coordinates come from the
prototype compound (cited) and their cell is scaled isotropically so that the bond-valence
sum of Si is 4 (Brown & Altermatt 1985, R0(Si-O) = 1.624 Å, b = 0.37 Å), i.e. to the
density at which that coordination is natural.  Their notes say so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Lattice, Structure

from s2s.structures.records import StructureRecord

#: Bond-valence parameters of Si(4+)-O(2-) (Brown & Altermatt, Acta Cryst. B41, 244 (1985)).
BV_R0, BV_B = 1.624, 0.37


@dataclass(frozen=True)
class Entry:
    """One published structure: space group, cell and asymmetric unit."""

    key: str
    name: str
    spacegroup: str
    cell: tuple[float, float, float, float, float, float]  # a, b, c (Å), alpha, beta, gamma (°)
    species: tuple[str, ...]
    coords: tuple[tuple[float, float, float], ...]
    citation: str
    bv_scale: bool = False  # scale the cell so that the Si bond-valence sum is 4
    notes: dict = field(default_factory=dict)

    def structure(self, merge: bool = True) -> Structure:
        """The expanded cell; ``merge`` drops sites closer than 0.05 Å (and reorders the sites).

        ``merge=False`` keeps pymatgen's ``from_spacegroup`` site order (the GPAW reference set's
        stishovite is built that way, see :mod:`s2s.simulate.reference`).
        """
        a, b, c, al, be, ga = self.cell
        lat = Lattice.from_parameters(a, b, c, al, be, ga)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = Structure.from_spacegroup(self.spacegroup, lat, list(self.species), list(self.coords))
        if not merge:
            return s
        s.merge_sites(tol=0.05, mode="delete")
        if self.bv_scale:
            s = scale_to_bond_valence(s)
        return s


def bond_valence_sum(structure: Structure, cutoff: float = 3.2) -> np.ndarray:
    """Bond-valence sum (valence units) of every Si, from Si-O contacts within cutoff Å."""
    si = [i for i, sp in enumerate(structure.species) if sp.symbol == "Si"]
    out = np.zeros(len(si))
    for k, i in enumerate(si):
        for nb in structure.get_neighbors(structure[i], cutoff):
            if nb.specie.symbol == "O":
                out[k] += np.exp((BV_R0 - nb.nn_distance) / BV_B)
    return out


def scale_to_bond_valence(structure: Structure, target: float = 4.0) -> Structure:
    """Isotropically rescale the cell so that the mean Si bond-valence sum equals target."""
    s = structure.copy()
    lo, hi = 0.5, 2.0
    v0 = s.volume
    for _ in range(60):  # bisection on the linear scale factor
        mid = 0.5 * (lo + hi)
        t = s.copy()
        t.scale_lattice(v0 * mid**3)
        if bond_valence_sum(t, cutoff=3.2 * mid).mean() > target:
            lo = mid
        else:
            hi = mid
    s.scale_lattice(v0 * (0.5 * (lo + hi)) ** 3)
    return s


ENTRIES: tuple[Entry, ...] = (
    Entry(
        "stishovite",
        "stishovite (rutile type)",
        "P4_2/mnm",
        (4.1773, 4.1773, 2.6655, 90, 90, 90),
        ("Si", "O"),
        ((0, 0, 0), (0.3062, 0.3062, 0)),
        "Ross, Shu, Hazen & Gasparik, Am. Mineral. 75, 739-747 (1990): a = 4.1773, c = 2.6655 Å, O 4f x = 0.3062",
    ),
    Entry(
        "coesite",
        "coesite",
        "C2/c",
        (7.1356, 12.3692, 7.1736, 90, 120.34, 90),
        ("Si", "Si", "O", "O", "O", "O", "O"),
        (
            (0.1403, 0.1084, 0.0720),
            (0.5063, 0.1584, 0.5394),
            (0.0, 0.0, 0.0),
            (0.5, 0.1159, 0.75),
            (0.2669, 0.1234, 0.9401),
            (0.3114, 0.1038, 0.3280),
            (0.0172, 0.2117, 0.4782),
        ),
        "Levien & Prewitt, Am. Mineral. 66, 324-333 (1981), coesite at 1 bar (C2/c, a = 7.1356, "
        "b = 12.3692, c = 7.1736 Å, beta = 120.34 deg); replaces the AFLOW library's coesite, "
        "which has an O 1.98 Å from Si",
    ),
    Entry(
        "moganite",
        "moganite",
        "I 1 2/a 1",
        (8.7371, 4.8692, 10.7217, 90, 90.193, 90),
        ("Si", "Si", "O", "O", "O"),
        (
            (0.25, 0.9726, 0.0),
            (0.0103, 0.2486, 0.1682),
            (0.9781, 0.0644, 0.2878),
            (0.1678, 0.1708, 0.1002),
            (0.8703, 0.2296, 0.0675),
        ),
        "Heaney & Post, Am. Mineral. 86, 1358-1366 (2001), moganite at 298 K (neutron), I2/a, AMCSD 0002737",
    ),
    Entry(
        "seifertite",
        "seifertite (alpha-PbO2 type)",
        "Pbcn",
        (4.097, 5.0462, 4.4946, 90, 90, 90),
        ("Si", "O"),
        ((0.0, 0.1535, 0.25), (0.2735, 0.3848, 0.4155)),
        "cell: El Goresy, Dera, Sharp, Prewitt, Chen, Dubrovinsky, Wopenka, Boctor & Hemley, "
        "Eur. J. Mineral. 20, 523-528 (2008) (Pbcn, a = 4.097, b = 5.0462, c = 4.4946 Å); "
        "positions: alpha-PbO2-type parameters (Si 4c, O 8d), see Dera et al., Am. Mineral. 87, "
        "1018-1023 (2002)",
        notes={"positions": "alpha-PbO2-type values at the measured seifertite cell"},
    ),
    # --- decorated high-pressure AX2 prototypes (cell scaled to Si bond-valence sum 4) ---
    Entry(
        "cacl2-type",
        "CaCl2-type SiO2",
        "Pnnm",
        (4.23, 4.10, 2.67, 90, 90, 90),
        ("Si", "O"),
        ((0, 0, 0), (0.322, 0.291, 0)),
        "CaCl2 type (Pnnm, Si 2a, O 4g), the post-stishovite phase: Kingma, Cohen, Hemley & Mao, "
        "Nature 374, 243 (1995); Andrault, Fiquet, Guyot & Hanfland, Science 282, 720 (1998). "
        "Coordinates: orthorhombically distorted stishovite; cell scaled to Si BVS = 4",
        bv_scale=True,
        notes={"decorated_prototype": "CaCl2"},
    ),
    Entry(
        "pyrite-type",
        "pyrite-type SiO2",
        "Pa-3",
        (4.0, 4.0, 4.0, 90, 90, 90),
        ("Si", "O"),
        ((0, 0, 0), (0.347, 0.347, 0.347)),
        "pyrite type (Pa-3, Si 4a, O 8c x ~ 0.347): Kuwayama, Hirose, Sata & Ohishi, Science 309, "
        "923 (2005); cell scaled to Si BVS = 4",
        bv_scale=True,
        notes={"decorated_prototype": "pyrite"},
    ),
    Entry(
        "cotunnite-type",
        "cotunnite-type SiO2",
        "Pnma",
        (7.6222, 4.5348, 9.0449, 90, 90, 90),
        ("Si", "O", "O"),
        ((0.2621, 0.25, 0.0953), (0.8600, 0.25, 0.0741), (0.4767, 0.25, 0.8331)),
        "cotunnite (PbCl2) type, Pnma; prototype coordinates of PbCl2 (Sass, Brackett & Brackett, "
        "J. Phys. Chem. 67, 2863 (1963)); predicted for SiO2 at ultra-high pressure (Oganov, "
        "Gillan & Price, Phys. Rev. B 71, 064104 (2005)); cell scaled to Si BVS = 4",
        bv_scale=True,
        notes={"decorated_prototype": "cotunnite"},
    ),
    Entry(
        "fluorite-type",
        "fluorite-type SiO2",
        "Fm-3m",
        (5.0, 5.0, 5.0, 90, 90, 90),
        ("Si", "O"),
        ((0, 0, 0), (0.25, 0.25, 0.25)),
        "fluorite (CaF2) type, Fm-3m (Si 4a, O 8c); hypothetical SiO2 phase (e.g. Park, Terakura "
        "& Matsui, Nature 336, 670 (1988)); cell scaled to Si BVS = 4",
        bv_scale=True,
        notes={"decorated_prototype": "fluorite"},
    ),
    Entry(
        "sis2-type",
        "SiS2-type SiO2 (edge-sharing chains)",
        "Ibam",
        (9.583, 5.614, 5.547, 90, 90, 90),
        ("Si", "O"),
        ((0, 0, 0.25), (0.1187, 0.2072, 0)),
        "SiS2 type (Ibam, Si 4a, S 8j; Zintl & Loosen, Z. Phys. Chem. A 174, 301 (1935); "
        "Peters & Krebs, Acta Cryst. B 38, 1270 (1982)); 'fibrous silica' SiO2-W (Weiss & Weiss, "
        "Z. Anorg. Allg. Chem. 276, 95 (1954)); cell scaled to Si BVS = 4",
        bv_scale=True,
        notes={"decorated_prototype": "SiS2"},
    ),
)


def literature_records() -> list[StructureRecord]:
    """One :class:`StructureRecord` per entry of :data:`ENTRIES` (unrelaxed)."""
    out = []
    for e in ENTRIES:
        notes = {"spacegroup_published": e.spacegroup, "cell_published": list(e.cell), **e.notes}
        if e.bv_scale:
            notes["cell_scaled_to_bond_valence_sum"] = 4.0
        out.append(
            StructureRecord(
                id=f"lit-{e.key}",
                source="literature",
                citation=e.citation,
                structure=e.structure(),
                name=e.name,
                notes=notes,
            )
        )
    return out


def literature_entry(key: str) -> Entry:
    """The entry of :data:`ENTRIES` with this key (e.g. ``"stishovite"``); KeyError names the known keys."""
    for e in ENTRIES:
        if e.key == key:
            return e
    raise KeyError(f"no literature entry {key!r}; known: {[e.key for e in ENTRIES]}")


def stishovite(merge: bool = True) -> Structure:
    """Stishovite (rutile type, P4_2/mnm, a = 4.1773, c = 2.6655 Å, O 4f x = 0.3062): 2 Si + 4 O.

    The one definition used by the dataset, the GPAW reference set and the simulator comparison.
    """
    return literature_entry("stishovite").structure(merge=merge)
