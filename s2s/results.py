"""``figures/results.json``: the machine-readable record of every headline number.

Each producer (the dataset build, each notebook) owns one top-level key and replaces it
atomically; other keys are kept.  A lock file serialises concurrent writers.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from .io import write_json

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "figures" / "results.json"


def read_results(path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level")
    return data


def update_results(key: str, value: Any, path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    """Set ``results[key] = value`` (replacing that key only), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            data = read_results(path)
            data[key] = value
            write_json(path, dict(sorted(data.items())))
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    try:
        os.unlink(lock)
    except FileNotFoundError:
        pass
    return data
