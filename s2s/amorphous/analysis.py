"""Structural analysis of Si-O cells: bonds, coordination, angles, density, RDF.

All functions take an ``ase.Atoms`` or a ``pymatgen`` ``Structure`` (periodic),
distances are in Å, angles in degrees, density in g/cm^3.  A "bond" is a pair
closer than the pair's cutoff in :data:`DEFAULT_CUTOFFS` (or the ``cutoffs``
argument).  The defaults sit in the gaps of the partial radial distribution
functions of the Tersoff glasses (Si-O: 1.8-2.4 Å empty; Si-Si: minimum near
2.7 Å between the Si-Si bond at 2.35 Å and the Si-(O)-Si distance at ~3.05 Å)
and equal the paper's 2.0 Å neighbour radius for Si-O.  O-O "bonds" (1.6 Å) are
counted only to flag peroxy or O2 defects.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import comb

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

#: Bond cutoffs in Å per unordered species pair.
DEFAULT_CUTOFFS: dict[tuple[str, str], float] = {
    ("Si", "O"): 2.0,
    ("Si", "Si"): 2.7,
    ("O", "O"): 1.6,
}

_AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660


def as_atoms(cell) -> Atoms:
    """ase.Atoms from an ase.Atoms or a pymatgen Structure."""
    if isinstance(cell, Atoms):
        return cell
    try:
        from pymatgen.core import Structure  # noqa: PLC0415
        from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        Structure = None  # type: ignore[assignment]
    if Structure is not None and isinstance(cell, Structure):
        return AseAtomsAdaptor.get_atoms(cell)
    raise TypeError(f"expected ase.Atoms or pymatgen Structure, got {type(cell).__name__}")


def _cutoff(cutoffs: Mapping[tuple[str, str], float], a: str, b: str) -> float:
    return float(cutoffs.get((a, b), cutoffs.get((b, a), 0.0)))


def bonds(cell, cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS):
    """Directed bond list (each bond twice, i->j and j->i).

    Returns ``(i, j, d, D)``: atom indices, lengths (Å) and vectors j - i (Å,
    minimum image through the neighbour list).
    """
    atoms = as_atoms(cell)
    symbols = np.array(atoms.get_chemical_symbols())
    species = sorted(set(symbols))
    rmax = max((_cutoff(cutoffs, a, b) for a in species for b in species), default=0.0)
    if rmax <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0), np.zeros((0, 3))
    i, j, d, D = neighbor_list("ijdD", atoms, rmax)
    lookup = {(a, b): _cutoff(cutoffs, a, b) for a in species for b in species}
    rc = np.array([lookup[(a, b)] for a, b in zip(symbols[i], symbols[j])]) if len(i) else np.zeros(0)
    keep = d < rc
    return i[keep], j[keep], d[keep], D[keep]


def coordination(cell, cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS) -> dict[str, np.ndarray]:
    """Per-atom number of bonded neighbours, by neighbour species.

    Returns ``{"Si": (N,) int, "O": (N,) int, "total": (N,) int}``.
    """
    atoms = as_atoms(cell)
    symbols = np.array(atoms.get_chemical_symbols())
    i, j, _, _ = bonds(atoms, cutoffs)
    n = len(atoms)
    out = {sp: np.bincount(i[symbols[j] == sp], minlength=n) for sp in ("Si", "O")}
    out["total"] = np.bincount(i, minlength=n)
    return out


def coordination_histogram(
    cell, center: str = "Si", neighbour: str = "total", cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS
) -> dict[int, float]:
    """Fraction of ``center`` atoms with each coordination number (neighbour species or "total")."""
    atoms = as_atoms(cell)
    mask = np.array(atoms.get_chemical_symbols()) == center
    if not mask.any():
        raise ValueError(f"coordination_histogram: no {center} atoms in the cell")
    cn = coordination(atoms, cutoffs)[neighbour][mask]
    values, counts = np.unique(cn, return_counts=True)
    return {int(v): float(c) / mask.sum() for v, c in zip(values, counts)}


def bond_lengths(
    cell, pair: tuple[str, str] = ("Si", "O"), cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS
) -> np.ndarray:
    """Lengths (Å) of all bonds between species ``pair``, each bond once."""
    atoms = as_atoms(cell)
    symbols = np.array(atoms.get_chemical_symbols())
    i, j, d, _ = bonds(atoms, cutoffs)
    a, b = pair
    if a == b:
        m = (symbols[i] == a) & (symbols[j] == b) & (i < j)
    else:
        m = (symbols[i] == a) & (symbols[j] == b)
    return d[m]


def bond_angles(
    cell, triple: tuple[str, str, str] = ("Si", "O", "Si"), cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS
) -> np.ndarray:
    """Angles (degrees) A-B-C at every B with bonded neighbours A and C.

    ``triple=("Si", "O", "Si")`` gives the Si-O-Si angles, ``("O", "Si", "O")``
    the O-Si-O angles; each unordered neighbour pair is counted once.
    """
    atoms = as_atoms(cell)
    symbols = np.array(atoms.get_chemical_symbols())
    a, b, c = triple
    i, j, _, D = bonds(atoms, cutoffs)
    order = np.argsort(i, kind="stable")
    i, j, D = i[order], j[order], D[order]
    starts = np.searchsorted(i, np.arange(len(atoms) + 1))
    out: list[np.ndarray] = []
    for center in np.flatnonzero(symbols == b):
        s, e = starts[center], starts[center + 1]
        if e - s < 2:
            continue
        vec, sp = D[s:e], symbols[j[s:e]]
        unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        p, q = np.triu_indices(e - s, k=1)
        match = ((sp[p] == a) & (sp[q] == c)) | ((sp[p] == c) & (sp[q] == a))
        if not match.any():
            continue
        cosang = np.clip(np.einsum("ij,ij->i", unit[p[match]], unit[q[match]]), -1.0, 1.0)
        out.append(np.degrees(np.arccos(cosang)))
    return np.concatenate(out) if out else np.zeros(0)


def density(cell) -> float:
    """Mass density in g/cm^3."""
    atoms = as_atoms(cell)
    return float(atoms.get_masses().sum() * _AMU_PER_A3_TO_G_PER_CM3 / atoms.get_volume())


def composition_x(cell) -> float:
    """x of SiO_x (n_O / n_Si)."""
    symbols = as_atoms(cell).get_chemical_symbols()
    n_si = symbols.count("Si")
    if n_si == 0:
        raise ValueError("composition_x: no Si in the cell")
    return symbols.count("O") / n_si


def si_si_bond_fraction(cell, cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS) -> float:
    """Fraction of the bonds of Si atoms that go to Si (Si-Si / (Si-Si + Si-O), per Si bond end)."""
    atoms = as_atoms(cell)
    symbols = np.array(atoms.get_chemical_symbols())
    i, j, _, _ = bonds(atoms, cutoffs)
    si = symbols[i] == "Si"
    n_sisi = np.count_nonzero(si & (symbols[j] == "Si"))
    n_sio = np.count_nonzero(si & (symbols[j] == "O"))
    total = n_sisi + n_sio
    return float(n_sisi / total) if total else float("nan")


def si_oxidation_distribution(cell, cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS) -> np.ndarray:
    """Fraction of Si atoms with n = 0..4 O neighbours (the Si^{n+} "oxidation states"); n > 4 is folded into 4."""
    atoms = as_atoms(cell)
    mask = np.array(atoms.get_chemical_symbols()) == "Si"
    if not mask.any():
        raise ValueError("si_oxidation_distribution: no Si in the cell")
    n_o = np.minimum(coordination(atoms, cutoffs)["O"][mask], 4)
    return np.bincount(n_o, minlength=5) / mask.sum()


def random_bonding_model(x: float) -> np.ndarray:
    """Si^{n+} fractions n = 0..4 of the random-bonding model of SiO_x (Philipp 1971).

    Each of the four bonds of a Si goes to O with probability x/2, so the
    Si-Si bond fraction is 1 - x/2.
    """
    if not 0 <= x <= 2:
        raise ValueError(f"random_bonding_model: x must be in [0, 2], got {x}")
    p = x / 2.0
    return np.array([comb(4, n) * p**n * (1 - p) ** (4 - n) for n in range(5)])


def partial_rdf(cell, pair: tuple[str, str], rmax: float = 6.0, dr: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Partial radial distribution function g_ab(r).

    Returns ``(r, g)`` with bin centres r in Å; normalised so g -> 1 for an
    ideal gas at the cell's number densities.
    """
    atoms = as_atoms(cell)
    symbols = np.array(atoms.get_chemical_symbols())
    a, b = pair
    na, nb = np.count_nonzero(symbols == a), np.count_nonzero(symbols == b)
    if na == 0 or nb == 0:
        raise ValueError(f"partial_rdf: no {a} or no {b} atoms in the cell")
    i, j, d = neighbor_list("ijd", atoms, rmax)
    m = (symbols[i] == a) & (symbols[j] == b)
    edges = np.arange(0.0, rmax + dr / 2, dr)
    hist, edges = np.histogram(d[m], bins=edges)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    rho_b = nb / atoms.get_volume()
    return 0.5 * (edges[1:] + edges[:-1]), hist / (na * rho_b * shell)


