"""The s2s dataset: one versioned HDF5 file of O K-edge site spectra and their environments.

A dataset is a list of :class:`SiteRecord` (one symmetrically unique excited O site each:
its spectrum on the 200-point grid, its local :class:`~s2s.environment.Environment`,
provenance) plus the crystal structures they come from (pymatgen JSON, one per
structure id) and a small metadata dict (creation record, split seed).

File layout (format version 1; see ``docs/dataset_format.md``)::

    /                       attrs: format="s2s-dataset", format_version=1, grid_start_eV,
                            grid_step_eV, grid_n, created_utc, software (JSON),
                            split_seed, split_test_fraction, meta (JSON)
    /sites/spectrum         (M, 200) float64   intensity on the grid, unit area
    /sites/structure_id     (M,) str
    /sites/site_index       (M,) int64         index of the excited O in the structure
    /sites/multiplicity     (M,) int64         symmetry-equivalent O sites it stands for
    /sites/formula          (M,) str           reduced formula of the structure
    /sites/x                (M,) float64       composition x = O/Si (SiO_x)
    /sites/source           (M,) str           where the structure came from
    /sites/simulator        (M,) str           spectrum simulator name
    /sites/settings_index   (M,) int64         row of /settings/json
    /sites/split            (M,) str           "train", "test" or "" (unsplit)
    /sites/meta             (M,) str           per-site JSON (free form)
    /sites/env_meta         (M,) str           Environment.meta as JSON
    /sites/env_offsets      (M+1,) int64       atoms of site i: [offsets[i], offsets[i+1])
    /environments/species   (N_total,) int8    index into SPECIES (Si=0, O=1)
    /environments/coords    (N_total, 3) float64  Å, excited O at the origin
    /environments/shell     (N_total,) int8    0 = excited atom, 1/2/3 = shells
    /settings/json          (U,) str           unique simulator settings (JSON)
    /structures/id          (S,) str
    /structures/json        (S,) str           pymatgen ``Structure.as_dict()`` as JSON

Everything is written to a temporary file first and ``os.replace``'d into place.
The train/test and validation splits (:func:`~s2s.splits.make_split`, :func:`~s2s.splits.validation_split`)
live in :mod:`s2s.splits`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from s2s.environment import Environment
from s2s.site_record import (  # SiteRecord and its labels: re-exported (__all__)
    FIDELITIES,
    SIMULATOR_FIDELITY,
    SPLITS,
    SiteRecord,
    canonical_json,
    x_from_formula,
)
from s2s.spectrum import GRID_START, GRID_STEP, N_GRID  # the grid of every record (eV)

#: Name written in the file's ``format`` attribute.
FORMAT_NAME = "s2s-dataset"
#: Current on-disk format version; files with a larger number are refused.
FORMAT_VERSION = 1
_STR = h5py.string_dtype(encoding="utf-8")


class DatasetFormatError(ValueError):
    """A dataset file is not what this version of s2s can read (names the file and field)."""


# --------------------------------------------------------------------------- dataset
def _structure_json(s: Any, sid: str) -> str:
    """A structure (pymatgen Structure, its dict, or a JSON string) as a JSON string."""
    if isinstance(s, str):
        try:
            json.loads(s)
        except json.JSONDecodeError as exc:
            raise ValueError(f"structure {sid!r}: not valid JSON ({exc})") from None
        return s
    if isinstance(s, Mapping):
        return canonical_json(dict(s), f"structure {sid!r}")
    if hasattr(s, "as_dict"):
        return canonical_json(s.as_dict(), f"structure {sid!r}")
    raise TypeError(f"structure {sid!r}: expected a pymatgen Structure, dict or JSON string, got {type(s).__name__}")


def _creation_record() -> dict[str, Any]:
    import s2s

    return {
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "software": {
            "s2s": getattr(s2s, "__version__", "unknown"),
            "numpy": np.__version__,
            "h5py": h5py.__version__,
            "python": platform.python_version(),
        },
    }


class Dataset(Sequence):
    """A list of :class:`SiteRecord` plus the structures they come from and metadata.

    ``structures`` maps structure id -> pymatgen JSON string; ``meta`` is a JSON-serialisable
    dict that holds the creation record (``created_utc``, ``software``) and, after
    :func:`make_split`, ``split_seed`` and ``split_test_fraction``.
    """

    def __init__(
        self,
        records: Iterable[SiteRecord] = (),
        structures: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self._records: list[SiteRecord] = list(records)
        for i, r in enumerate(self._records):
            if not isinstance(r, SiteRecord):
                raise TypeError(f"Dataset: item {i} is a {type(r).__name__}, expected SiteRecord")
        self.structures: dict[str, str] = {str(k): _structure_json(v, str(k)) for k, v in (structures or {}).items()}
        self.meta: dict[str, Any] = dict(meta or {})
        canonical_json(self.meta, "Dataset.meta")

    @classmethod
    def from_records(
        cls,
        records: Iterable[SiteRecord],
        structures: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Dataset:
        """A new dataset with a fresh creation record (kept in ``meta`` unless given there).

        Structures may be pymatgen ``Structure`` objects, their ``as_dict()`` or JSON strings.
        Raises ``ValueError`` if two records share (structure_id, site_index, simulator).
        """
        meta = {**_creation_record(), **dict(meta or {})}
        ds = cls(records, structures, meta)
        seen: set[tuple[str, int, str]] = set()
        for r in ds:
            k = (r.structure_id, r.site_index, r.simulator)
            if k in seen:
                raise ValueError(f"Dataset.from_records: duplicate site {k}")
            seen.add(k)
        return ds

    # ---- list-like access
    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return self._subset(self._records[idx])
        if isinstance(idx, (list, np.ndarray)):
            idx = np.asarray(idx)
            if idx.dtype == bool:
                idx = np.flatnonzero(idx)
            return self._subset([self._records[int(i)] for i in idx])
        return self._records[idx]

    def __iter__(self) -> Iterator[SiteRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        n_split = {s: sum(r.split == s for r in self) for s in ("train", "test")}
        return (
            f"Dataset({len(self)} sites, {len(self.structure_ids())} structures, "
            f"train={n_split['train']}, test={n_split['test']})"
        )

    def _subset(self, records: list[SiteRecord]) -> Dataset:
        ids = {r.structure_id for r in records}
        structures = {k: v for k, v in self.structures.items() if k in ids}
        return Dataset(records, structures, self.meta)

    # ---- views
    @property
    def records(self) -> list[SiteRecord]:
        """The records (a copy of the list; the records themselves are shared)."""
        return list(self._records)

    def structure_ids(self) -> list[str]:
        """Sorted unique structure ids referenced by the records."""
        return sorted({r.structure_id for r in self._records})

    def structure(self, structure_id: str):
        """The pymatgen ``Structure`` of ``structure_id``."""
        from pymatgen.core import Structure

        try:
            text = self.structures[structure_id]
        except KeyError:
            raise KeyError(f"Dataset: no structure stored for id {structure_id!r}") from None
        return Structure.from_dict(json.loads(text))

    def spectra(self) -> np.ndarray:
        """(M, 200) array of the spectra on :data:`GRID`."""
        if not self._records:
            return np.zeros((0, N_GRID))
        return np.stack([r.spectrum for r in self._records])

    def environments(self) -> list[Environment]:
        """The M environments, in record order."""
        return [r.environment for r in self._records]

    def filter(self, predicate: Callable[[SiteRecord], bool]) -> Dataset:
        """The records for which ``predicate(record)`` is true (structures pruned to match)."""
        return self._subset([r for r in self._records if predicate(r)])

    def fidelity(self, name: str) -> Dataset:
        """The records of one spectrum fidelity (:data:`FIDELITIES`; :attr:`SiteRecord.fidelity`)."""
        if name not in FIDELITIES:
            raise ValueError(f"Dataset.fidelity: expected one of {FIDELITIES}, got {name!r}")
        return self.filter(lambda r: r.fidelity == name)

    def split(self, name: str) -> Dataset:
        """The ``"train"`` or ``"test"`` part (``""``: records not yet assigned)."""
        if name not in SPLITS:
            raise ValueError(f"Dataset.split: name must be one of {SPLITS}, got {name!r}")
        return self.filter(lambda r: r.split == name)

    @property
    def train(self) -> Dataset:
        return self.split("train")

    @property
    def test(self) -> Dataset:
        return self.split("test")

    # ---- I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Write the dataset to ``path`` (HDF5), atomically (temp file, then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                _write(f, self)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Dataset:
        """Read a dataset written by :meth:`save`.

        Raises ``FileNotFoundError`` for a missing file and :class:`DatasetFormatError`
        (naming the file, the field and what was expected) for anything else unreadable,
        including a format version newer than :data:`FORMAT_VERSION`.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"dataset file not found: {path}")
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise DatasetFormatError(f"{path}: not an HDF5 file ({exc})") from None
        with f:
            return _read(f, path)


