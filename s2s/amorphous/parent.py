"""The a-Si parent of the network family (:mod:`s2s.amorphous.network`): its Si-Si graph and defects.

:func:`asi_parent` melt-quenches ``n_si`` Si in LAMMPS with a Stillinger-Weber potential
(:data:`~s2s.amorphous.protocol.SW_PARAMS`), then anneals and minimises until every Si has four
neighbours within ``si_cutoff`` Å, or the remaining three-fold Si pair up into *bridges* that an
inserted O heals (:func:`parent_defects`); a parent that keeps a defect raises
:class:`~s2s.amorphous.protocol.NetworkRejected`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from s2s.amorphous import analysis as an
from s2s.amorphous import md
from s2s.amorphous.protocol import SW_PARAMS, NetworkProtocol, NetworkRejected

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
            prism = md._create_box(lmp, np.asarray(start.cell), 1)
            lmp.command("mass 1 28.0855")
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
