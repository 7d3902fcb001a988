"""Where the shipped resources are: the model, the forward model, the dataset, ``results.json``.

This module alone knows the layout of a source checkout.  Every path is resolved as
**argument > environment variable > repository default**:

- an explicit argument (a CLI flag, a function argument) always wins;
- else the environment variable (``S2S_MODEL``, ``S2S_FORWARD``, ``S2S_DATA``, ``S2S_RESULTS``, ...);
- else the file inside the project home: ``S2S_HOME`` if set, else the source checkout this package
  was imported from (the folder holding ``pyproject.toml`` beside ``s2s/``).

When nothing resolves (an installed package without a checkout and no variable set), :func:`resolve`
raises a ``FileNotFoundError`` that says which flag or variable to set.
"""

from __future__ import annotations

import os
from pathlib import Path

#: name -> (environment variable, path inside the project home)
RESOURCES: dict[str, tuple[str, str]] = {
    "model": ("S2S_MODEL", "models/s2s_open_v9/model.pt"),
    "model_xtb": ("S2S_MODEL_XTB", "models/s2s_open_v6/model.pt"),
    "forward": ("S2S_FORWARD", "models/forward_v1/model.pt"),
    "forward_reference": ("S2S_FORWARD_REFERENCE", "models/forward_ref_v1/model.pt"),
    "fidelity_map": ("S2S_FIDELITY_MAP", "models/fidelity_map_v1/map.npz"),
    "data": ("S2S_DATA", "data/s2s_open_v1.h5"),
    "results": ("S2S_RESULTS", "figures/results.json"),
    "reference": ("S2S_REFERENCE", "data/reference"),
    "reference_sites": ("S2S_REFERENCE_SITES", "data/reference_sites"),
    "xtb_cache": ("S2S_XTB_CACHE", "data/cache/xtb"),
    "generated_cache": ("S2S_GENERATED_CACHE", "runs/generated"),
}
HOME_VARIABLE = "S2S_HOME"


def home() -> Path | None:
    """The project home: ``$S2S_HOME``, else the source checkout of this package, else ``None``."""
    env = os.environ.get(HOME_VARIABLE)
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "s2s").is_dir():
        return checkout
    return None


def default_path(name: str) -> Path | None:
    """The path of resource ``name`` from its environment variable or the project home (not checked)."""
    if name not in RESOURCES:
        raise KeyError(f"unknown resource {name!r}; known: {', '.join(RESOURCES)}")
    var, rel = RESOURCES[name]
    env = os.environ.get(var)
    if env:
        return Path(env).expanduser()
    h = home()
    return None if h is None else h / rel


def resolve(name: str, arg: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """Resource ``name``: ``arg`` if given, else :func:`default_path`; with ``must_exist``, a clear error if absent."""
    path = Path(arg).expanduser() if arg is not None else default_path(name)
    var, rel = RESOURCES[name]
    if path is None:
        raise FileNotFoundError(
            f"no {name} given and no project home found: pass the path, or set {var} "
            f"(or {HOME_VARIABLE} to a checkout holding {rel})"
        )
    if must_exist and not path.exists():
        how = "given" if arg is not None else (f"from ${var}" if os.environ.get(var) else "the default")
        raise FileNotFoundError(f"{name}: {path} ({how}) does not exist; pass another path or set {var}")
    return path


__all__ = ["RESOURCES", "HOME_VARIABLE", "home", "default_path", "resolve"]
