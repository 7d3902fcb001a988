"""Evaluation of conditional generation over many sites (notebooks 03-06).

* :func:`generate_cached` - :func:`s2s.model.sample.generate` with an on-disk cache, so that a
  notebook that needs the same generated environments as an earlier one (04 after 03,
  06 after 05) re-uses them instead of sampling again.  The cache key is a SHA-256 of
  the model file's bytes, the spectra, the atom counts and the sampling settings, so a
  different model, spectrum set, seed or step count never hits a stale entry.
* :func:`evaluate_generation` - per-site metrics (:func:`s2s.evaluation.metrics.evaluate_pair`) for
  each alignment method ("paper" and our "best").
* :func:`summary_table` - the issue's ``test_generation`` numbers from those rows
  (:func:`s2s.evaluation.metrics.summarize`).
* :func:`pick_cases`, :func:`composition_key`, :func:`group_indices` - small helpers for
  the figures (best / middle / worst case; per-composition grouping).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2s.files import file_sha256
from s2s.environment import Environment
from s2s.evaluation.metrics import evaluate_pair, summarize

#: Bump when the cache layout or the meaning of a cached entry changes.
CACHE_VERSION = 2  # 2: spectra sampled in chunks of similar atom count
METHODS = ("paper", "best")


# ----------------------------------------------------------------------------- cache



def _check_inputs(spectra, n_atoms) -> tuple[np.ndarray, np.ndarray | None]:
    spec = np.ascontiguousarray(np.atleast_2d(np.asarray(spectra, dtype=np.float32)))
    if spec.ndim != 2 or spec.shape[0] == 0:
        raise ValueError(f"generate_cached: spectra must be (M, n_grid) with M >= 1, got shape {spec.shape}")
    if not np.all(np.isfinite(spec)):
        raise ValueError("generate_cached: spectra contain NaN/inf")
    if n_atoms is None:
        return spec, None
    n = np.ascontiguousarray(np.asarray(n_atoms, dtype=np.int64).reshape(-1))
    if n.shape != (spec.shape[0],):
        raise ValueError(f"generate_cached: n_atoms must have one count per spectrum ({spec.shape[0]}), got {n.shape}")
    if np.any(n < 1):
        raise ValueError("generate_cached: n_atoms must be >= 1")
    return spec, n


def cache_key(
    model_sha256: str,
    spectra: np.ndarray,
    n_atoms: np.ndarray | None,
    *,
    n_samples: int,
    n_steps: int | None,
    seed: int,
    batch_size: int,
    natoms_mode: str = "sample",
) -> str:
    """Hex SHA-256 identifying one generation run (model, inputs and sampling settings).

    ``spectra`` are hashed as float32 (what the model sees), ``n_atoms`` as int64.
    """
    h = hashlib.sha256()
    settings = {
        "version": CACHE_VERSION, "model": model_sha256, "n_samples": int(n_samples),
        "n_steps": None if n_steps is None else int(n_steps), "seed": int(seed), "batch_size": int(batch_size),
        "natoms_mode": natoms_mode if n_atoms is None else None, "spectra_shape": list(spectra.shape),
    }
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(np.ascontiguousarray(spectra, dtype=np.float32).tobytes())
    h.update(b"n_atoms:" + (b"none" if n_atoms is None else np.ascontiguousarray(n_atoms, dtype=np.int64).tobytes()))
    return h.hexdigest()


def _save_npz(path: Path, generated: list[list[Environment]], info: dict) -> None:
    flat = [e for row in generated for e in row]
    arrays = {
        "n_per": np.array([e.n_atoms for e in flat], dtype=np.int64),
        "species": np.concatenate([e.species for e in flat]).astype(np.int8),
        "coords": np.concatenate([e.coords for e in flat]).astype(np.float64),
        "shell": np.concatenate([e.shell for e in flat]).astype(np.int8),
        "shape": np.array([len(generated), len(generated[0]) if generated else 0], dtype=np.int64),
        "info": np.array(json.dumps(info, sort_keys=True)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_npz(path: Path) -> list[list[Environment]]:
    with np.load(path, allow_pickle=False) as z:
        n_per, species, coords, shell = z["n_per"], z["species"], z["coords"], z["shell"]
        m, s = (int(v) for v in z["shape"])
    if n_per.size != m * s or int(n_per.sum()) != species.shape[0]:
        raise ValueError(f"{path}: corrupt generation cache (counts do not add up); delete it")
    ends = np.cumsum(n_per)
    starts = ends - n_per
    flat = [
        Environment(species[a:b], coords[a:b], shell[a:b], meta={"spectrum_index": k // s, "sample": k % s})
        for k, (a, b) in enumerate(zip(starts, ends))
    ]
    return [flat[i * s : (i + 1) * s] for i in range(m)]


def cache_info(path: str | os.PathLike) -> dict:
    """The provenance stored with a cache entry: model path and sha256, sampling settings, and
    ``seconds`` (wall time of the generation that made it, model loading included)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["info"]))


