"""The network family's protocol, composition and seeds (:mod:`s2s.amorphous.network`).

:class:`NetworkProtocol` holds every parameter of the construction (LAMMPS metal units, Å, K, ps),
:class:`NetworkRejected` is raised by the step that drops a parent or a cell, and the composition
helpers give the exact O count of SiO_x (``x * n_Si``, 0 < x <= 2) and the per-cell seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from ase import Atoms

SOURCE = "amorphous-network-chgnet"

#: Stillinger-Weber parameters (LAMMPS ``Si.sw`` order: epsilon sigma a lambda gamma
#: costheta0 A B p q tol).  "sw": Stillinger & Weber, PRB 31, 5262 (1985);
#: "sw-vink": Vink, Barkema, van der Weg & Mousseau, J. Non-Cryst. Solids 282, 248 (2001),
#: fitted to a-Si (fewer coordination defects).
SW_PARAMS: dict[str, tuple[float, ...]] = {
    "sw": (2.1683, 2.0951, 1.80, 21.0, 1.20, -1.0 / 3.0, 7.049556277, 0.6022245584, 4.0, 0.0, 0.0),
    "sw-vink": (1.64833, 2.0951, 1.80, 31.5, 1.20, -1.0 / 3.0, 7.049556277, 0.6022245584, 4.0, 0.0, 0.0),
}

FAMILIES = ("tersoff", "network")


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


# --------------------------------------------------------------------------- composition and seeds


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


def insertion_seed(seed: int, attempt: int = 0) -> int:
    """Seed of the O insertion, try ``attempt`` on the same parent: ``seed + 1`` first (the only one
    before ``insert_tries``), then ``100 (seed + 1) + attempt`` (far from every cell and parent seed)."""
    return int(seed) + 1 if attempt == 0 else 100 * (int(seed) + 1) + int(attempt)


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
    defaults = {f.name: f.default for f in dataclasses.fields(NetworkProtocol)}
    now = protocol.to_dict()
    if set(stored) - set(now):
        return False
    return all(stored[k] == v if k in stored else v == VALUE_BEFORE_FIELD.get(k, defaults[k]) for k, v in now.items())
