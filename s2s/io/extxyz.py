"""Generated environments as extended XYZ (written atomically through :mod:`s2s.files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from s2s.environment import SPECIES, Environment
from s2s.files import atomic_write_text


def environments_to_extxyz(envs: Sequence[Environment], comments: Sequence[str] | None = None) -> str:
    """Extended XYZ text: one frame per environment, excited atom first, per-atom ``shell``."""
    lines: list[str] = []
    for k, env in enumerate(envs):
        comment = comments[k] if comments else ""
        lines.append(str(env.n_atoms))
        extra = f" {comment}" if comment else ""
        lines.append(f'Properties=species:S:1:pos:R:3:shell:I:1 pbc="F F F"{extra}')
        for s, (x, y, z), sh in zip(env.species, env.coords, env.shell):
            lines.append(f"{SPECIES[s]:<2s} {x:14.8f} {y:14.8f} {z:14.8f} {int(sh):d}")
    return "\n".join(lines) + "\n"


def write_extxyz(path: str | Path, envs: Sequence[Environment], comments: Sequence[str] | None = None) -> Path:
    return atomic_write_text(path, environments_to_extxyz(envs, comments))


def read_extxyz(path: str | Path) -> list[Environment]:
    """Read environments written by :func:`write_extxyz` (via ASE)."""
    from ase.io import read

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    out = []
    for atoms in read(path, index=":", format="extxyz"):
        sym = atoms.get_chemical_symbols()
        bad = sorted(set(sym) - set(SPECIES))
        if bad:
            raise ValueError(f"{path}: species {bad} not in {SPECIES}")
        shell = atoms.arrays.get("shell", np.zeros(len(atoms), int))
        out.append(Environment([SPECIES.index(s) for s in sym], atoms.positions, shell))
    return out