def cache_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """Where the entry for ``key`` lives (``<cache_dir>/<key[:2]>/<key>.npz``)."""
    return Path(cache_dir) / key[:2] / f"{key}.npz"


#: Fixed cost of one batched sampling call per step, in units of one padded graph's N^2 (atoms^2).
#: Measured on one CPU thread (2-core machine, loaded): a call-step costs ~0.03-0.04 s plus
#: ~1e-4 s x batch x N_max^2, so the overhead is about that of one 17-atom graph.
CALL_OVERHEAD_ATOMS2 = 300.0


def size_chunks(
    counts: np.ndarray, max_len: int, overhead: float = CALL_OVERHEAD_ATOMS2, weight: int = 1
) -> list[np.ndarray]:
    """Indices of ``counts`` grouped into batches for sampling, at minimal modelled cost.

    Sampling pads a batch to its largest environment and costs ~ ``overhead`` + batch x
    N_max^2 per step (dense graphs; ``weight`` = samples per spectrum multiplies the batch),
    so a 51-atom target among 15-atom ones would make every member as expensive as the
    largest, while very small batches pay the per-call overhead many times.  The counts are
    sorted (stable) and split into contiguous chunks of at most ``max_len`` by dynamic
    programming on that cost model.  Returns index arrays in ascending count order.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if max_len < 1:
        raise ValueError(f"size_chunks: max_len must be >= 1, got {max_len}")
    order = np.argsort(counts, kind="stable")
    c = counts[order].astype(np.float64)
    m = c.size
    best = np.full(m + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(m + 1, dtype=np.int64)
    for j in range(1, m + 1):  # chunk = sorted items i..j-1, padded to c[j-1]
        for i in range(max(0, j - max_len), j):
            v = best[i] + overhead + weight * (j - i) * c[j - 1] ** 2
            if v < best[j]:
                best[j], cut[j] = v, i
    bounds, j = [], m
    while j > 0:
        bounds.append((cut[j], j))
        j = cut[j]
    return [order[a:b].astype(np.int64) for a, b in reversed(bounds)]


def _chunk_seed(seed: int, k: int) -> int:
    """Independent, reproducible seed for chunk k of a run with ``seed``."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint32)[0])


def _resolve(model_path, spectra, n_atoms, n_samples, n_steps, seed, cache_dir, batch_size, natoms_mode):
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"generate_cached: n_samples must be a positive integer, got {n_samples!r}")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"generate_cached: model file not found: {model_path}")
    spec, counts = _check_inputs(spectra, n_atoms)
    sha = file_sha256(model_path)
    key = cache_key(sha, spec, counts, n_samples=n_samples, n_steps=n_steps, seed=seed,
                    batch_size=batch_size, natoms_mode=natoms_mode)
    return cache_path(cache_dir, key), sha, spec, counts


def generation_cache_path(
    model_path: str | os.PathLike,
    spectra: np.ndarray,
    n_atoms: Sequence[int] | np.ndarray | None,
    *,
    n_samples: int = 1,
    n_steps: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike = "../runs/generated",
    batch_size: int = 64,
    natoms_mode: str = "sample",
) -> Path:
    """The cache file :func:`generate_cached` reads or writes for these arguments (it exists
    when the call would be a hit)."""
    return _resolve(model_path, spectra, n_atoms, n_samples, n_steps, seed, cache_dir, batch_size, natoms_mode)[0]