# --------------------------------------------------------------------------- HDF5 I/O
def _put(group: h5py.Group, name: str, data: Any, dtype: Any) -> None:
    arr = np.asarray(data, dtype=dtype)
    kw: dict[str, Any] = {}
    if arr.size > 1024:
        kw = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    group.create_dataset(name, data=arr, dtype=dtype, **kw)


def _put_str(group: h5py.Group, name: str, values: Sequence[str]) -> None:
    group.create_dataset(name, shape=(len(values),), dtype=_STR, data=list(values) if values else None)


def _write(f: h5py.File, ds: Dataset) -> None:
    recs = ds.records
    m = len(recs)
    missing = sorted({r.structure_id for r in recs} - set(ds.structures))
    meta = dict(ds.meta)
    if not {"created_utc", "software"} <= meta.keys():
        meta = {**_creation_record(), **meta}
    f.attrs["format"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["grid_start_eV"] = float(GRID_START)
    f.attrs["grid_step_eV"] = float(GRID_STEP)
    f.attrs["grid_n"] = N_GRID
    f.attrs["created_utc"] = str(meta["created_utc"])
    f.attrs["software"] = canonical_json(meta["software"], "meta['software']")
    f.attrs["split_seed"] = -1 if meta.get("split_seed") is None else int(meta["split_seed"])
    f.attrs["split_test_fraction"] = float(meta.get("split_test_fraction", math.nan))
    f.attrs["structures_missing"] = len(missing)
    f.attrs["meta"] = canonical_json(meta, "Dataset.meta")

    sites = f.create_group("sites")
    _put(sites, "spectrum", np.stack([r.spectrum for r in recs]) if m else np.zeros((0, N_GRID)), np.float64)
    _put_str(sites, "structure_id", [r.structure_id for r in recs])
    _put(sites, "site_index", [r.site_index for r in recs], np.int64)
    _put(sites, "multiplicity", [r.multiplicity for r in recs], np.int64)
    _put_str(sites, "formula", [r.formula for r in recs])
    _put(sites, "x", [r.x for r in recs], np.float64)
    _put_str(sites, "source", [r.source for r in recs])
    _put_str(sites, "simulator", [r.simulator for r in recs])
    settings_json = [canonical_json(r.settings, "settings") for r in recs]
    table = sorted(set(settings_json))
    row = {s: i for i, s in enumerate(table)}
    _put(sites, "settings_index", [row[s] for s in settings_json], np.int64)
    _put_str(sites, "split", [r.split for r in recs])
    _put_str(sites, "meta", [canonical_json(r.meta, "meta") for r in recs])
    _put_str(sites, "env_meta", [canonical_json(r.environment.meta, "Environment.meta") for r in recs])
    counts = [r.environment.n_atoms for r in recs]
    _put(sites, "env_offsets", np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]), np.int64)

    env = f.create_group("environments")
    cat = lambda a, shape: np.concatenate(a) if a else np.zeros(shape)  # noqa: E731
    _put(env, "species", cat([r.environment.species for r in recs], (0,)), np.int8)
    _put(env, "coords", cat([r.environment.coords for r in recs], (0, 3)), np.float64)
    _put(env, "shell", cat([r.environment.shell for r in recs], (0,)), np.int8)

    _put_str(f.create_group("settings"), "json", table)
    st = f.create_group("structures")
    ids = sorted(ds.structures)
    _put_str(st, "id", ids)
    _put_str(st, "json", [ds.structures[k] for k in ids])


