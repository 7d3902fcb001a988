"""The one loader of PyTorch files a user can pass: models, training checkpoints, snapshots, forward models.

Every ``torch.load`` of s2s goes through :func:`load_checkpoint`, which

1. refuses what is not a file, an empty file, and anything that is not the zip archive ``torch.save``
   writes (text, a truncated download, an old-style pickle);
2. verifies the SHA-256 when the file's folder carries a ``SHA256SUMS`` sidecar naming it (the shipped
   models, ``models/<name>/SHA256SUMS``, in ``sha256sum`` format): a changed or damaged shipped model is
   refused;
3. checks the zip's CRC-32 of every record (``zipfile.ZipFile.testzip``): ``torch.load`` does not, so a
   file with flipped bytes would load silently and give other numbers;
4. unpickles with ``weights_only=True``: tensors, numbers, strings, lists and dicts only (plus the
   classes in :data:`SAFE_GLOBALS`, none today), so a file cannot run code when it is loaded;
5. requires a ``dict`` (every s2s file is one).

Any failure raises :class:`CheckpointError` (a ``ValueError``) whose one-line message names the file,
the problem and what was expected; the CLI prints it without a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from s2s.files import atomic_write_text, file_sha256

PathLike = str | os.PathLike

#: The sidecar a shipped model folder carries: ``<sha256>  <file name>`` per line (``sha256sum`` format).
SUMS_FILE = "SHA256SUMS"
#: Classes (beyond tensors and plain Python data) that s2s files may hold; each one must be safe to build
#: from its pickled state.  Every file s2s writes holds only plain data, so the list is empty; add a class
#: here (never a function) only when a file format needs it.
SAFE_GLOBALS: tuple = ()
#: What an s2s diffusion-model file is, for messages.
MODEL_FILE = "an s2s model file (model.pt or checkpoint.pt written by 's2s train')"


class CheckpointError(ValueError):
    """A model or checkpoint file that cannot be used; the message names the file and what was expected."""

    def __init__(self, path: PathLike, problem: str, expected: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        msg = f"{path}: {problem}"
        if expected:
            msg += f"; expected {expected}"
        super().__init__(msg)


def read_sums(folder: PathLike) -> dict[str, str]:
    """``{file name: sha256 hex}`` from ``folder/SHA256SUMS`` ({} when there is none).

    Lines are ``<64 hex digits>  <name>`` (``sha256sum``'s output; a ``*`` before the name, its binary
    mark, is allowed); blank lines and ``#`` comments are skipped.  A malformed line is an error."""
    f = Path(folder) / SUMS_FILE
    if not f.is_file():
        return {}
    out = {}
    for no, line in enumerate(f.read_text().splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            raise CheckpointError(f, f"line {no} is not '<sha256>  <file name>'", "sha256sum's format")
        out[parts[1].lstrip("*").strip()] = parts[0].lower()
    return out


def write_sums(folder: PathLike, names: list[str]) -> Path:
    """Write ``folder/SHA256SUMS`` for the files ``names`` of ``folder`` (atomically); returns its path."""
    folder = Path(folder)
    lines = [f"{file_sha256(folder / n)}  {n}" for n in sorted(names)]
    return atomic_write_text(folder / SUMS_FILE, "\n".join(lines) + "\n")


def expected_sha256(path: PathLike) -> str | None:
    """The SHA-256 that ``path``'s folder records for it in ``SHA256SUMS``, or None."""
    p = Path(path)
    return read_sums(p.parent).get(p.name)


def verify_sha256(path: PathLike, expected: str | None = None) -> str | None:
    """Check ``path`` against ``expected`` (default: its folder's ``SHA256SUMS`` entry); returns the digest
    checked (None when there is nothing to check against).  A mismatch raises :class:`CheckpointError`."""
    p = Path(path)
    want = expected if expected is not None else expected_sha256(p)
    if want is None:
        return None
    got = file_sha256(p)
    if got != want.lower():
        raise CheckpointError(
            p,
            f"SHA-256 {got[:12]}... differs from the {want[:12]}... recorded in {p.parent / SUMS_FILE}: the file "
            "is damaged or was replaced (restore it, e.g. 'git restore " + str(p) + "')",
            "the shipped file, byte for byte",
        )
    return got


def load_checkpoint(path: PathLike, what: str = MODEL_FILE, expected_sha256: str | None = None) -> dict[str, Any]:
    """Load a PyTorch file safely (module docstring): the state dict, on the CPU.

    ``what`` says what the file should be, for the messages (e.g. :data:`MODEL_FILE`).
    ``expected_sha256``: the digest the file must have; default the one its folder's ``SHA256SUMS``
    records (none: only the zip CRC-32 guards against damage).
    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` for everything else.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file; expected {what}")
    if not p.is_file():
        raise CheckpointError(p, "is a directory, not a file" if p.is_dir() else "is not a regular file", what)
    size = p.stat().st_size
    if size == 0:
        raise CheckpointError(p, "is empty (0 bytes)", what)
    verify_sha256(p, expected_sha256)
    if not zipfile.is_zipfile(p):
        with open(p, "rb") as fh:
            head = fh.read(64)
        kind = "a text file" if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "not a zip archive"
        raise CheckpointError(
            p, f"{kind} ({size} bytes), so not written by torch.save (or truncated)", f"{what} (a torch.save zip)"
        )
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(p, f"damaged zip archive ({exc})", what) from None
    if bad is not None:
        raise CheckpointError(p, f"damaged: record {bad!r} fails its CRC-32 check (changed or corrupted bytes)", what)
    allow = torch.serialization.safe_globals(list(SAFE_GLOBALS)) if SAFE_GLOBALS else contextlib.nullcontext()
    try:
        with allow:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        detail = f"it names {found.group(1)!r}" if found else " ".join(str(exc).split())[:120]
        raise CheckpointError(
            p,
            f"refused: it holds Python objects other than tensors and plain data, which could run code when "
            f"loaded ({detail}; s2s loads with torch.load(weights_only=True))",
            what,
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        msg = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise CheckpointError(p, f"cannot be read by torch.load ({type(exc).__name__}: {msg})", what) from None
    if not isinstance(state, dict):
        raise CheckpointError(p, f"holds a {type(state).__name__}, not a dict of entries", what)
    return state


def require_keys(state: dict, path: PathLike, keys: tuple[str, ...], what: str = MODEL_FILE) -> None:
    """Raise :class:`CheckpointError` naming ``path`` when ``state`` lacks any of ``keys``."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise CheckpointError(
            path, f"has no {', '.join(repr(k) for k in missing)} entr{'y' if len(missing) == 1 else 'ies'}", what
        )


__all__ = [
    "MODEL_FILE",
    "SAFE_GLOBALS",
    "SUMS_FILE",
    "CheckpointError",
    "expected_sha256",
    "load_checkpoint",
    "read_sums",
    "require_keys",
    "verify_sha256",
    "write_sums",
]