def summary(cell, cutoffs: Mapping[tuple[str, str], float] = DEFAULT_CUTOFFS) -> dict[str, float]:
    """Scalar structural numbers of one cell (for manifests and tables)."""
    atoms = as_atoms(cell)
    symbols = np.array(atoms.get_chemical_symbols())
    cn = coordination(atoms, cutoffs)
    is_si, is_o = symbols == "Si", symbols == "O"
    sio = bond_lengths(atoms, ("Si", "O"), cutoffs)
    sisi = bond_lengths(atoms, ("Si", "Si"), cutoffs)
    siosi = bond_angles(atoms, ("Si", "O", "Si"), cutoffs)
    osio = bond_angles(atoms, ("O", "Si", "O"), cutoffs)
    out = {
        "n_atoms": int(len(atoms)),
        "n_si": int(is_si.sum()),
        "n_o": int(is_o.sum()),
        "x": float(is_o.sum() / max(is_si.sum(), 1)),
        "density_g_cm3": density(atoms),
        "si_o_mean_A": float(sio.mean()) if sio.size else float("nan"),
        "si_si_bond_mean_A": float(sisi.mean()) if sisi.size else float("nan"),
        "si_cn_mean": float(cn["total"][is_si].mean()) if is_si.any() else float("nan"),
        "si_cn4_fraction": float(np.mean(cn["total"][is_si] == 4)) if is_si.any() else float("nan"),
        "o_cn_mean": float(cn["total"][is_o].mean()) if is_o.any() else float("nan"),
        "o_cn2_fraction": float(np.mean(cn["Si"][is_o] == 2)) if is_o.any() else float("nan"),
        "si_o_si_mean_deg": float(siosi.mean()) if siosi.size else float("nan"),
        "o_si_o_mean_deg": float(osio.mean()) if osio.size else float("nan"),
        "si_si_bond_fraction": si_si_bond_fraction(atoms, cutoffs),
        "n_o_o_bonds": int(bond_lengths(atoms, ("O", "O"), cutoffs).size),
    }
    return out
