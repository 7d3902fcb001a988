"""Glass checks: per-composition structural numbers (the figure: :mod:`s2s.plots.amorphous`).

:func:`checks_table` pools the cells of each composition x and returns the
numbers that are compared with known facts about SiO_x glasses (density, Si-O
distance, Si coordination, Si-O-Si and O-Si-O angles, Si-Si bond fraction);
:func:`s2s.plots.amorphous.plot_checks` draws them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from s2s.amorphous import analysis as an

#: Reference values for the figure and docs (experiment).
REFERENCE = {
    "a-SiO2 density g/cm3": 2.20,  # vitreous silica
    "a-Si density g/cm3": 2.29,  # Custer et al., APL 64, 437 (1994): 1.8 % below c-Si
    "a-SiO2 Si-O A": 1.61,  # neutron diffraction, e.g. Mozzi & Warren 1969; Grimley et al. 1990
    "a-SiO2 Si-O-Si peak deg": (144.0, 150.0),  # Mozzi & Warren 1969: 144; later NMR/diffraction ~147-151
    "tetrahedral deg": 109.47,
}


def angle_mode(angles: np.ndarray, lo: float = 90.0, hi: float = 180.0, sigma: float = 3.0) -> float:
    """Most likely angle (degrees) of a Gaussian-smoothed histogram (1-degree bins, sigma in degrees)."""
    if angles.size == 0:
        return float("nan")
    edges = np.arange(lo, hi + 1.0, 1.0)
    hist, _ = np.histogram(angles, bins=edges)
    k = np.arange(-4 * sigma, 4 * sigma + 1.0)
    kernel = np.exp(-0.5 * (k / sigma) ** 2)
    smooth = np.convolve(hist, kernel / kernel.sum(), mode="same")
    return float(0.5 * (edges[:-1] + edges[1:])[np.argmax(smooth)])


def group_by_x(structures: Sequence) -> dict[float, list]:
    groups: dict[float, list] = defaultdict(list)
    for s in structures:
        x = (
            float(s.properties["x"])
            if hasattr(s, "properties") and "x" in s.properties
            else round(an.composition_x(s), 2)
        )
        groups[x].append(s)
    return dict(sorted(groups.items()))


def checks_table(structures: Sequence) -> dict[str, dict[str, Any]]:
    """Per-composition numbers, pooled over that composition's cells.

    Keys per x (as ``"2.00"``): n_cells, n_atoms, n_o_sites, density mean/std
    (g/cm^3, over cells), Si-O mean/std (Å, over bonds), Si-Si bond length mean (Å),
    Si coordination histogram, O coordination histogram (by Si neighbours),
    Si^n fractions n = 0..4 and the random-bonding-model values, Si-Si bond
    fraction (and model 1 - x/2), Si-O-Si and O-Si-O angle mean/mode (degrees),
    O-O bonds (< 1.6 Å), shortest O-O distance (Å).
    """
    table: dict[str, dict[str, Any]] = {}
    for x, cells in group_by_x(structures).items():
        dens = [an.density(c) for c in cells]
        sio = np.concatenate([an.bond_lengths(c, ("Si", "O")) for c in cells])
        sisi = np.concatenate([an.bond_lengths(c, ("Si", "Si")) for c in cells])
        siosi = np.concatenate([an.bond_angles(c, ("Si", "O", "Si")) for c in cells])
        osio = np.concatenate([an.bond_angles(c, ("O", "Si", "O")) for c in cells])
        si_cn: list[np.ndarray] = []
        o_cn: list[np.ndarray] = []
        n_sisi = n_sio = n_oo = 0
        min_oo = np.inf
        for c in cells:
            atoms = an.as_atoms(c)
            sym = np.array(atoms.get_chemical_symbols())
            cn = an.coordination(atoms)
            si_cn.append(cn["total"][sym == "Si"])
            o_cn.append(cn["Si"][sym == "O"])
            n_sisi += int(cn["Si"][sym == "Si"].sum())
            n_sio += int(cn["O"][sym == "Si"].sum())
            n_oo += an.bond_lengths(atoms, ("O", "O")).size
            o_idx = np.flatnonzero(sym == "O")
            if o_idx.size > 1:
                d = atoms.get_all_distances(mic=True)[np.ix_(o_idx, o_idx)]
                min_oo = min(min_oo, float(d[np.triu_indices(o_idx.size, 1)].min()))
        si_cn_all, o_cn_all = np.concatenate(si_cn), np.concatenate(o_cn)
        n_o = np.minimum(
            np.concatenate(
                [an.coordination(c)["O"][np.array(an.as_atoms(c).get_chemical_symbols()) == "Si"] for c in cells]
            ),
            4,
        )
        hist = lambda v: {int(k): float(n) / v.size for k, n in zip(*np.unique(v, return_counts=True))}  # noqa: E731
        table[f"{x:.2f}"] = {
            "x": x,
            "n_cells": len(cells),
            "n_atoms": [len(c) for c in cells],
            "n_o_sites": int(
                sum(np.count_nonzero(np.array(an.as_atoms(c).get_chemical_symbols()) == "O") for c in cells)
            ),
            "density_mean": float(np.mean(dens)),
            "density_std": float(np.std(dens)),
            "si_o_mean": float(sio.mean()) if sio.size else float("nan"),
            "si_o_std": float(sio.std()) if sio.size else float("nan"),
            "si_si_bond_mean": float(sisi.mean()) if sisi.size else float("nan"),
            "si_cn_hist": hist(si_cn_all),
            "si_cn_mean": float(si_cn_all.mean()),
            "o_cn_si_hist": hist(o_cn_all),
            "si_n_fractions": (np.bincount(n_o, minlength=5) / n_o.size).tolist(),
            "si_n_random_bonding": an.random_bonding_model(min(x, 2.0)).tolist(),
            "si_si_bond_fraction": n_sisi / max(n_sisi + n_sio, 1),
            "si_si_bond_fraction_rbm": 1.0 - min(x, 2.0) / 2.0,
            "si_o_si_mean": float(siosi.mean()) if siosi.size else float("nan"),
            "si_o_si_mode": angle_mode(siosi),
            "o_si_o_mean": float(osio.mean()) if osio.size else float("nan"),
            "o_si_o_std": float(osio.std()) if osio.size else float("nan"),
            "o_si_o_mode": angle_mode(osio, 60.0, 180.0),
            "o_o_bonds": n_oo,
            "min_o_o_A": min_oo if np.isfinite(min_oo) else float("nan"),
        }
    return table


def checks_markdown(table: dict[str, dict[str, Any]]) -> str:
    """Markdown table of :func:`checks_table` (or its JSON round trip), one row per composition."""

    def frac(hist: dict, k: int) -> float:
        return float(hist.get(k, hist.get(str(k), 0.0)))

    lines = [
        "| x | cells | density g/cm^3 | Si-O Å | Si CN 3/4/5 | O with 2 Si / 3 Si | Si-O-Si mode (mean) deg "
        "| O-Si-O mean deg | Si-Si bond fraction (random bonding) |",
        "|" + "---|" * 9,
    ]
    for key in sorted(table, key=float):
        v = table[key]
        si, o = v["si_cn_hist"], v["o_cn_si_hist"]
        lines.append(
            f"| {key} | {v['n_cells']} | {v['density_mean']:.2f} ± {v['density_std']:.2f} | {v['si_o_mean']:.3f} "
            f"| {frac(si, 3):.2f}/{frac(si, 4):.2f}/{frac(si, 5):.2f} | {frac(o, 2):.2f}/{frac(o, 3):.2f} "
            f"| {v['si_o_si_mode']:.0f} ({v['si_o_si_mean']:.1f}) | {v['o_si_o_mean']:.1f} "
            f"| {v['si_si_bond_fraction']:.3f} ({v['si_si_bond_fraction_rbm']:.3f}) |"
        )
    return "\n".join(lines)