def generate_cached(
    model_path: str | os.PathLike,
    spectra: np.ndarray,
    n_atoms: Sequence[int] | np.ndarray | None,
    *,
    n_samples: int = 1,
    n_steps: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike = "../runs/generated",
    progress: bool = True,
    batch_size: int = 64,
    natoms_mode: str = "sample",
) -> list[list[Environment]]:
    """:func:`s2s.model.sample.generate` with the model loaded from ``model_path``, cached on disk.

    Returns a list (per spectrum) of lists (per sample) of Environments (Å, excited O at
    index 0, shells by the 2.0 Å graph-hop rule), exactly as ``generate`` does.  The
    result is stored as ``<cache_dir>/<key[:2]>/<key>.npz`` (written atomically), with
    ``key`` from :func:`cache_key` over the SHA-256 of the model file, the spectra (float32),
    ``n_atoms``, ``n_samples``, ``n_steps`` (None = the model's T), ``seed``, ``batch_size``
    (the noise stream depends on it) and ``natoms_mode``.  A second call with the same
    inputs reads the file instead of sampling (coordinates are stored as float64, so
    a hit returns identical environments).  On a miss, with ``n_atoms`` given, the spectra
    are sampled in chunks of similar atom count (:func:`size_chunks`: a padded batch costs
    ~ overhead + batch x largest N^2 per step), chunk k with its own seed derived from
    (``seed``, k), and the results are returned in input order.  When everything fits one
    chunk this is exactly ``generate(model, spectra[order], n_atoms[order], seed=seed, ...)``
    with ``order`` the stable sort by atom count.  Each environment's meta carries
    ``spectrum_index`` and ``sample``.
    """
    path, sha, spec, counts = _resolve(model_path, spectra, n_atoms, n_samples, n_steps, seed, cache_dir,
                                       batch_size, natoms_mode)
    if path.is_file():
        return _load_npz(path)

    import torch

    from s2s.model.sample import generate
    from s2s.model.train import load_model

    t0 = time.perf_counter()
    model = load_model(model_path)
    m = spec.shape[0]
    if counts is None:  # atom counts drawn inside generate: one call, input order
        chunks = [np.arange(m)]
    else:
        chunks = size_chunks(counts, max(1, batch_size // int(n_samples)), weight=int(n_samples))
    it = chunks
    if progress and len(chunks) > 1:
        from tqdm.auto import tqdm

        it = tqdm(chunks, desc="generating", unit="batch")
    out: list[list[Environment]] = [[] for _ in range(m)]
    with torch.no_grad():
        for k, idx in enumerate(it):
            chunk_seed = int(seed) if len(chunks) == 1 else _chunk_seed(int(seed), k)
            res = generate(model, spec[idx], None if counts is None else counts[idx], n_samples=int(n_samples),
                           seed=chunk_seed, n_steps=n_steps, batch_size=batch_size, natoms_mode=natoms_mode,
                           progress=progress and len(chunks) == 1)
            for j, samples in zip(idx, res):
                for e in samples:
                    e.meta["spectrum_index"] = int(j)
                out[int(j)] = samples
    info = {"model": str(model_path), "model_sha256": sha, "n_spectra": int(spec.shape[0]),
            "n_samples": int(n_samples), "n_steps": n_steps, "seed": int(seed), "batch_size": int(batch_size),
            "cache_version": CACHE_VERSION, "seconds": round(time.perf_counter() - t0, 3),
            "torch_threads": torch.get_num_threads()}
    _save_npz(path, out, info)
    return out


# ----------------------------------------------------------------------------- evaluation


def _as_nested(generated, n_targets: int) -> list[list[Environment]]:
    gen = list(generated)
    if len(gen) != n_targets:
        raise ValueError(f"evaluate_generation: {n_targets} targets but {len(gen)} generated entries")
    out = []
    for i, g in enumerate(gen):
        row = [g] if isinstance(g, Environment) else list(g)
        if not row or not all(isinstance(e, Environment) for e in row):
            raise TypeError(
                f"evaluate_generation: generated[{i}] must be an Environment or a non-empty list of Environments"
            )
        out.append(row)
    return out


def evaluate_generation(
    targets: Sequence[Environment],
    generated: Sequence[Environment | Sequence[Environment]],
    methods: Sequence[str] = METHODS,
    *,
    progress: bool = False,
) -> list[dict]:
    """Per-site metrics of generated vs target environments, for each alignment method.

    ``generated[i]`` is one Environment or a list of samples for ``targets[i]`` (as
    returned by :func:`generate_cached`); every sample gives one row.  Row keys:
    ``index`` (target index), ``sample``, and for each method in ``methods`` (``"paper"``,
    ``"best"``) the :func:`s2s.evaluation.metrics.evaluate_pair` dict under that name (RMSD per
    shell and overall in Å, CN per shell target/generated and % error, species match,
    O fractions).
    """
    targets = list(targets)
    if not targets:
        raise ValueError("evaluate_generation: no targets")
    methods = tuple(methods)
    if not methods:
        raise ValueError("evaluate_generation: no alignment methods given")
    gen = _as_nested(generated, len(targets))
    pairs = [(i, j, t, g) for i, (t, row) in enumerate(zip(targets, gen)) for j, g in enumerate(row)]
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="evaluating", unit="site")
    rows = []
    for i, j, t, g in pairs:
        row: dict[str, Any] = {"index": i, "sample": j}
        for m in methods:
            row[m] = evaluate_pair(t, g, method=m)
        rows.append(row)
    return rows


def metric_array(rows: Sequence[Mapping], method: str, key: str) -> np.ndarray:
    """One metric of one method over the rows, as a float array (NaN kept)."""
    try:
        return np.array([float(r[method][key]) for r in rows], dtype=np.float64)
    except KeyError as exc:
        raise KeyError(f"metric_array: rows have no {method!r}/{key!r} entry ({exc})") from None


def summary_table(rows: Sequence[Mapping], method: str = "paper", digits: int | None = None) -> dict:
    """The issue's ``test_generation`` numbers for one alignment method.

    Keys: rmsd_shell1, rmsd_shell2, rmsd_shell3, rmsd_all (Å, NaN-skipping means over
    cases), cn_error_shell1_pct, cn_error_shell2_pct (mean per-case relative CN error,
    %), species_accuracy (fraction of cases whose O fraction matches exactly), validity
    (fraction of chemically sane environments, :func:`s2s.evaluation.metrics.validity`), n_test (number of cases).  From :func:`s2s.evaluation.metrics.summarize`; ``digits`` rounds the floats.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("summary_table: no rows")
    s = summarize(r[method] for r in rows)
    keys = ("rmsd_shell1", "rmsd_shell2", "rmsd_shell3", "rmsd_all", "cn_error_shell1_pct", "cn_error_shell2_pct",
            "species_accuracy", "validity")
    out: dict[str, Any] = {k: s[k] for k in keys if k in s}
    if digits is not None:
        out = {k: (round(v, digits) if math.isfinite(v) else v) for k, v in out.items()}
    out["n_test"] = int(s["n"])
    return out


# ----------------------------------------------------------------------------- helpers


def pick_cases(values: Sequence[float] | np.ndarray, labels: Sequence[str] = ("A", "B", "C")) -> dict[str, int]:
    """Indices of the best (lowest), middle (median rank) and worst finite value, e.g. the
    Fig. 2b cases A/B/C from per-case RMSDs.  Fewer finite values than labels give fewer
    entries (distinct indices only)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    idx = np.flatnonzero(np.isfinite(v))
    if idx.size == 0:
        return {}
    order = idx[np.argsort(v[idx], kind="stable")]
    k = len(labels)
    ranks = [0] if k == 1 else [round(j * (order.size - 1) / (k - 1)) for j in range(k)]
    out: dict[str, int] = {}
    for lab, r in zip(labels, ranks):
        i = int(order[r])
        if i not in out.values():
            out[lab] = i
    return out


def composition_key(x: float) -> str:
    """Composition x of SiO_x as the results-file key: two decimals, e.g. "0.25", "2.00"
    (the amorphous build's format)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"composition_key: x must be finite, got {x}")
    return f"{x:.2f}"


def group_indices(keys: Sequence[Any]) -> dict[Any, np.ndarray]:
    """Indices of each distinct key, keys in sorted order (e.g. sites per composition)."""
    groups: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return {k: np.array(groups[k], dtype=np.int64) for k in sorted(groups)}


def spread_indices(n: int, n_max: int | None) -> np.ndarray:
    """``n_max`` indices spread evenly over ``range(n)`` (all of them when ``n_max`` is None or
    >= n), ascending and deterministic; e.g. a small test subset that still spans the split."""
    if n < 0:
        raise ValueError(f"spread_indices: n must be >= 0, got {n}")
    if n_max is None or n_max >= n:
        return np.arange(n, dtype=np.int64)
    if n_max < 1:
        raise ValueError(f"spread_indices: n_max must be >= 1 or None, got {n_max}")
    return np.unique(np.round(np.linspace(0, n - 1, n_max)).astype(np.int64))


def subsample_groups(keys: Sequence[Any], n_per_group: int | None) -> np.ndarray:
    """Indices of at most ``n_per_group`` items of each distinct key (spread evenly within the
    group, :func:`spread_indices`), ascending; all items when ``n_per_group`` is None."""
    keep = [g[spread_indices(len(g), n_per_group)] for g in group_indices(keys).values()]
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def composition_keys(records: Sequence[Any]) -> list[str]:
    """:func:`composition_key` of each site record: ``meta["composition_x"]`` when present and
    finite (the amorphous set: the cell's nominal x), else the record's ``x`` (the same rule as
    :func:`s2s.evaluation.manifold.composition_labels`).  Raises ValueError naming the record when
    neither is a finite number."""
    out = []
    for i, r in enumerate(records):
        x = (getattr(r, "meta", None) or {}).get("composition_x")
        try:
            x = float(x)
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            x = float(getattr(r, "x", math.nan))
        if not math.isfinite(x):
            sid = getattr(r, "structure_id", "?")
            raise ValueError(f"composition_keys: record {i} ({sid}) has no finite composition_x or x")
        out.append(composition_key(x))
    return out


def generation_inputs(records: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(spectra (M, 200), n_atoms (M,)) of site records for :func:`generate_cached` under the
    paper's protocol (each target's own atom count).  Notebooks that must hit each other's
    cache entries (03/04, 05/06) build their inputs with this from the same records."""
    records = list(records)
    if not records:
        raise ValueError("generation_inputs: no records")
    spectra = np.stack([np.asarray(r.spectrum, dtype=np.float64) for r in records])
    n_atoms = np.array([r.environment.n_atoms for r in records], dtype=np.int64)
    return spectra, n_atoms
