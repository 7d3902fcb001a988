"""Figures of the amorphous SiO_x glasses: the glass checks and the melt-quench traces (PNG files).

:func:`plot_checks` draws the eight panels of :func:`s2s.amorphous.checks.checks_table` against
known facts about SiO_x glasses (:data:`s2s.amorphous.checks.REFERENCE`); :func:`plot_md_traces`
draws temperature, density and energy along the melt-quench of one cell per composition.
Distances in Å, angles in degrees, densities in g/cm^3, energies in eV.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2s.amorphous import analysis as an
from s2s.amorphous.checks import REFERENCE, checks_table, group_by_x

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
    groups = group_by_x(structures)
    xs = np.array([v["x"] for v in table.values()])
    cmap = plt.get_cmap("viridis")
    colour = {x: cmap(i / max(len(xs) - 1, 1)) for i, x in enumerate(xs)}
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5))
    ax = axes.ravel()
    _density_panel(ax[0], groups, table, xs, colour, short)
    _si_o_panel(ax[1], groups, colour)
    _coordination_panel(ax[2], table, xs)
    xx = np.linspace(0, 2, 50)
    _si_si_panel(ax[3], table, xs, xx, short)
    abins = np.arange(60, 181, 2.0)
    _angle_panels(ax[4], ax[5], groups, colour, abins)
    _si_n_panel(ax[6], table, xs, xx, plt.get_cmap("plasma"))
    _rdf_panel(ax[7], groups, colour)
    fig.suptitle(f"Amorphous SiO$_x$ from {long}: checks against known facts")
    fig.tight_layout()
    return _save_png(fig, path, 110)


def _density_panel(ax, groups: dict, table: dict, xs: np.ndarray, colour: dict, short: str) -> None:
    """(a) density per cell and the mean over cells, against a-SiO2 and a-Si experiment."""
    for x, cells in groups.items():
        ax.plot([x] * len(cells), [an.density(c) for c in cells], "o", color=colour[x], alpha=0.6)
    ax.errorbar(
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
    ax.axhline(REFERENCE["a-SiO2 density g/cm3"], color="tab:red", ls="--", lw=1, label="a-SiO2 expt 2.20")
    ax.axhline(REFERENCE["a-Si density g/cm3"], color="tab:blue", ls=":", lw=1, label="a-Si expt 2.29")
    ax.set(xlabel="x in SiO$_x$", ylabel="density (g/cm$^3$)", title="(a) density")
    ax.legend(fontsize=8)


def _si_o_panel(ax, groups: dict, colour: dict) -> None:
    """(b) Si-O bond length distribution per x."""
    bins = np.arange(1.45, 2.005, 0.01)
    for x, cells in groups.items():
        d = np.concatenate([an.bond_lengths(c, ("Si", "O")) for c in cells])
        if d.size == 0:
            continue
        h, e = np.histogram(d, bins=bins, density=True)
        ax.plot(0.5 * (e[1:] + e[:-1]), h, color=colour[x], label=f"x={x:g}")
    ax.axvline(REFERENCE["a-SiO2 Si-O A"], color="tab:red", ls="--", lw=1, label="a-SiO2 expt 1.61")
    ax.set(xlabel="Si-O bond length (Å)", ylabel="density (1/Å)", title="(b) Si-O distance")
    ax.legend(fontsize=7, ncol=2)


def _coordination_panel(ax, table: dict, xs: np.ndarray) -> None:
    """(c) Si coordination (Si + O neighbours), stacked fractions per x."""
    bottom = np.zeros(len(xs))
    for cn in range(2, 7):
        frac = np.array([v["si_cn_hist"].get(cn, 0.0) for v in table.values()])
        ax.bar(xs, frac, width=0.18, bottom=bottom, label=f"CN {cn}")
        bottom += frac
    ax.set(xlabel="x in SiO$_x$", ylabel="fraction of Si", title="(c) Si coordination (Si+O neighbours)")
    ax.legend(fontsize=7, loc="lower left", framealpha=0.9)


def _si_si_panel(ax, table: dict, xs: np.ndarray, xx: np.ndarray, short: str) -> None:
    """(d) Si-Si bond fraction against random bonding 1 - x/2."""
    ax.plot(xs, [v["si_si_bond_fraction"] for v in table.values()], "ko-", label=f"{short} glasses")
    ax.plot(xx, 1 - xx / 2, "tab:gray", ls="--", label="random bonding 1 - x/2")
    ax.set(xlabel="x in SiO$_x$", ylabel="Si-Si / all Si bonds", title="(d) Si-Si bond fraction")
    ax.legend(fontsize=8)


def _angle_panels(ax_sios, ax_osio, groups: dict, colour: dict, abins: np.ndarray) -> None:
    """(e) Si-O-Si and (f) O-Si-O angle distributions per x (SiO2 thick)."""
    for x, cells in groups.items():
        a = np.concatenate([an.bond_angles(c, ("Si", "O", "Si")) for c in cells])
        if a.size == 0:
            continue
        h, e = np.histogram(a, bins=abins, density=True)
        ax_sios.plot(0.5 * (e[1:] + e[:-1]), h, color=colour[x], lw=2.5 if x == 2.0 else 1)
    lo, hi = REFERENCE["a-SiO2 Si-O-Si peak deg"]
    ax_sios.axvspan(lo, hi, color="tab:red", alpha=0.15, label="a-SiO2 expt peak 144-150")
    ax_sios.set(
        xlabel="Si-O-Si angle (deg)", ylabel="density (1/deg)", title="(e) Si-O-Si (thick: SiO$_2$; ~120: O with 3 Si)"
    )
    ax_sios.legend(fontsize=8)
    for x, cells in groups.items():
        a = np.concatenate([an.bond_angles(c, ("O", "Si", "O")) for c in cells])
        if a.size:
            h, e = np.histogram(a, bins=abins, density=True)
            ax_osio.plot(0.5 * (e[1:] + e[:-1]), h, color=colour[x], lw=2.5 if x == 2.0 else 1)
    ax_osio.axvline(REFERENCE["tetrahedral deg"], color="tab:red", ls="--", lw=1, label="109.47")
    ax_osio.set(xlabel="O-Si-O angle (deg)", ylabel="density (1/deg)", title="(f) O-Si-O (thick: SiO$_2$)")
    ax_osio.legend(fontsize=8)


def _si_n_panel(ax, table: dict, xs: np.ndarray, xx: np.ndarray, cmap) -> None:
    """(g) Si^n+ fractions (n O neighbours) against the random bonding model (dashed)."""
    for n in range(5):
        c = cmap(n / 5)
        ax.plot(xs, [v["si_n_fractions"][n] for v in table.values()], "o-", color=c, label=f"Si$^{{{n}+}}$")
        ax.plot(xx, [an.random_bonding_model(v)[n] for v in xx], "--", color=c, lw=0.8)
    ax.set(
        xlabel="x in SiO$_x$", ylabel="fraction of Si", title="(g) Si$^{n+}$ (n O neighbours); dashed: random bonding"
    )
    ax.legend(fontsize=8)


def _rdf_panel(ax, groups: dict, colour: dict) -> None:
    """(h) partial RDFs (Si-O, Si-Si) of the two end members, mean over cells."""
    for x in (min(groups), max(groups)):
        for pair, ls in ((("Si", "O"), "-"), (("Si", "Si"), "--")):
            rs, gs = [], []
            for c in groups[x]:
                r, g = an.partial_rdf(c, pair, rmax=5.0, dr=0.02)
                rs, gs = r, gs + [g]
            ax.plot(rs, np.mean(gs, axis=0), ls, color=colour[x], label=f"x={x:g} g$_{{{'-'.join(pair)}}}$")
    ax.set(xlabel="r (Å)", ylabel="g(r)", title="(h) partial RDFs", ylim=(0, None))
    ax.legend(fontsize=8)


def plot_md_traces(structures: Sequence, path: Path) -> Path:
    """Temperature, density and energy per atom along the melt-quench of cell 0 of each x (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    groups = group_by_x(structures)
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
    return _save_png(fig, path, 100)


def _save_png(fig, path: Path, dpi: int) -> Path:
    """Write ``fig`` to ``path`` (PNG at ``dpi``) through a temporary file, close it; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path
