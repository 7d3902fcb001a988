"""Relaxation of an inserted network (:mod:`s2s.amorphous.network`) and the checks of the relaxed cell.

:func:`keating_relax` pre-relaxes the network on its own bond list with a Keating-like valence force
field (no bond can break or form); :func:`chgnet_relax` relaxes cell and positions with CHGNet;
:func:`cell_checks` and :func:`broken_bonds` say whether the relaxed cell is kept.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from s2s.amorphous import analysis as an

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
    near, (t_b1, t_s1, t_b2, t_s2, t_k, t_c0) = _angle_terms(bi, bj, sym, kp)
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
        pi, pj, pS, rr = _close_pairs(sym, fr, h, near, rep_r)
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


def _angle_terms(bi: np.ndarray, bj: np.ndarray, sym: np.ndarray, kp: dict) -> tuple[set, tuple[list, ...]]:
    """The bonded pairs ``(min, max)`` of a topology, and its angle terms: for each atom, every pair of its
    bonds as (bond 1, sign of its vector away from the atom, bond 2, sign, force constant eV, cos theta_0)
    columns (O: ``k_o`` and ``theta_o``; Si: ``k_si`` and the tetrahedral -1/3)."""
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
    return near, (t_b1, t_s1, t_b2, t_s2, t_k, t_c0)


def _close_pairs(sym: np.ndarray, fr: np.ndarray, h: np.ndarray, near: set, rep_r: dict) -> tuple[np.ndarray, ...]:
    """Non-bonded pairs (i < j, not in ``near``) within 4 Å of the cell ``h`` (rows, Å) at fractional
    positions ``fr``: ``(i, j, image shift, repulsion radius Å of the pair's elements)``."""
    at = Atoms(sym.tolist(), fr @ h, cell=h, pbc=True)
    pi, pj, pS = neighbor_list("ijS", at, 4.0)
    keep = np.array([a < c and (int(a), int(c)) not in near for a, c in zip(pi, pj)], dtype=bool)
    pi, pj, pS = pi[keep], pj[keep], pS[keep]
    rr = np.array([rep_r[(sym[a], sym[c])] for a, c in zip(pi, pj)])
    return pi, pj, pS, rr


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