def _field(f: h5py.File, name: str, path: Path, expect: str, *, ndim: int, kind: str, n: int | None = None):
    """Read dataset ``name``, checking presence, rank, dtype kind and leading length."""
    if name not in f:
        raise DatasetFormatError(f"{path}: missing field '/{name}' (expected {expect})")
    d = f[name]
    if not isinstance(d, h5py.Dataset):
        raise DatasetFormatError(f"{path}: '/{name}' is a group, expected a dataset ({expect})")
    is_str = h5py.check_string_dtype(d.dtype) is not None
    ok_kind = is_str if kind == "str" else (not is_str and d.dtype.kind in kind)
    if d.ndim != ndim or not ok_kind:
        raise DatasetFormatError(f"{path}: field '/{name}' has shape {d.shape} and dtype {d.dtype}, expected {expect}")
    if n is not None and d.shape[0] != n:
        raise DatasetFormatError(f"{path}: field '/{name}' has length {d.shape[0]}, expected {n} ({expect})")
    return d.asstr()[()] if is_str else d[()]


def _attr(f: h5py.File, name: str, path: Path, expect: str):
    if name not in f.attrs:
        raise DatasetFormatError(f"{path}: missing attribute '{name}' (expected {expect})")
    return f.attrs[name]


def _loads(text: str, path: Path, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{path}: {where} is not valid JSON ({exc})") from None


def _read(f: h5py.File, path: Path) -> Dataset:
    fmt = f.attrs.get("format")
    if fmt is None:
        raise DatasetFormatError(f"{path}: not an s2s dataset (no 'format' attribute; expected format='{FORMAT_NAME}')")
    if str(fmt) != FORMAT_NAME:
        raise DatasetFormatError(f"{path}: format is {fmt!r}, expected {FORMAT_NAME!r}")
    version = int(_attr(f, "format_version", path, f"integer <= {FORMAT_VERSION}"))
    if version > FORMAT_VERSION:
        raise DatasetFormatError(
            f"{path}: written with dataset format version {version}, newer than this s2s reads "
            f"(<= {FORMAT_VERSION}); upgrade s2s to read it"
        )
    if version < 1:
        raise DatasetFormatError(f"{path}: unsupported dataset format version {version} (expected 1)")
    n_grid = int(_attr(f, "grid_n", path, f"{N_GRID}"))
    start = float(_attr(f, "grid_start_eV", path, f"{GRID_START}"))
    step = float(_attr(f, "grid_step_eV", path, f"{GRID_STEP}"))
    if n_grid != N_GRID or not np.isclose(start, GRID_START) or not np.isclose(step, GRID_STEP):
        raise DatasetFormatError(
            f"{path}: spectra are on a grid of {n_grid} points from {start} eV in {step} eV steps, "
            f"expected {N_GRID} points from {GRID_START} eV in {GRID_STEP} eV steps"
        )
    meta = _loads(str(_attr(f, "meta", path, "JSON object")), path, "attribute 'meta'")

    spec = _field(f, "sites/spectrum", path, f"(M, {N_GRID}) float array", ndim=2, kind="f")
    m = spec.shape[0]
    if spec.shape[1] != N_GRID:
        raise DatasetFormatError(f"{path}: field '/sites/spectrum' has {spec.shape[1]} columns, expected {N_GRID}")

    def col(name: str, expect: str, kind: str, n: int | None = m, ndim: int = 1):
        return _field(f, name, path, expect, ndim=ndim, kind=kind, n=n)

    sid = col("sites/structure_id", "(M,) str", "str")
    site_index = col("sites/site_index", "(M,) int", "iu")
    mult = col("sites/multiplicity", "(M,) int", "iu")
    formula = col("sites/formula", "(M,) str", "str")
    x = col("sites/x", "(M,) float", "f")
    source = col("sites/source", "(M,) str", "str")
    simulator = col("sites/simulator", "(M,) str", "str")
    settings_index = col("sites/settings_index", "(M,) int", "iu")
    split = col("sites/split", "(M,) str", "str")
    site_meta = col("sites/meta", "(M,) JSON str", "str")
    env_meta = col("sites/env_meta", "(M,) JSON str", "str")
    offsets = col("sites/env_offsets", "(M+1,) int", "iu", n=m + 1)
    species = col("environments/species", "(N,) int", "iu", n=None)
    n_atoms = species.shape[0]
    coords = col("environments/coords", "(N, 3) float", "f", n=n_atoms, ndim=2)
    shell = col("environments/shell", "(N,) int", "iu", n=n_atoms)
    table = col("settings/json", "(U,) JSON str", "str", n=None)
    st_ids = col("structures/id", "(S,) str", "str", n=None)
    st_json = col("structures/json", "(S,) str", "str", n=len(st_ids))

    if coords.shape[1] != 3:
        raise DatasetFormatError(f"{path}: field '/environments/coords' has shape {coords.shape}, expected (N, 3)")
    if m and (offsets[0] != 0 or offsets[-1] != n_atoms or np.any(np.diff(offsets) < 1)):
        raise DatasetFormatError(
            f"{path}: field '/sites/env_offsets' is inconsistent (expected 0, increasing, ending at {n_atoms})"
        )
    if m and (settings_index.min() < 0 or settings_index.max() >= len(table)):
        raise DatasetFormatError(f"{path}: field '/sites/settings_index' points outside '/settings/json'")
    settings = [_loads(t, path, f"'/settings/json'[{i}]") for i, t in enumerate(table)]

    records = []
    for i in range(m):
        a, b = int(offsets[i]), int(offsets[i + 1])
        try:
            env = Environment(
                species[a:b], coords[a:b], shell[a:b], _loads(env_meta[i], path, f"'/sites/env_meta'[{i}]")
            )
            rec = SiteRecord(
                spectrum=spec[i],
                environment=env,
                structure_id=sid[i],
                site_index=int(site_index[i]),
                multiplicity=int(mult[i]),
                formula=formula[i],
                x=float(x[i]),
                source=source[i],
                simulator=simulator[i],
                settings=dict(settings[int(settings_index[i])]),
                split=split[i],
                meta=_loads(site_meta[i], path, f"'/sites/meta'[{i}]"),
            )
            rec.x = float(x[i])  # stored value as is (a NaN is not recomputed from the formula)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, DatasetFormatError):
                raise
            raise DatasetFormatError(f"{path}: site {i} is invalid: {exc}") from None
        records.append(rec)
    structures = dict(zip(st_ids, st_json))
    return Dataset(records, structures, meta)


__all__ = [
    "FIDELITIES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SIMULATOR_FIDELITY",
    "SPLITS",
    "Dataset",
    "DatasetFormatError",
    "SiteRecord",
    "x_from_formula",
]
