"""Files: atomic writes (temporary file in the same folder, then ``os.replace``) and SHA-256 digests.

Every writer of the library goes through :func:`atomic_path`, so an interrupted run never leaves a
half-written file behind: either the old file or the complete new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PathLike = str | os.PathLike


#: Temporary files of :func:`atomic_path`: ``.NAME.PID.TOKEN.tmp[SUFFIX]`` (PID: the writing process).
TMP_FILE_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(\.\w+)?$")
#: Temporary folders of ``s2s predict`` (:func:`s2s.predict.report.write_prediction`): ``.NAME.partial-PID``
#: (being built) and ``.NAME.replaced-PID`` (a finished output being replaced).
PARTIAL_DIR_RE = re.compile(r"^\.(?P<name>.+)\.(?:partial|replaced)-(?P<pid>\d+)$")
#: Per-name locks of ``s2s predict``: ``.NAME.s2s-lock`` (an empty file held with ``flock`` while NAME is written).
LOCK_RE = re.compile(r"^\..+\.s2s-lock$")


def _new_temp_file(folder: Path, name: str, suffix: str) -> Path:
    """Create an empty, new file ``folder/.NAME.PID.TOKEN.tmpSUFFIX`` with the mode ``open()`` gives
    (0666 less the process umask, unlike ``mkstemp``'s 0600) and return its path."""
    for _ in range(100):
        tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{folder}: could not create a temporary file for {name}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a process of another user counts as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class FileLock:
    """An exclusive, non-blocking ``flock`` on a lock file (released by the kernel if the process dies).

    ``FileLock.acquire(path)`` returns the held lock, or None when another process holds it;
    :meth:`release` unlinks the file and drops the lock.  The lock file is re-checked after locking
    (same inode as the path), so a lock file removed and re-created meanwhile is never shared."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, path: PathLike) -> "FileLock | None":
        import fcntl

        path = Path(path)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return cls(path, fd)
            os.close(fd)  # the file was removed (released by its holder) between open and lock: retry

    def release(self) -> None:
        """Remove the lock file and release the lock."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_held(path: Path) -> bool:
    """Whether some process (on any host sharing the file system) holds the :class:`FileLock` ``path``."""
    if not path.is_file():
        return False
    lock = FileLock.acquire(path)
    if lock is None:
        return True
    lock.release()
    return False


def clean_stale(folder: PathLike) -> list[Path]:
    """Remove what killed s2s processes left in ``folder`` (not recursive): temporary files of
    :func:`atomic_path` (``.NAME.PID.TOKEN.tmp*``) and ``s2s predict``'s ``.NAME.partial-PID/`` and
    ``.NAME.replaced-PID/`` folders, each only when process PID no longer runs (and, for the folders,
    nobody holds the name's lock: PIDs are per host, locks are seen by every host sharing the folder),
    and lock files (``.NAME.s2s-lock``) no process holds.  Returns what was removed; anything else, and anything of a
    live process, is left alone."""
    import shutil

    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in sorted(folder.iterdir()):
        if not p.name.startswith(".") or p.is_symlink():
            continue
        m = TMP_FILE_RE.match(p.name) if p.is_file() else PARTIAL_DIR_RE.match(p.name) if p.is_dir() else None
        try:
            if m is not None and not pid_alive(int(m.group("pid"))):
                if p.is_dir() and _lock_held(folder / f".{m.group('name')}.s2s-lock"):
                    continue  # its writer holds the name's lock: a run on another host sharing this folder
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed.append(p)
            elif p.is_file() and LOCK_RE.match(p.name):
                lock = FileLock.acquire(p)
                if lock is not None:  # nobody holds it: a leftover
                    lock.release()
                    removed.append(p)
        except FileNotFoundError:  # another process cleaned it first
            continue
    return removed


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, else delete it.

    ``suffix`` is appended to the temporary name, for writers that insist on an extension
    (``np.savez`` adds ``.npz`` unless the name has it).  Parent folders are created.  The temporary
    name carries the process id (``.NAME.PID.TOKEN.tmp``), so :func:`clean_stale` can remove what a
    killed process left; the file gets the mode of any new file (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path.parent, path.name, suffix)
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


__all__ = [
    "LOCK_RE",
    "PARTIAL_DIR_RE",
    "TMP_FILE_RE",
    "FileLock",
    "clean_stale",
    "pid_alive",
    "atomic_path",
    "atomic_write_text",
    "atomic_write_bytes",
    "write_json",
    "file_sha256",
    "text_sha256",
]
