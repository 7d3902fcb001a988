"""Files: atomic writes (temporary file in the same folder, then ``os.replace``) and SHA-256 digests.

Every writer of the library goes through :func:`atomic_path`, so an interrupted run never leaves a
half-written file behind: either the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, else delete it.

    ``suffix`` is appended to the temporary name, for writers that insist on an extension
    (``np.savez`` adds ``.npz`` unless the name has it).  Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def write_json(path: PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (numpy scalars and arrays allowed) atomically, with a final newline."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_json_default, allow_nan=True) + "\n")


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def text_sha256(text: str) -> str:
    """SHA-256 (hex) of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "write_json", "file_sha256", "text_sha256"]
