"""O insertion of the network family (:mod:`s2s.amorphous.network`): one O in each chosen Si-Si bond.

The cell of the a-Si parent is expanded towards the volume per Si of SiO_x (:func:`volume_per_si`),
the bonds are picked by a rule of :mod:`s2s.amorphous.rules`, and each O is placed beside its bond
midpoint (:func:`place_oxygen`).  The bond list of the new network (``topology``) goes with the cell,
for the Keating pre-relaxation and the broken-bond check of :mod:`s2s.amorphous.relaxation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

from s2s.amorphous.parent import si_graph
from s2s.amorphous.protocol import n_oxygen
from s2s.amorphous.rules import RULES, choose_bonds

#: Volume per Si atom (Å^3) of the end members, from experiment: a-Si 2.29 g/cm^3, a-SiO2 2.20 g/cm^3.
_AMU_A3 = 1.66053906660
V_SI_ASI = 28.0855 * _AMU_A3 / 2.29
V_SI_SIO2 = 60.0843 * _AMU_A3 / 2.20


def volume_per_si(x: float) -> float:
    """Å^3 per Si of SiO_x, linear in x between a-Si (2.29 g/cm^3) and a-SiO2 (2.20 g/cm^3)."""
    return V_SI_ASI + (V_SI_SIO2 - V_SI_ASI) * float(x) / 2.0


def insert_oxygen(
    parent: Atoms,
    x: float,
    seed: int,
    rule: str = "uniform",
    cutoff: float = 2.85,
    si_o: float = 1.62,
    expand: bool | float = True,
    directions: int = 1,
    bridges=(),
) -> tuple[Atoms, dict[str, Any]]:
    """Put ``x * n_Si`` O into Si-Si bonds of ``parent`` (Si only, periodic), seeded.

    rule : ``uniform`` (random bonding: bonds drawn uniformly without replacement),
        ``clustered`` (random mixture: the bonds whose midpoints are nearest to a random
        point, minimum image) or ``dispersed`` (uniform draws, rejected until every Si has an
        O: the random-bonding ensemble conditioned on no Si(Si4) unit; needs x >= 0.5,
        :class:`NetworkRejected` when :data:`DISPERSED_TRIES` draws find none).
    expand : scale the cell (and Si positions) to :func:`volume_per_si` first (a float: that
        fraction of the volume change).
    directions : sideways directions drawn per O; the one whose O is farthest from the atoms
        placed so far is used.
    bridges : [i, j] pairs of Si (three-fold pairs of :func:`parent_defects`, beyond ``cutoff``)
        that always get an O (they count among the ``x * n_Si``); the other O are drawn by ``rule``
        among the bonds of the graph.
    The O sits at the bond midpoint, displaced perpendicular to the bond (random
    direction) so that both Si-O distances are ``si_o`` (on the midpoint when the
    bond is already longer than 2 * si_o).  Returns ``(atoms, info)``: Si first
    (parent order), then O; ``info["o_bonds"]`` is the (Si i, Si j) pair of each O;
    ``info["topology"]`` = ``(i, j, D)``, every bond of the new network (Si-Si without an O,
    then Si-O) with its vector from i to j (for :func:`keating_relax`).
    """
    if rule not in RULES:
        raise ValueError(f"insert_oxygen: rule must be one of {RULES}, got {rule!r}")
    syms = set(parent.get_chemical_symbols())
    if syms != {"Si"}:
        raise ValueError(f"insert_oxygen: the parent must hold only Si, got {sorted(syms)}")
    n_si = len(parent)
    n_o = n_oxygen(x, n_si)
    bi, bj, bD = si_graph(parent, cutoff)
    n_bonds = len(bi)
    bridges = [(int(a), int(b)) for a, b in bridges]
    nb = len(bridges)
    if nb > n_o:
        raise ValueError(f"insert_oxygen: {nb} bridges but x={x} gives only {n_o} O")
    if any(not (0 <= a < n_si and 0 <= b < n_si) or a == b for a, b in bridges):
        raise ValueError(f"insert_oxygen: bridges must be pairs of distinct Si indices < {n_si}, got {bridges}")
    if nb:
        bi = np.concatenate([np.array([a for a, _ in bridges]), bi])
        bj = np.concatenate([np.array([b for _, b in bridges]), bj])
        bD = np.vstack([np.array([parent.get_distance(a, b, mic=True, vector=True) for a, b in bridges]), bD])
    if n_o - nb > n_bonds:
        raise ValueError(f"insert_oxygen: x={x} needs {n_o} Si-Si bonds, the parent has {n_bonds}")
    rng = np.random.default_rng(int(seed))
    frac_v = float(expand) if not isinstance(expand, bool) else float(expand)
    v0 = parent.get_volume()
    scale = ((v0 + frac_v * (volume_per_si(float(x)) * n_si - v0)) / v0) ** (1.0 / 3.0)
    cell = np.asarray(parent.cell) * scale
    si_pos = parent.get_positions() * scale
    D = bD * scale
    chosen = choose_bonds(rule, rng, bi, bj, D, si_pos, cell, nb, n_o, n_si)
    o_pos = place_oxygen(chosen, bi, bj, D, si_pos, cell, rng, si_o, directions)
    atoms = Atoms(symbols=["Si"] * n_si + ["O"] * n_o, positions=np.vstack([si_pos, o_pos]), cell=cell, pbc=True)
    atoms.wrap()
    kept = np.setdiff1d(np.arange(len(bi)), chosen)  # Si-Si bonds without an O
    top_i = np.concatenate([bi[kept], bi[chosen], bj[chosen]])
    top_j = np.concatenate([bj[kept], n_si + np.arange(n_o), n_si + np.arange(n_o)])
    top_D = np.vstack([D[kept], o_pos - si_pos[bi[chosen]], o_pos - si_pos[bi[chosen]] - D[chosen]])
    info = {
        "n_si": n_si,
        "n_o": n_o,
        "n_bonds": int(n_bonds),
        "n_bridges": nb,
        "rule": rule,
        "scale": float(scale),
        "o_bonds": [[int(bi[b]), int(bj[b])] for b in chosen],
        "topology": (top_i.astype(int), top_j.astype(int), top_D),
    }
    return atoms, info


def place_oxygen(
    chosen: np.ndarray,
    bi: np.ndarray,
    bj: np.ndarray,
    D: np.ndarray,
    si_pos: np.ndarray,
    cell: np.ndarray,
    rng: np.random.Generator,
    si_o: float = 1.62,
    directions: int = 1,
) -> np.ndarray:
    """Positions (Å, ``(len(chosen), 3)``) of one O per chosen bond, in order: at the bond midpoint,
    displaced perpendicular to the bond so that both Si-O distances are ``si_o`` Å (on the midpoint when
    the bond is longer than 2 * si_o); of ``directions`` seeded sideways directions, the one whose O is
    farthest (minimum image) from the atoms placed so far."""
    n_o = len(chosen)
    o_pos = np.empty((n_o, 3))
    for k, b in enumerate(chosen):
        d = D[b]
        length = float(np.linalg.norm(d))
        u = d / length
        r = rng.normal(size=(max(1, int(directions)), 3))
        perp = r - np.outer(r @ u, u)
        perp /= np.linalg.norm(perp, axis=1)[:, None]
        h = np.sqrt(max(si_o**2 - (length / 2) ** 2, 0.0))
        cand = si_pos[bi[b]] + 0.5 * d + h * perp
        if len(cand) > 1:
            placed = np.vstack([si_pos, o_pos[:k]])
            diff = cand[:, None, :] - placed[None, :, :]
            fr = np.linalg.solve(cell.T, diff.reshape(-1, 3).T).T
            dist = np.linalg.norm((fr - np.round(fr)) @ cell, axis=1).reshape(len(cand), -1)
            dist[:, [bi[b], bj[b]]] = np.inf
            o_pos[k] = cand[int(np.argmax(dist.min(axis=1)))]
        else:
            o_pos[k] = cand[0]
    return o_pos


def o_between_two_si(atoms: Atoms, o_bonds, tol: float = 0.05) -> bool:
    """Whether each O (after the Si, in order) lies at the same distance from both Si of its bond."""
    n_si = sum(1 for s in atoms.get_chemical_symbols() if s == "Si")
    for k, (i, j) in enumerate(o_bonds):
        o = n_si + k
        if atoms.get_chemical_symbols()[o] != "O":
            return False
        di, dj = atoms.get_distance(o, i, mic=True), atoms.get_distance(o, j, mic=True)
        if abs(di - dj) > tol:
            return False
    return True
