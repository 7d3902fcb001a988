"""Corner-sharing SiO2 frameworks from 4-connected nets.

A 4-connected net (every atom bonded to exactly four others: diamond, lonsdaleite, ST12,
BC8, clathrates, diamond stacking polytypes, ...) becomes an SiO2 framework by putting Si on
the nodes and an O at the midpoint of every edge; the cell is scaled so that the mean Si-O
bond is 1.61 Å.  The bridges are straight (Si-O-Si = 180°), like the idealised
high-temperature forms (beta-cristobalite from diamond, beta-tridymite from lonsdaleite).
"""

from __future__ import annotations

import itertools
import re

import numpy as np
from pymatgen.core import Lattice, Structure

from s2s.structures.records import StructureRecord

SI_O_TARGET = 1.61  # Å


def net_edges(structure: Structure, tol: float = 1.15) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Edges of the net if every atom has exactly 4 neighbours within tol x the shortest distance.

    Returns (i, j, image) arrays for each undirected edge (i < j or same atom through an image),
    or None if the structure is not a 4-connected net.
    """
    ci, ni, img, d = structure.get_neighbor_list(6.0)
    if len(d) == 0:
        return None
    dmin = d.min()
    keep = d < tol * dmin
    counts = np.bincount(ci[keep], minlength=len(structure))
    if not np.all(counts == 4):
        return None
    # the next-nearest neighbours must be clearly further away (a real gap)
    far = d[~keep]
    if len(far) and far.min() < 1.25 * d[keep].max():
        return None
    ci, ni, img = ci[keep], ni[keep], img[keep]
    # keep each undirected edge once
    sel = (ci < ni) | ((ci == ni) & _positive_image(img))
    return ci[sel], ni[sel], img[sel]


def _positive_image(img: np.ndarray) -> np.ndarray:
    """True for the lexicographically positive member of each +/- image pair."""
    img = np.asarray(img)
    first_nonzero = np.array([next((v for v in row if v != 0), 0) for row in img])
    return first_nonzero > 0


def decorate_net(net: Structure, si_o: float = SI_O_TARGET) -> Structure | None:
    """SiO2 framework from a 4-connected net (None if ``net`` is not one)."""
    edges = net_edges(net)
    if edges is None:
        return None
    ci, ni, img = edges
    frac = net.frac_coords
    mids = 0.5 * (frac[ci] + frac[ni] + img)
    lengths = np.linalg.norm(net.lattice.get_cartesian_coords(frac[ni] + img - frac[ci]), axis=1)
    scale = 2 * si_o / lengths.mean()
    lat = Lattice(net.lattice.matrix * scale)
    species = ["Si"] * len(net) + ["O"] * len(mids)
    coords = np.vstack([frac, mids % 1.0])
    return Structure(lat, species, coords)


def diamond_polytype(stacking: str, bond: float = 2.35) -> Structure:
    """Si net of a diamond stacking polytype ('ABC' = diamond, 'AB' = lonsdaleite, ...).

    Consecutive letters (cyclically) must differ; ideal tetrahedra, bond length in Å.
    """
    pos = {"A": (0.0, 0.0), "B": (1 / 3, 2 / 3), "C": (2 / 3, 1 / 3)}
    n = len(stacking)
    if n < 2 or any(c not in pos for c in stacking) or any(stacking[i] == stacking[(i + 1) % n] for i in range(n)):
        raise ValueError(f"diamond_polytype: bad stacking {stacking!r} (letters A/B/C, neighbours differ)")
    a = 4 * bond / np.sqrt(6)
    h = 4 * bond / 3  # bilayer repeat
    c = n * h
    coords = []
    for i, s in enumerate(stacking):
        x, y = pos[s]
        coords.append((x, y, i * h / c))
        coords.append((x, y, (i * h + bond) / c))
    return Structure(Lattice.hexagonal(a, c), ["Si"] * (2 * n), coords)


def _hagg(stacking: str) -> tuple[int, ...]:
    """Hagg symbols (+1 for A->B->C->A steps, -1 otherwise), cyclic."""
    nxt = {"A": "B", "B": "C", "C": "A"}
    n = len(stacking)
    return tuple(1 if stacking[(i + 1) % n] == nxt[stacking[i]] else -1 for i in range(n))


def _canonical(h: tuple[int, ...]) -> tuple[int, ...]:
    """Smallest equivalent Hagg sequence under rotation, reversal and inversion."""
    n = len(h)
    variants = []
    for seq in (h, h[::-1], tuple(-v for v in h), tuple(-v for v in h[::-1])):
        variants.extend(seq[i:] + seq[:i] for i in range(n))
    return min(variants)


def polytype_stackings(max_layers: int = 8) -> list[str]:
    """One stacking string per distinct diamond polytype with 2..max_layers layers per cell.

    Sequences equivalent by rotation, reversal or inversion, and those that repeat with a
    shorter period, are dropped (e.g. 'ABAB' is 'AB', 'ACB' is 'ABC').
    """
    seen: set[tuple[int, ...]] = set()
    out = []
    for n in range(2, max_layers + 1):
        for rest in itertools.product("ABC", repeat=n - 1):
            s = "A" + "".join(rest)
            if any(s[i] == s[(i + 1) % n] for i in range(n)):
                continue
            h = _hagg(s)
            if any(n % p == 0 and h == h[:p] * (n // p) and sum(h[:p]) % 3 == 0 for p in range(1, n)):
                continue  # a shorter period exists
            key = _canonical(h)
            if key in seen:
                continue
            seen.add(key)
            out.append(s)
    return out


def library_nets() -> list[tuple[str, str, Structure]]:
    """4-connected nets among the AFLOW library (all atoms read as one node type).

    Returns (label, name, net) with every atom set to Si.
    """
    from s2s.structures.prototypes import aflow_library

    out = []
    for entry in aflow_library():
        s: Structure = entry["snl"].structure.copy()
        if len(s) > 64:
            continue
        s.replace_species({el: "Si" for el in s.composition.elements})
        if net_edges(s) is not None:
            out.append((entry["tags"]["aflow"], entry["tags"].get("mineral") or "", s))
    return out


def geometry_ok(fw: Structure, min_oo: float = 2.0, si_o: tuple[float, float] = (1.50, 1.72)) -> bool:
    """Loose check for an unrelaxed framework: no O-O below min_oo Å, Si-O within si_o Å."""
    from s2s.structures.filters import bond_analysis

    b = bond_analysis(fw)
    oo_ok = (len(b.o_o) == 0) or b.o_o.min() >= min_oo
    return bool(oo_ok and len(b.si_o) and b.si_o.min() >= si_o[0] and b.si_o.max() <= si_o[1])


def framework_records(max_layers: int = 8) -> list[StructureRecord]:
    """SiO2 frameworks from the AFLOW library's 4-connected nets and diamond polytypes.

    Nets whose decorated framework has O-O < 2.0 Å or Si-O outside 1.50-1.72 Å (strongly
    distorted nets) are left out.  Not deduplicated here (see
    :func:`s2s.structures.filters.deduplicate`).
    """
    from s2s.structures.prototypes import AFLOW_CITATION

    recs = []
    for label, name, net in library_nets():
        fw = decorate_net(net)
        if fw is None or not geometry_ok(fw):
            continue
        recs.append(
            StructureRecord(
                id=f"fw-aflow-{re.sub(r'[^a-z0-9]+', '-', label.lower())}",
                source="framework",
                citation=f"net of AFLOW prototype {label} ({AFLOW_CITATION}); O at every Si-Si "
                f"bond midpoint, scaled to Si-O {SI_O_TARGET} Å",
                structure=fw,
                name=f"SiO2 framework on the {name or label} net",
                notes={"net": label, "net_name": name, "si_o_target": SI_O_TARGET},
            )
        )
    for st in polytype_stackings(max_layers):
        fw = decorate_net(diamond_polytype(st))
        recs.append(
            StructureRecord(
                id=f"fw-polytype-{st.lower()}",
                source="framework",
                citation=f"diamond stacking polytype {st} (ideal tetrahedra); O at every Si-Si bond "
                f"midpoint, scaled to Si-O {SI_O_TARGET} Å",
                structure=fw,
                name=f"SiO2 framework on the {st} stacking polytype of diamond",
                notes={"net": f"polytype-{st}", "si_o_target": SI_O_TARGET},
            )
        )
    return recs
