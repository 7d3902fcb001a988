"""Glass checks: per-composition structural numbers and the figure figures/amorphous_checks.png.

:func:`checks_table` pools the cells of each composition x and returns the
numbers that are compared with known facts about SiO_x glasses (density, Si-O
distance, Si coordination, Si-O-Si and O-Si-O angles, Si-Si bond fraction);
:func:`plot_checks` draws them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
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


def _group(structures: Sequence) -> dict[float, list]:
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
    for x, cells in _group(structures).items():
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


#: figure labels per glass family: (short name for legends, title's description)
FAMILY_LABELS = {
    "tersoff": ("Tersoff", "melt-quench MD (Tersoff, Munetoh 2007)"),
    "network": ("network", "O in the bonds of an a-Si network, CHGNet-relaxed (network family)"),
}


def plot_checks(
    structures: Sequence, path: Path, table: dict[str, dict[str, Any]] | None = None, family: str = "tersoff"
) -> Path:
    """Eight-panel figure of the glass checks, written to ``path`` (PNG); ``family`` ("tersoff" or
    "network", :data:`FAMILY_LABELS`) names the glasses in the title and legends."""
    if family not in FAMILY_LABELS:
        raise ValueError(f"plot_checks: family must be one of {sorted(FAMILY_LABELS)}, got {family!r}")
    short, long = FAMILY_LABELS[family]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = table or checks_table(structures)
    groups = _group(structures)
    xs = np.array([v["x"] for v in table.values()])
    cmap = plt.get_cmap("viridis")
    colour = {x: cmap(i / max(len(xs) - 1, 1)) for i, x in enumerate(xs)}
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5))
    ax = axes.ravel()

    # (a) density per cell
    for x, cells in groups.items():
        ax[0].plot([x] * len(cells), [an.density(c) for c in cells], "o", color=colour[x], alpha=0.6)
    ax[0].errorbar(
        xs,
        [v["density_mean"] for v in table.values()],
        [v["density_std"] for v in table.values()],
        color="k",
        marker="_",
        ms=14,
        ls="-",
        lw=1,
        label=f"{short}, mean over cells",
    )
    ax[0].axhline(REFERENCE["a-SiO2 density g/cm3"], color="tab:red", ls="--", lw=1, label="a-SiO2 expt 2.20")
    ax[0].axhline(REFERENCE["a-Si density g/cm3"], color="tab:blue", ls=":", lw=1, label="a-Si expt 2.29")
    ax[0].set(xlabel="x in SiO$_x$", ylabel="density (g/cm$^3$)", title="(a) density")
    ax[0].legend(fontsize=8)

    # (b) Si-O bond length distribution
    bins = np.arange(1.45, 2.005, 0.01)
    for x, cells in groups.items():
        d = np.concatenate([an.bond_lengths(c, ("Si", "O")) for c in cells])
        if d.size == 0:
            continue
        h, e = np.histogram(d, bins=bins, density=True)
        ax[1].plot(0.5 * (e[1:] + e[:-1]), h, color=colour[x], label=f"x={x:g}")
    ax[1].axvline(REFERENCE["a-SiO2 Si-O A"], color="tab:red", ls="--", lw=1, label="a-SiO2 expt 1.61")
    ax[1].set(xlabel="Si-O bond length (Å)", ylabel="density (1/Å)", title="(b) Si-O distance")
    ax[1].legend(fontsize=7, ncol=2)

    # (c) Si coordination
    cns = range(2, 7)
    bottom = np.zeros(len(xs))
    for cn in cns:
        frac = np.array([v["si_cn_hist"].get(cn, 0.0) for v in table.values()])
        ax[2].bar(xs, frac, width=0.18, bottom=bottom, label=f"CN {cn}")
        bottom += frac
    ax[2].set(xlabel="x in SiO$_x$", ylabel="fraction of Si", title="(c) Si coordination (Si+O neighbours)")
    ax[2].legend(fontsize=7, loc="lower left", framealpha=0.9)

    # (d) Si-Si bond fraction
    ax[3].plot(xs, [v["si_si_bond_fraction"] for v in table.values()], "ko-", label=f"{short} glasses")
    xx = np.linspace(0, 2, 50)
    ax[3].plot(xx, 1 - xx / 2, "tab:gray", ls="--", label="random bonding 1 - x/2")
    ax[3].set(xlabel="x in SiO$_x$", ylabel="Si-Si / all Si bonds", title="(d) Si-Si bond fraction")
    ax[3].legend(fontsize=8)

    # (e) Si-O-Si angles
    abins = np.arange(60, 181, 2.0)
    for x, cells in groups.items():
        a = np.concatenate([an.bond_angles(c, ("Si", "O", "Si")) for c in cells])
        if a.size == 0:
            continue
        h, e = np.histogram(a, bins=abins, density=True)
        ax[4].plot(0.5 * (e[1:] + e[:-1]), h, color=colour[x], lw=2.5 if x == 2.0 else 1)
    lo, hi = REFERENCE["a-SiO2 Si-O-Si peak deg"]
    ax[4].axvspan(lo, hi, color="tab:red", alpha=0.15, label="a-SiO2 expt peak 144-150")
    ax[4].set(
        xlabel="Si-O-Si angle (deg)", ylabel="density (1/deg)", title="(e) Si-O-Si (thick: SiO$_2$; ~120: O with 3 Si)"
    )
    ax[4].legend(fontsize=8)

    # (f) O-Si-O angles
    for x, cells in groups.items():
        a = np.concatenate([an.bond_angles(c, ("O", "Si", "O")) for c in cells])
        if a.size:
            h, e = np.histogram(a, bins=abins, density=True)
            ax[5].plot(0.5 * (e[1:] + e[:-1]), h, color=colour[x], lw=2.5 if x == 2.0 else 1)
    ax[5].axvline(REFERENCE["tetrahedral deg"], color="tab:red", ls="--", lw=1, label="109.47")
    ax[5].set(xlabel="O-Si-O angle (deg)", ylabel="density (1/deg)", title="(f) O-Si-O (thick: SiO$_2$)")
    ax[5].legend(fontsize=8)

    # (g) Si^n fractions vs random bonding model
    for n in range(5):
        c = plt.get_cmap("plasma")(n / 5)
        ax[6].plot(xs, [v["si_n_fractions"][n] for v in table.values()], "o-", color=c, label=f"Si$^{{{n}+}}$")
        ax[6].plot(xx, [an.random_bonding_model(v)[n] for v in xx], "--", color=c, lw=0.8)
    ax[6].set(
        xlabel="x in SiO$_x$", ylabel="fraction of Si", title="(g) Si$^{n+}$ (n O neighbours); dashed: random bonding"
    )
    ax[6].legend(fontsize=8)

    # (h) partial RDFs of the two end members
    for x in (min(groups), max(groups)):
        for pair, ls in ((("Si", "O"), "-"), (("Si", "Si"), "--")):
            rs, gs = [], []
            for c in groups[x]:
                r, g = an.partial_rdf(c, pair, rmax=5.0, dr=0.02)
                rs, gs = r, gs + [g]
            ax[7].plot(rs, np.mean(gs, axis=0), ls, color=colour[x], label=f"x={x:g} g$_{{{'-'.join(pair)}}}$")
    ax[7].set(xlabel="r (Å)", ylabel="g(r)", title="(h) partial RDFs", ylim=(0, None))
    ax[7].legend(fontsize=8)

    fig.suptitle(f"Amorphous SiO$_x$ from {long}: checks against known facts")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_md_traces(structures: Sequence, path: Path) -> Path:
    """Temperature, density and energy per atom along the melt-quench of cell 0 of each x (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    groups = _group(structures)
    cmap = plt.get_cmap("viridis")
    for i, (x, cells) in enumerate(groups.items()):
        cell = cells[0]
        th = cell.properties.get("thermo")
        if not th:
            continue
        colour = cmap(i / max(len(groups) - 1, 1))
        t = np.asarray(th["time_ps"])
        n = len(cell)
        mass = an.as_atoms(cell).get_masses().sum()
        ax[0].plot(t, th["T"], color=colour, label=f"x={x:g}")
        ax[1].plot(t, mass * 1.66053906660 / np.asarray(th["vol"]), color=colour)
        ax[2].plot(t, np.asarray(th["pe"]) / n, color=colour)
    ax[0].set(xlabel="time (ps)", ylabel="T (K)", title="temperature (melt NVT, quench + anneal NPT)")
    ax[1].set(xlabel="time (ps)", ylabel="density (g/cm$^3$)", title="density")
    ax[2].set(xlabel="time (ps)", ylabel="E$_{pot}$ / atom (eV)", title="potential energy (last point: minimised)")
    ax[0].legend(fontsize=8, ncol=2)
    fig.suptitle("Melt-quench traces, cell 0 of each composition (2 ps samples)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
