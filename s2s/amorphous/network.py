"""The ``network`` glass family: amorphous SiO_x as a four-fold Si network with O in Si-Si bonds.

The Tersoff (Munetoh) melt-quench glasses of :mod:`s2s.amorphous.md` carry 20-38 %
three-fold Si at intermediate x, and GFN1-xTB's SCF collapses onto those atoms
(docs/amorphous.md).  Real SiO_x is a network of four-fold Si and two-fold O
(random-bonding and random-mixture models).  This module builds such cells:

1. **amorphous-Si parent** (:func:`asi_parent`): ``n_si`` Si at random positions,
   melt-quench in LAMMPS with the Stillinger-Weber potential of Vink et al.
   (J. Non-Cryst. Solids 282, 248 (2001): epsilon 1.64833 eV, lambda 31.5; the
   standard SW gives too many defects), then *defect-removal cycles* (anneal at
   ``anneal_T`` + minimise) until every Si has exactly four neighbours within
   ``si_cutoff`` (or ``max_cycles`` is reached).  A parent that keeps a three- or
   five-fold Si is rejected (:class:`NetworkRejected`), the next seed is tried.
2. **O insertion** (:func:`insert_oxygen`): ``n_O = x * n_Si`` (exact, an integer,
   0 < x <= 2) Si-Si bonds of the parent graph get one O each, chosen by a seeded
   rule: ``uniform`` = random bonding (bonds drawn uniformly), ``clustered`` =
   random mixture (the bonds nearest to a random centre, i.e. one SiO2 region in an
   Si matrix), ``dispersed`` = random bonding conditioned on every Si having at
   least one O (no Si(Si4) unit; uniform draws rejected until none is left: the
   training simulator's SCF does not converge on isolated Si(Si4) units,
   docs/amorphous.md).  The cell is expanded first (volume per Si interpolated between a-Si
   and a-SiO2), the O goes to the bond midpoint displaced sideways so that
   Si-O = ``si_o`` Å.
3. **CHGNet relaxation** (:func:`chgnet_relax`): cell and positions (FIRE,
   ``fmax`` eV/Å), one thread.
4. **Checks** (:func:`cell_checks`): the cell is dropped, with a reason, when a Si
   is under-coordinated (Si-O 2.0 Å, Si-Si 2.7 Å cutoffs of
   :mod:`s2s.amorphous.analysis`), an O is not bonded to exactly two Si, or two
   atoms are closer than ``min_pair`` = 1.4 Å.

Everything random comes from one integer seed per cell (:func:`network_seed`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from s2s.amorphous import analysis as an

SOURCE = "amorphous-network-chgnet"

#: Stillinger-Weber parameters (LAMMPS ``Si.sw`` order: epsilon sigma a lambda gamma
#: costheta0 A B p q tol).  "sw": Stillinger & Weber, PRB 31, 5262 (1985);
#: "sw-vink": Vink, Barkema, van der Weg & Mousseau, J. Non-Cryst. Solids 282, 248 (2001),
#: fitted to a-Si (fewer coordination defects).
SW_PARAMS: dict[str, tuple[float, ...]] = {
    "sw": (2.1683, 2.0951, 1.80, 21.0, 1.20, -1.0 / 3.0, 7.049556277, 0.6022245584, 4.0, 0.0, 0.0),
    "sw-vink": (1.64833, 2.0951, 1.80, 31.5, 1.20, -1.0 / 3.0, 7.049556277, 0.6022245584, 4.0, 0.0, 0.0),
}

#: Volume per Si atom (Å^3) of the end members, from experiment: a-Si 2.29 g/cm^3, a-SiO2 2.20 g/cm^3.
_AMU_A3 = 1.66053906660
V_SI_ASI = 28.0855 * _AMU_A3 / 2.29
V_SI_SIO2 = 60.0843 * _AMU_A3 / 2.20

FAMILIES = ("tersoff", "network")
RULES = ("uniform", "clustered", "dispersed")
#: uniform draws tried by the ``dispersed`` rule before it gives up (x = 0.75 accepts ~2e-4 of them)
DISPERSED_TRIES = 200_000


class NetworkRejected(RuntimeError):
    """A parent or a cell failed its checks; ``reason`` says why."""

    def __init__(self, reason: str, info: dict | None = None, atoms: Atoms | None = None):
        super().__init__(reason)
        self.reason = reason
        self.info = info or {}
        self.atoms = atoms  # the rejected structure, for diagnosis (not stored)


@dataclass(frozen=True)
class NetworkProtocol:
    """Parameters of the network construction (LAMMPS metal units, Å, K, ps).

    potential : ``sw-vink`` (default) or ``sw``, the Stillinger-Weber parameters of the parent MD.
    parent_density : g/cm^3 of the random start (a-Si experiment 2.29).
    melt_T, melt_ps, quench_ps, quench_T_end : parent melt (NVT) and linear quench (NPT, 0 bar);
        100 ps (48 Si: 3 of 6 seeds defect-free after the cycles, 0 of 6 with 50 ps).
    parent_tries : parent seeds tried before the cell is dropped (12; 6 in the store ``n72_v2``, where
        2 of 16 cells found none: a 40-Si parent is defect-free in ~1 of 7 seeds).
    anneal_T, anneal_ps, max_cycles : defect-removal cycles (NPT anneal + minimisation) until
        every Si is four-fold within ``si_cutoff`` Å; ``max_cycles`` at most.
    si_cutoff : Si-Si bond cutoff of the parent graph (a-Si g(r) minimum).
    si_o : Si-O distance (Å) of the inserted O before relaxation.
    expand_fraction : fraction of the volume change a-Si -> :func:`volume_per_si` applied before
        relaxation (1 = all; less keeps the remaining Si-Si bonds shorter, CHGNet relaxes the cell).
    o_directions : sideways directions tried per O (seeded); the one farthest from the atoms placed
        so far is taken (1 = one random direction).
    fmax, relax_steps : CHGNet relaxation (eV/Å, FIRE steps), cell and positions.
    min_pair : Å, a relaxed cell with a closer pair is dropped.
    bridge_cutoff : Å; two three-fold Si of the parent closer than this (a stretched Si-Si bond,
        beyond ``si_cutoff``) form a *bridge*: an O is always put between them, which makes both
        four-fold (Si-O-Si with Si...Si 3.0-3.2 Å is the ordinary bridge of silica).  A parent whose
        remaining defects are all bridged is accepted.  0 turns bridging off.
    prerelax : ``keating`` (default): the inserted network is first relaxed with a valence force
        field on its own bond list (:func:`keating_relax`, cell included), so CHGNet starts from
        Si-O 1.61, Si-Si 2.35 Å and open Si-O-Si angles and cannot break the stretched Si-Si bonds
        (without it, x = 1.0 kept 7-11 under-coordinated Si after CHGNet); ``none``: straight to CHGNet.
    keating_cell : the Keating step relaxes the cell too (True) or keeps the expanded cell of the
        insertion (False: the network is fitted into the target volume per Si, so CHGNet need not
        expand it).
    insert_tries : O insertions tried on the same parent (seeds :func:`insertion_seed`) before the
        cell is dropped; a try is rejected when the relaxed cell fails :func:`cell_checks` (CHGNet
        breaks a Si-Si bond of the network: docs/amorphous.md).  4 (default); 1 = one insertion (the
        store ``n72_v2``).  The first try is the insertion of ``insert_tries = 1`` and the parent search
        is the same, so a cell that passes on its first try is the cell built with 1.
    """

    potential: str = "sw-vink"
    parent_density: float = 2.29
    min_dist: float = 2.0
    timestep_fs: float = 1.0
    melt_T: float = 3000.0
    melt_ps: float = 10.0
    quench_ps: float = 100.0
    quench_T_end: float = 300.0
    anneal_T: float = 1400.0
    anneal_ps: float = 10.0
    max_cycles: int = 6
    si_cutoff: float = 2.85
    si_o: float = 1.62
    fmax: float = 0.05
    relax_steps: int = 600
    min_pair: float = 1.4
    parent_tries: int = 12
    expand_fraction: float = 1.0
    o_directions: int = 12
    bridge_cutoff: float = 3.3
    prerelax: str = "keating"
    keating_cell: bool = True
    insert_tries: int = 4

    def __post_init__(self) -> None:
        if self.prerelax not in ("keating", "none"):
            raise ValueError(f"NetworkProtocol.prerelax must be 'keating' or 'none', got {self.prerelax!r}")
        if self.potential not in SW_PARAMS:
            raise ValueError(f"NetworkProtocol.potential must be one of {sorted(SW_PARAMS)}, got {self.potential!r}")
        for name in (
            "parent_density",
            "min_dist",
            "timestep_fs",
            "melt_T",
            "quench_T_end",
            "anneal_T",
            "si_cutoff",
            "si_o",
            "fmax",
            "min_pair",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"NetworkProtocol.{name} must be > 0, got {getattr(self, name)}")

    def steps(self, ps: float) -> int:
        return int(round(ps * 1000.0 / self.timestep_fs))

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- composition


def check_x(x: float) -> float:
    """x as float; ValueError unless 0 < x <= 2 (a four-fold network has 2 bonds per Si)."""
    try:
        xf = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"network: x must be a number in (0, 2], got {x!r}") from None
    if not (xf > 0.0 and xf <= 2.0):
        raise ValueError(f"network: x must satisfy 0 < x <= 2 (SiO_x with O in Si-Si bonds), got {x!r}")
    return xf


def n_oxygen(x: float, n_si: int) -> int:
    """Exact O count ``x * n_si``; ValueError when that is not an integer or x is out of (0, 2]."""
    xf = check_x(x)
    n = Fraction(xf).limit_denominator(1000) * int(n_si)
    if n.denominator != 1:
        raise ValueError(
            f"network: x={x} with {n_si} Si gives {float(n):g} O, not an integer; "
            "choose n_si so that x * n_si is whole (s2s.amorphous.md.counts_for_size)"
        )
    return int(n)


def network_seed(x: float, cell_id: int, base_seed: int = 20270101) -> int:
    """Deterministic per-cell seed of the network family (distinct from the Tersoff family's)."""
    return int(base_seed + 1000 * round(4 * check_x(x)) + 10 * int(cell_id))


# --------------------------------------------------------------------------- parent graph


def si_graph(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique Si-Si bonds (i < j, or i == j through an image) within ``cutoff`` Å.

    Returns ``(i, j, D)``: indices and the minimum-image vector from i to j (Å).
    """
    i, j, D = neighbor_list("ijD", atoms, cutoff)
    keep = (i < j) | ((i == j) & _first_half(D))
    return i[keep], j[keep], D[keep]


def _first_half(D: np.ndarray) -> np.ndarray:
    """For self-image bonds keep one of the pair (D, -D): the lexicographically positive one."""
    s = np.sign(np.where(np.abs(D[:, 0]) > 1e-9, D[:, 0], np.where(np.abs(D[:, 1]) > 1e-9, D[:, 1], D[:, 2])))
    return s > 0


def si_coordination(atoms: Atoms, cutoff: float) -> np.ndarray:
    """Number of Si neighbours within ``cutoff`` Å of each atom."""
    i = neighbor_list("i", atoms, cutoff)
    return np.bincount(i, minlength=len(atoms))


def parent_defects(atoms: Atoms, cutoff: float, bridge_cutoff: float = 0.0) -> dict[str, Any]:
    """Coordination defects of an a-Si parent and the ones an inserted O can heal.

    Counts Si with CN != 4 (``cutoff`` Å).  Three-fold Si are paired, shortest distance first,
    with another three-fold Si within ``bridge_cutoff`` Å (a stretched bond; distinct atoms, no
    atom in two pairs): each pair is a *bridge* that gets an O (:func:`insert_oxygen`), after which
    both Si are four-fold.  Returns ``defects`` (all CN != 4), ``n_under``, ``n_over``,
    ``bridges`` ([i, j] pairs, i < j) and ``unfixed`` (defects not healed by a bridge).
    """
    cn = si_coordination(atoms, cutoff)
    bridges: list[list[int]] = []
    if bridge_cutoff > 0:
        i, j, d = neighbor_list("ijd", atoms, bridge_cutoff)
        m = (i < j) & (cn[i] == 3) & (cn[j] == 3) & (d >= cutoff)
        i, j, d = i[m], j[m], d[m]
        used: set[int] = set()
        for k in np.argsort(d, kind="stable"):
            a, b = int(i[k]), int(j[k])
            if a not in used and b not in used:
                bridges.append([a, b])
                used |= {a, b}
    n_under, n_over = int(np.count_nonzero(cn < 4)), int(np.count_nonzero(cn > 4))
    return {
        "defects": n_under + n_over,
        "n_under": n_under,
        "n_over": n_over,
        "bridges": bridges,
        "unfixed": n_under + n_over - 2 * len(bridges),
    }


# --------------------------------------------------------------------------- a-Si parent (LAMMPS SW)


def sw_file(potential: str, directory: Path) -> Path:
    """Write the LAMMPS SW file of ``potential`` into ``directory``; returns its path."""
    p = SW_PARAMS[potential]
    path = Path(directory) / f"Si.{potential}.sw"
    path.write_text(f"# s2s.amorphous.network {potential}\nSi Si Si " + " ".join(repr(float(v)) for v in p) + "\n")
    return path


def asi_parent(n_si: int, seed: int, protocol: NetworkProtocol | None = None) -> tuple[Atoms, dict[str, Any]]:
    """Amorphous Si of ``n_si`` atoms by a seeded SW melt-quench plus defect-removal cycles.

    Returns ``(atoms, info)``; info has ``cn_defects_after_cycle`` (number of Si with CN != 4
    after the quench and after each anneal cycle), ``unfixed_after_cycle`` (those not healed by a
    bridge, :func:`parent_defects`), ``cycles``, ``defects``, ``unfixed``, ``bridges`` (pairs of
    three-fold Si that must get an O), ``cpu_s``, ``wall_s``, ``density``.  The cycles stop when
    ``unfixed`` is 0; raises :class:`NetworkRejected` when it is not after ``max_cycles``.
    """
    import tempfile  # noqa: PLC0415

    from ase.calculators.lammps.coordinatetransform import Prism  # noqa: PLC0415

    from s2s.amorphous import md  # noqa: PLC0415

    p = protocol or NetworkProtocol()
    start = md.random_cell(int(n_si), 0, p.parent_density, int(seed), p.min_dist)
    vseed = int(seed) % 2_147_483_000 + 1
    dt = p.timestep_fs / 1000.0
    t0, c0 = time.perf_counter(), time.process_time()
    lmp = md._new_lammps()
    defects: list[int] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pot = sw_file(p.potential, Path(tmp))
            prism = Prism(np.asarray(start.cell))
            xhi, yhi, zhi, xy, xz, yz = prism.get_lammps_prism()
            lmp.commands_list(
                [
                    "units metal",
                    "atom_style atomic",
                    "atom_modify map array sort 0 0.0",
                    "boundary p p p",
                    f"region box prism 0 {float(xhi)!r} 0 {float(yhi)!r} 0 {float(zhi)!r} {float(xy)!r} "
                    f"{float(xz)!r} {float(yz)!r}",
                    "create_box 1 box",
                    "mass 1 28.0855",
                ]
            )
            pos = prism.vector_to_lammps(start.get_positions(), wrap=True)
            lmp.create_atoms(len(start), list(range(1, len(start) + 1)), [1] * len(start), pos.ravel().tolist())
            lmp.commands_list(
                [
                    "pair_style sw",
                    f"pair_coeff * * {pot} Si",
                    "neighbor 1.0 bin",
                    "neigh_modify every 1 delay 0 check yes",
                    f"timestep {dt!r}",
                    "min_style cg",
                    "minimize 1.0e-6 1.0e-4 200 2000",
                    f"velocity all create {float(p.melt_T)!r} {vseed} mom yes rot yes dist gaussian",
                    f"fix md all nvt temp {float(p.melt_T)!r} {float(p.melt_T)!r} 0.1",
                    f"run {p.steps(p.melt_ps)}",
                    "unfix md",
                    f"fix md all npt temp {float(p.melt_T)!r} {float(p.quench_T_end)!r} 0.1 iso 0.0 0.0 1.0",
                    f"run {p.steps(p.quench_ps)}",
                    "unfix md",
                ]
            )

            def relax() -> Atoms:
                lmp.commands_list(
                    [
                        "velocity all set 0.0 0.0 0.0",
                        "fix relax all box/relax iso 0.0 vmax 0.001",
                        "minimize 1e-12 1e-6 5000 50000",
                        "unfix relax",
                        "minimize 1e-12 1e-6 5000 50000",
                    ]
                )
                return md._read_atoms(lmp, ("Si",))

            atoms = relax()
            state = parent_defects(atoms, p.si_cutoff, p.bridge_cutoff)
            defects.append(state["defects"])
            unfixed = [state["unfixed"]]
            cycle = 0
            while unfixed[-1] and cycle < p.max_cycles:
                cycle += 1
                lmp.commands_list(
                    [
                        f"velocity all create {float(p.anneal_T)!r} {vseed + cycle} mom yes rot yes dist gaussian",
                        f"fix md all npt temp {float(p.anneal_T)!r} {float(p.quench_T_end)!r} 0.1 iso 0.0 0.0 1.0",
                        f"run {p.steps(p.anneal_ps)}",
                        "unfix md",
                    ]
                )
                atoms = relax()
                state = parent_defects(atoms, p.si_cutoff, p.bridge_cutoff)
                defects.append(state["defects"])
                unfixed.append(state["unfixed"])
    finally:
        lmp.close()
    info = {
        "cn_defects_after_cycle": defects,
        "unfixed_after_cycle": unfixed,
        "cycles": len(defects) - 1,
        "defects": defects[-1],
        "unfixed": unfixed[-1],
        "bridges": state["bridges"],
        "cpu_s": round(time.process_time() - c0, 2),
        "wall_s": round(time.perf_counter() - t0, 2),
        "density": round(an.density(atoms), 4),
    }
    if unfixed[-1]:
        raise NetworkRejected(
            f"a-Si parent keeps {unfixed[-1]} Si with CN != 4 (not bridged) after {p.max_cycles} anneal cycles",
            info,
            atoms,
        )
    return atoms, info


# --------------------------------------------------------------------------- O insertion


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
    forced = np.arange(nb)  # the bridges come first in (bi, bj, D)
    if rule == "uniform":
        chosen = np.concatenate([forced, nb + np.sort(rng.choice(n_bonds, size=n_o - nb, replace=False))])
    elif rule == "dispersed":
        chosen = _dispersed_bonds(rng, bi, bj, nb, n_o, n_si)
    else:
        centre = rng.random(3) @ cell
        mid = si_pos[bi[nb:]] + 0.5 * D[nb:] - centre
        frac = np.linalg.solve(cell.T, mid.T).T
        mid = (frac - np.round(frac)) @ cell
        dist = np.linalg.norm(mid, axis=1) + 1e-9 * rng.random(n_bonds)  # seeded tie break
        chosen = np.concatenate([forced, nb + np.sort(np.argsort(dist)[: n_o - nb])])
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


def _dispersed_bonds(rng, bi, bj, nb: int, n_o: int, n_si: int) -> np.ndarray:
    """Indices into (bi, bj) of the bonds that get an O under the ``dispersed`` rule: the ``nb``
    forced bridges plus uniform draws of the other bonds, redrawn until every Si has an O."""
    if 2 * n_o < n_si:
        raise ValueError(f"insert_oxygen: the dispersed rule needs x >= 0.5 (every Si an O), got {n_o} O for {n_si} Si")
    n_bonds = len(bi) - nb
    ends = np.stack([bi, bj], axis=1)
    for _ in range(DISPERSED_TRIES):
        chosen = np.concatenate([np.arange(nb), nb + np.sort(rng.choice(n_bonds, size=n_o - nb, replace=False))])
        if np.bincount(ends[chosen].ravel(), minlength=n_si).min() > 0:
            return chosen
    raise NetworkRejected(f"dispersed rule: no insertion without a Si(Si4) unit in {DISPERSED_TRIES} draws")


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


# --------------------------------------------------------------------------- Keating pre-relaxation


#: Keating-like valence force field of the pre-relaxation: bond lengths (Å) and the O bond angle.
KEATING = {
    "r_sisi": 2.35,
    "r_sio": 1.61,
    "k_bond": 10.0,
    "k_si": 3.0,
    "k_o": 0.5,
    "theta_o": 144.0,
    "k_rep": 5.0,
    "rep_sisi": 3.0,
    "rep_sio": 2.6,
    "rep_oo": 2.5,
}


def keating_relax(
    atoms: Atoms, topology, steps: int = 400, relax_cell: bool = True, params: dict | None = None
) -> tuple[Atoms, dict[str, Any]]:
    """Relax a network of known bonds with a Keating-like valence force field (torch gradients, L-BFGS).

    topology : ``(i, j, D)`` bonds and their vectors i -> j in ``atoms`` (from
        :func:`insert_oxygen`); the bonds are kept by construction (no bond can break or
        form), so the network reaches bond lengths Si-Si 2.35, Si-O 1.61 Å, tetrahedral Si and
        Si-O-Si near 144 deg before CHGNet sees it.  Energy (eV): sum 0.5 k_bond (r - r0)^2 over
        bonds + 0.5 k_si (cos t + 1/3)^2 over bond pairs at each Si + 0.5 k_o (cos t - cos
        theta_o)^2 at each O + 0.5 k_rep (r - r_rep)^2 for pairs closer than r_rep that are not
        bonded (so that no new bond forms, and Si...Si across an O stays >= 3.0 Å, Si-O-Si >= 137 deg;
        the second neighbours of an ideal network are farther than r_rep; pairs found within 4 Å of
        the start, again after a first relaxation).  relax_cell: the cell (symmetric strain) relaxes too (zero stress).
    Returns ``(atoms, info)``: ``energy_eV`` before/after, ``max_bond_dev_A``, ``steps``.
    """
    import torch  # noqa: PLC0415

    kp = {**KEATING, **(params or {})}
    bi, bj, D = (np.asarray(t) for t in topology)
    D = np.asarray(D, dtype=float).reshape(-1, 3)
    if len(bi) == 0:
        raise ValueError("keating_relax: empty topology")
    sym = np.array(atoms.get_chemical_symbols())
    cell0 = np.asarray(atoms.cell, dtype=float)
    pos = atoms.get_positions()
    frac = np.linalg.solve(cell0.T, pos.T).T
    shift = np.rint(np.linalg.solve(cell0.T, (D - (pos[bj] - pos[bi])).T).T)
    if np.abs(frac[bj] - frac[bi] + shift - np.linalg.solve(cell0.T, D.T).T).max() > 1e-6:
        raise ValueError("keating_relax: bond vectors do not match the positions and the cell")
    is_o_bond = (sym[bi] == "O") | (sym[bj] == "O")
    r0 = np.where(is_o_bond, kp["r_sio"], kp["r_sisi"])
    # angle triplets: for each atom, every pair of its bonds (bond index, sign of the vector away from it)
    ends: dict[int, list[tuple[int, float]]] = {}
    for b, (a, c) in enumerate(zip(bi, bj)):
        if a == c:
            continue
        ends.setdefault(int(a), []).append((b, 1.0))
        ends.setdefault(int(c), []).append((b, -1.0))
    near: set[tuple[int, int]] = {(int(min(a, c)), int(max(a, c))) for a, c in zip(bi, bj)}  # bonded pairs
    t_b1, t_s1, t_b2, t_s2, t_k, t_c0 = [], [], [], [], [], []
    cos_o = float(np.cos(np.radians(kp["theta_o"])))
    for centre, lst in ends.items():
        k, c0 = (kp["k_o"], cos_o) if sym[centre] == "O" else (kp["k_si"], -1.0 / 3.0)
        for u in range(len(lst)):
            for w in range(u + 1, len(lst)):
                t_b1.append(lst[u][0])
                t_s1.append(lst[u][1])
                t_b2.append(lst[w][0])
                t_s2.append(lst[w][1])
                t_k.append(k)
                t_c0.append(c0)
    dt = torch.float64
    T = lambda a, d=dt: torch.as_tensor(np.asarray(a), dtype=d)  # noqa: E731
    ti, tj, tsh, tr0 = T(bi, torch.long), T(bj, torch.long), T(shift), T(r0)
    b1, b2, s1, s2, tk, tc0 = (T(t_b1, torch.long), T(t_b2, torch.long), T(t_s1), T(t_s2), T(t_k), T(t_c0))
    h0 = T(cell0)
    eye = torch.eye(3, dtype=dt)
    n = len(atoms)

    def unpack(xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = xt[: 3 * n].reshape(n, 3)
        e = xt[3 * n :].reshape(3, 3) if relax_cell else torch.zeros((3, 3), dtype=dt)
        return s, h0 @ (eye + 0.5 * (e + e.transpose(0, 1)))

    rep_r = {
        ("Si", "Si"): kp["rep_sisi"],
        ("O", "Si"): kp["rep_sio"],
        ("O", "Si")[::-1]: kp["rep_sio"],
        ("O", "O"): kp["rep_oo"],
    }
    rep_pairs: list = []

    def find_pairs(fr: np.ndarray, h: np.ndarray) -> list:
        from ase.neighborlist import neighbor_list as nl  # noqa: PLC0415

        at = Atoms(sym.tolist(), fr @ h, cell=h, pbc=True)
        pi, pj, pS = nl("ijS", at, 4.0)
        keep = np.array([a < c and (int(a), int(c)) not in near for a, c in zip(pi, pj)], dtype=bool)
        pi, pj, pS = pi[keep], pj[keep], pS[keep]
        rr = np.array([rep_r[(sym[a], sym[c])] for a, c in zip(pi, pj)])
        return [T(pi, torch.long), T(pj, torch.long), T(pS), T(rr)]

    def energy(xt: torch.Tensor) -> torch.Tensor:
        s, h = unpack(xt)
        v = (s[tj] - s[ti] + tsh) @ h
        r = v.norm(dim=1)
        e = 0.5 * kp["k_bond"] * ((r - tr0) ** 2).sum()
        if len(t_b1):
            cos = (s1[:, None] * v[b1] * s2[:, None] * v[b2]).sum(dim=1) / (r[b1] * r[b2])
            e = e + 0.5 * (tk * (cos - tc0) ** 2).sum()
        if rep_pairs and len(rep_pairs[0]):
            pi, pj, pS, rr = rep_pairs
            d = ((s[pj] - s[pi] + pS) @ h).norm(dim=1)
            e = e + 0.5 * kp["k_rep"] * (torch.clamp(rr - d, min=0.0) ** 2).sum()
        return e

    def fun(xv: np.ndarray) -> tuple[float, np.ndarray]:
        xt = torch.tensor(xv, dtype=dt, requires_grad=True)
        e = energy(xt)
        e.backward()
        return float(e.detach()), xt.grad.numpy().copy()

    from scipy.optimize import minimize  # noqa: PLC0415

    x0 = np.concatenate([frac.ravel(), np.zeros(9 if relax_cell else 0)])
    rep_pairs[:] = find_pairs(frac, cell0) if kp["k_rep"] > 0 else []
    e0 = fun(x0)[0]
    nit = 0
    for _ in range(2):  # relax, find the close non-bonded pairs again, relax
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": int(steps), "gtol": 1e-6})
        nit += int(res.nit)
        with torch.no_grad():
            st, ht = unpack(torch.tensor(res.x, dtype=dt))
            f, h = st.numpy(), ht.numpy()
        if kp["k_rep"] <= 0:
            break
        rep_pairs[:] = find_pairs(f, h)
        x0 = res.x
    r = np.linalg.norm((f[bj] - f[bi] + shift) @ h, axis=1)
    out = Atoms(atoms.get_chemical_symbols(), f @ h, cell=h, pbc=True)
    out.wrap()
    return out, {
        "energy_eV_before": round(e0, 4),
        "energy_eV": round(float(res.fun), 4),
        "max_bond_dev_A": round(float(np.abs(r - r0).max()), 4),
        "steps": nit,
        "volume_ratio": round(float(abs(np.linalg.det(h)) / abs(np.linalg.det(cell0))), 4),
    }


# --------------------------------------------------------------------------- CHGNet and checks


_MODEL = None


def chgnet_relax(atoms: Atoms, fmax: float = 0.05, steps: int = 600, threads: int = 1) -> tuple[Atoms, dict]:
    """CHGNet (its shipped weights) relaxation of cell and positions; one thread by default."""
    import torch  # noqa: PLC0415
    from chgnet.model import CHGNet, StructOptimizer  # noqa: PLC0415
    from pymatgen.io.ase import AseAtomsAdaptor  # noqa: PLC0415

    global _MODEL
    torch.set_num_threads(int(threads))
    if _MODEL is None:
        _MODEL = CHGNet.load(verbose=False)
    t0, c0 = time.perf_counter(), time.process_time()
    opt = StructOptimizer(model=_MODEL, optimizer_class="FIRE", use_device="cpu")
    res = opt.relax(AseAtomsAdaptor.get_structure(atoms), fmax=fmax, steps=steps, relax_cell=True, verbose=False)
    final = AseAtomsAdaptor.get_atoms(res["final_structure"])
    traj = res["trajectory"]
    forces = np.asarray(traj.forces[-1])
    info = {
        "steps": len(traj.energies),
        "energy_eV_per_atom": float(traj.energies[-1]) / len(final),
        "fmax_final": float(np.linalg.norm(forces, axis=1).max()),
        "wall_s": round(time.perf_counter() - t0, 2),
        "cpu_s": round(time.process_time() - c0, 2),
    }
    info["converged"] = info["fmax_final"] <= fmax
    return Atoms(final.get_chemical_symbols(), final.get_positions(), cell=final.cell, pbc=True), info


def cell_checks(atoms: Atoms, min_pair: float = 1.4) -> dict[str, Any]:
    """Coordination and distance checks of a relaxed cell; ``reason`` is "" when it passes.

    Fails (first reason given): a pair closer than ``min_pair`` Å; a Si with fewer
    than four neighbours (Si-O 2.0, Si-Si 2.7 Å); an O without exactly two Si.
    Five-fold Si are counted (``si_cn_gt4``) but do not fail the cell.
    """
    sym = np.array(atoms.get_chemical_symbols())
    cn = an.coordination(atoms)
    si, o = sym == "Si", sym == "O"
    d = neighbor_list("d", atoms, max(min_pair, 0.1))
    shortest = float(d.min()) if d.size else None
    n_under = int(np.count_nonzero(cn["total"][si] < 4))
    n_over = int(np.count_nonzero(cn["total"][si] > 4))
    o_bad = int(np.count_nonzero(cn["Si"][o] != 2))
    reason = ""
    if shortest is not None and shortest < min_pair:
        reason = f"pair at {shortest:.2f} A < {min_pair} A"
    elif n_under:
        reason = f"{n_under} under-coordinated Si"
    elif o_bad:
        reason = f"{o_bad} O not bonded to exactly two Si"
    return {
        "ok": not reason,
        "reason": reason,
        "si_cn_lt4": n_under,
        "si_cn_gt4": n_over,
        "o_not_2si": o_bad,
        "shortest_pair_A": shortest,
        "si_cn4_fraction": float(np.mean(cn["total"][si] == 4)),
        "o_cn2_fraction": float(np.mean(cn["Si"][o] == 2)) if o.any() else None,
        "density": float(an.density(atoms)),
    }


def spectra_settings():
    """Simulator settings of the network family's spectra: exactly the training set's ``XtbSettings()``."""
    from s2s.simulate.xtb import XtbSettings  # noqa: PLC0415

    return XtbSettings()


# --------------------------------------------------------------------------- one cell, and the store


def make_network_cell(
    x: float,
    cell_id: int,
    n_si: int,
    protocol: NetworkProtocol | None = None,
    rule: str = "uniform",
    base_seed: int = 20270101,
    relax=None,
) -> tuple[Atoms | None, dict]:
    """One network cell: a-Si parent (up to ``parent_tries`` seeds), O insertion, CHGNet, checks.

    Returns ``(atoms, props)``; ``atoms`` is None and ``props["reason"]`` says why when the
    cell is dropped (parent defects, close pair, under-coordinated Si, O not two-fold).
    relax : ``f(atoms) -> (atoms, info)`` (default :func:`chgnet_relax` with the protocol's fmax/steps).
    """
    p = protocol or NetworkProtocol()
    x = check_x(x)
    n_o = n_oxygen(x, n_si)
    seed = network_seed(x, cell_id, base_seed)
    props: dict[str, Any] = {
        "x": x,
        "cell_id": int(cell_id),
        "seed": seed,
        "counts": [int(n_si), n_o],
        "family": "network",
        "rule": rule,
        "protocol": p.to_dict(),
        "source": SOURCE,
    }
    t0, c0 = time.perf_counter(), time.process_time()
    parent, parent_info, tries = None, {}, []
    for t in range(max(1, p.parent_tries)):
        try:
            parent, parent_info = asi_parent(n_si, seed + 100 * t, p)
            break
        except NetworkRejected as err:
            tries.append({"seed": seed + 100 * t, "reason": err.reason, **err.info})
    props["parent_rejected"] = tries
    if parent is None:
        props.update(
            ok=False,
            reason=f"no defect-free a-Si parent in {p.parent_tries} seeds",
            wall_s=round(time.perf_counter() - t0, 2),
            cpu_s=round(time.process_time() - c0, 2),
        )
        return None, props
    props["parent"] = {**parent_info, "seed": seed + 100 * len(tries)}
    relax = relax or (lambda a: chgnet_relax(a, p.fmax, p.relax_steps))
    rejected: list[dict] = []
    for t in range(max(1, p.insert_tries)):
        iseed = insertion_seed(seed, t)
        try:
            inserted, ins = insert_oxygen(
                parent,
                x,
                iseed,
                rule=rule,
                cutoff=p.si_cutoff,
                si_o=p.si_o,
                expand=p.expand_fraction,
                directions=p.o_directions,
                bridges=parent_info.get("bridges", ()),
            )
        except NetworkRejected as err:  # the dispersed rule found no insertion on this parent
            props.update(
                ok=False,
                reason=err.reason,
                insert_rejected=rejected,
                wall_s=round(time.perf_counter() - t0, 2),
                cpu_s=round(time.process_time() - c0, 2),
            )
            return None, props
        props["insertion"] = {k: v for k, v in ins.items() if k not in ("o_bonds", "topology")}
        props["insertion"]["seed"] = iseed
        pre = cell_checks(inserted, p.min_pair)
        props["before_relax"] = {k: pre[k] for k in ("shortest_pair_A", "si_cn_lt4", "o_not_2si", "density")}
        if p.prerelax == "keating":
            c1 = time.process_time()
            inserted, kinfo = keating_relax(inserted, ins["topology"], relax_cell=p.keating_cell)
            pre = cell_checks(inserted, p.min_pair)
            props["keating"] = {
                **kinfo,
                "cpu_s": round(time.process_time() - c1, 2),
                **{k: pre[k] for k in ("shortest_pair_A", "si_cn_lt4", "si_cn_gt4", "o_not_2si", "density")},
            }
        c2 = time.process_time()
        try:
            relaxed, rinfo = relax(inserted)
        except Exception as err:  # noqa: BLE001 - a relaxation that blows up drops the try
            relaxed, rinfo = None, {"error": f"{type(err).__name__}: {err}"[:300]}
        props["relax"] = rinfo
        if relaxed is None:
            chk = {"ok": False, "reason": f"relaxation failed: {rinfo['error']}"}
        else:
            chk = cell_checks(relaxed, p.min_pair)
            same = relaxed.get_chemical_symbols() == inserted.get_chemical_symbols()
            chk["broken_bonds"] = broken_bonds(relaxed, ins["topology"]) if same else []
        props["checks"] = chk
        if chk["ok"] or t + 1 >= max(1, p.insert_tries):
            break
        rejected.append(
            {
                "seed": iseed,
                "reason": chk["reason"],
                "broken_bonds": chk.get("broken_bonds", []),
                "cpu_s": round(time.process_time() - c2, 2),
            }
        )
    props["insert_rejected"] = rejected
    props.update(wall_s=round(time.perf_counter() - t0, 2), cpu_s=round(time.process_time() - c0, 2))
    props.update(ok=chk["ok"], reason=chk["reason"])
    if relaxed is None:
        props.pop("checks")
        return None, props
    props["energy_eV"] = rinfo.get("energy_eV_per_atom", 0.0) * len(relaxed)
    return (relaxed if chk["ok"] else None), {**props, "_relaxed": relaxed}


def insertion_seed(seed: int, attempt: int = 0) -> int:
    """Seed of the O insertion, try ``attempt`` on the same parent: ``seed + 1`` first (the only one
    before ``insert_tries``), then ``100 (seed + 1) + attempt`` (far from every cell and parent seed)."""
    return int(seed) + 1 if attempt == 0 else 100 * (int(seed) + 1) + int(attempt)


def broken_bonds(atoms: Atoms, topology, cutoffs=None) -> list[list]:
    """Bonds of the inserted network (``topology`` of :func:`insert_oxygen`, same atom order) that are
    longer than the glass checks' cutoff (Si-O 2.0, Si-Si 2.7 Å) in ``atoms``: ``[i, j, length]``."""
    cut = cutoffs or an.DEFAULT_CUTOFFS
    bi, bj, _ = (np.asarray(t) for t in topology)
    sym = atoms.get_chemical_symbols()
    out = []
    for a, b in zip(bi.tolist(), bj.tolist()):
        if a == b:
            continue
        d = float(atoms.get_distance(a, b, mic=True))
        c = cut.get((sym[a], sym[b]), cut.get((sym[b], sym[a]), 0.0))
        if d > c:
            out.append([int(a), int(b), round(d, 3)])
    return out


#: Fields added to :class:`NetworkProtocol` at a default that differs from the behaviour before them:
#: the value that reproduces a store built before the field existed (``insert_tries``: one insertion).
VALUE_BEFORE_FIELD: dict[str, Any] = {"insert_tries": 1}


def same_protocol(stored: dict | None, protocol: NetworkProtocol) -> bool:
    """Whether a store's recorded protocol is ``protocol`` (None: a new store).

    A field missing from the record (added to :class:`NetworkProtocol` after the store was
    built) matches when ``protocol`` has the value that reproduces the build before the field
    existed (:data:`VALUE_BEFORE_FIELD`, else the field's default); unknown recorded fields do not match.
    """
    if stored is None:
        return True
    import dataclasses  # noqa: PLC0415

    defaults = {f.name: f.default for f in dataclasses.fields(NetworkProtocol)}
    now = protocol.to_dict()
    if set(stored) - set(now):
        return False
    return all(stored[k] == v if k in stored else v == VALUE_BEFORE_FIELD.get(k, defaults[k]) for k, v in now.items())


def build_network_store(
    directory: Path,
    xs,
    n_cells: int | dict,
    counts: dict[float, tuple[int, int]],
    protocol: NetworkProtocol | None = None,
    rule: str = "uniform",
    base_seed: int = 20270101,
    tag: str = "net72",
    progress: bool = True,
    log=print,
    relax=None,
    passing: int | dict | None = None,
    usable=None,
    first_cell: int = 0,
) -> dict[str, Any]:
    """Build (resumably) ``n_cells`` network cells per x into ``directory``.

    With ``passing`` (an int, or a dict x -> int), ``n_cells`` is a cap: cells are built at x, in
    seed order, only until ``passing[x]`` of them pass (cells already in the store count), so a
    composition with a low pass rate gets more tries and an easy one no extra CPU.  ``usable(name,
    structure) -> bool`` (e.g. the SCF probe of the spectra step, :mod:`s2s.amorphous.probe`) is asked
    once per passing cell; only usable cells count towards ``passing``.  ``first_cell`` skips the
    cell ids below it, so a second builder on the same x can start further along the seed order
    (cells already in the store, whoever built them, still count).

    Passing cells: ``cells/<name>.json`` (the layout of :mod:`s2s.amorphous.store`, so
    :func:`s2s.amorphous.store.load_cells` and the spectra step read them); dropped cells:
    ``dropped/<name>.json`` with their reason.  The manifest lists both (``cells``,
    ``dropped``) and the pass rate per x; a cell already built (passed or dropped, same
    seed and protocol) is not rebuilt.
    """
    import json  # noqa: PLC0415

    from s2s.amorphous.build import _entry  # noqa: PLC0415
    from s2s.amorphous.md import PAPER_N_SITES  # noqa: PLC0415
    from s2s.amorphous.store import (  # noqa: PLC0415
        atomic_write_text,
        cell_name,
        load_cell,
        read_manifest,
        save_cell,
        write_manifest,
    )

    p = protocol or NetworkProtocol()
    directory = Path(directory)
    xs = [check_x(x) for x in xs]
    if rule == "dispersed" and any(x < 0.5 for x in xs):  # before any parent is built
        raise ValueError(f"the dispersed rule needs x >= 0.5 (every Si an O), got x = {min(xs)}")
    per_x = {x: int(n_cells[x] if isinstance(n_cells, dict) else n_cells) for x in xs}
    try:
        previous = read_manifest(directory)
    except Exception:  # noqa: BLE001
        previous = {}
    if not same_protocol(previous.get("protocol"), p) or previous.get("rule") not in (None, rule):
        raise ValueError(f"{directory}: built with another protocol or rule; use another --store-name")
    cells = {e["name"]: e for e in previous.get("cells", [])}
    dropped = {e["name"]: e for e in previous.get("dropped", [])}
    want = None if passing is None else {x: int(passing[x] if isinstance(passing, dict) else passing) for x in xs}
    if int(first_cell) < 0:
        raise ValueError(f"build_network_store: first_cell must be >= 0, got {first_cell}")
    jobs = [(x, k) for k in range(int(first_cell), max(per_x.values(), default=0)) for x in xs if k < per_x[x]]

    verdict: dict[str, bool] = {}

    def is_usable(e: dict) -> bool:
        if usable is None:
            return True
        if e["name"] not in verdict:
            verdict[e["name"]] = bool(usable(e["name"], load_cell(directory / e["file"])))
        return verdict[e["name"]]

    def enough(x: float) -> bool:
        return want is not None and sum(1 for e in cells.values() if abs(e["x"] - x) < 1e-9 and is_usable(e)) >= want[x]

    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(jobs), desc=f"network cells ({rule})", unit="cell")

    def write() -> dict:
        # another builder may work on other x in the same store: keep what it wrote since we read
        try:
            now = read_manifest(directory)
        except Exception:  # noqa: BLE001
            now = {}
        for e in now.get("cells", []):
            if e["name"] not in cells and e["name"] not in dropped:
                cells[e["name"]] = e
        for e in now.get("dropped", []):
            if e["name"] not in cells and e["name"] not in dropped:
                dropped[e["name"]] = e
        rows = sorted(cells.values(), key=lambda e: (e["x"], e["cell_id"]))
        gone = sorted(dropped.values(), key=lambda e: (e["x"], e["cell_id"]))
        rate: dict[str, dict] = {}
        for e in rows + gone:
            r = rate.setdefault(f"{e['x']:.2f}", {"built": 0, "passed": 0, "insertions": 0, "cpu_s": []})
            r["built"] += 1
            r["passed"] += e in rows
            # O insertions relaxed (insert_tries); 0 for a cell dropped for want of a parent
            if e in rows:
                r["insertions"] += e.get("insert_try", 0) + 1
            elif "insert_rejected" in e:
                r["insertions"] += len(e["insert_rejected"]) + 1
            r["cpu_s"].append(e.get("cpu_s") or 0.0)
        for r in rate.values():
            c = r.pop("cpu_s")
            r["pass_rate"] = round(r["passed"] / r["built"], 3)
            r["cpu_s_per_cell"] = round(sum(c) / len(c), 1)
        n_sites: dict[str, int] = {}
        for e in rows:
            n_sites[f"{e['x']:.2f}"] = n_sites.get(f"{e['x']:.2f}", 0) + e["n_o"]
        man = {
            "description": "Amorphous SiO_x, network family: SW a-Si parent, O in Si-Si bonds, CHGNet "
            "relaxation; out-of-distribution test set, never for training",
            "family": "network",
            "rule": rule,
            "protocol": p.to_dict(),
            "base_seed": base_seed,
            # (n_Si, n_O) of every x built so far, not only of this call's xs
            "counts_si_o": dict(
                sorted(
                    {**previous.get("counts_si_o", {}), **{f"{x:.2f}": list(counts[x]) for x in counts}}.items(),
                    key=lambda kv: float(kv[0]),
                )
            ),
            "n_cells": {k: sum(1 for e in rows if f"{e['x']:.2f}" == k) for k in sorted(rate, key=float)},
            "n_o_sites": n_sites,
            "pass_rate": {k: rate[k] for k in sorted(rate, key=float)},
            "paper_n_sites": {f"{x:.2f}": n for x, n in PAPER_N_SITES.items()},
            "cells": rows,
            "dropped": gone,
        }
        write_manifest(directory, man)
        return man

    for x, k in jobs:
        name = cell_name(x, k, tag)
        seed = network_seed(x, k, base_seed)
        if enough(x) and name not in cells and name not in dropped:
            if bar is not None:
                bar.update(1)
            continue
        if name in cells or name in dropped:
            old = cells.get(name) or dropped.get(name)
            if old.get("seed") == seed:
                if bar is not None:
                    bar.update(1)
                continue
        n_si = counts[x][0]
        atoms, props = make_network_cell(x, k, n_si, p, rule, base_seed, relax=relax)
        relaxed = props.pop("_relaxed", None)
        props["tag"] = tag
        if atoms is not None:
            path = save_cell(directory, atoms, props)
            entry = _entry(load_cell(path), path, directory)
            entry.update(cpu_s=props["cpu_s"], wall_s=props["wall_s"], rule=rule)
            entry["insert_try"] = len(props.get("insert_rejected", []))
            cells[name] = entry
            dropped.pop(name, None)
        else:
            entry = {
                "name": name,
                "x": x,
                "cell_id": k,
                "seed": seed,
                "reason": props["reason"],
                "cpu_s": props["cpu_s"],
                "wall_s": props["wall_s"],
            }
            if "insertion" in props:  # the insertions tried (the last one is the cell's own checks)
                entry["insert_rejected"] = [
                    {k: r[k] for k in ("seed", "reason", "broken_bonds")} for r in props.get("insert_rejected", [])
                ]
                entry["broken_bonds"] = props.get("checks", {}).get("broken_bonds", [])
            if relaxed is not None:
                from s2s.amorphous.store import atoms_to_structure  # noqa: PLC0415

                path = directory / "dropped" / f"{name}.json"
                atomic_write_text(path, json.dumps(atoms_to_structure(relaxed, props).as_dict()))
                entry["file"] = str(path.relative_to(directory))
            else:
                entry["props"] = props
            dropped[name] = entry
        log(
            f"{name}: {'ok' if atoms is not None else 'DROPPED (' + props['reason'] + ')'}, "
            f"{props['wall_s']:.0f} s wall, {props['cpu_s']:.0f} s CPU"
            + (f", {props['checks']['density']:.3f} g/cm3" if "checks" in props else "")
        )
        write()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return write()


def cells_markdown(manifest: dict) -> str:
    """Markdown table of a network store's manifest: per x the cells built / passed, the pass rate, the O
    insertions relaxed (``insert_tries``; "-" for stores built before it), CPU seconds per cell, O sites of
    the passing cells against the paper's count, and the drop reasons."""
    rate, sites, paper = manifest.get("pass_rate", {}), manifest.get("n_o_sites", {}), manifest.get("paper_n_sites", {})
    counts = manifest.get("counts_si_o", {})
    reasons: dict[str, list[str]] = {}
    for d in manifest.get("dropped", []):
        reasons.setdefault(f"{float(d['x']):.2f}", []).append(f"c{d['cell_id']}: {d['reason']}")
    lines = [
        "| x | Si + O | cells built | passed | pass rate | O insertions relaxed | CPU s per cell | O sites (passing) "
        "| paper | dropped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in sorted(set(rate) | set(paper), key=float):
        r = rate.get(x, {})
        c = counts.get(x)
        lines.append(
            "| "
            + " | ".join(
                [
                    x,
                    f"{c[0]} + {c[1]}" if c else "-",
                    str(r.get("built", 0)),
                    str(r.get("passed", 0)),
                    f"{r['pass_rate']:.2f}" if r else "-",
                    str(r.get("insertions", "-")) if r else "-",
                    f"{r['cpu_s_per_cell']:.0f}" if r else "-",
                    str(sites.get(x, 0)),
                    str(paper.get(x, "-")),
                    "; ".join(reasons.get(x, [])) or "-",
                ]
            )
            + " |"
        )
    return "\n".join(lines)
