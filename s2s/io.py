"""Writing and reading generated environments (extended XYZ) and JSON results, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .environment import SPECIES, Environment


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

    return atomic_write_text(path, json.dumps(obj, indent=2, default=default, allow_nan=True) + "\n")


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
