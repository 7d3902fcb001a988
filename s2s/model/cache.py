"""Generation with an on-disk cache: :func:`generate_cached` is :func:`s2s.model.sample.generate`
(``buckets=True``) with the model loaded from a file and the result stored once.

A notebook that needs the same generated environments as an earlier one (04 after 03, 06 after 05)
re-uses them instead of sampling again.  The cache key is a SHA-256 of the model file's bytes, the
spectra, the atom counts and the sampling settings (with the fidelity flag of a model that reads one), so
a different model, spectrum set, seed, step count or fidelity never hits a stale entry.  Entries are
``<cache_dir>/<key[:2]>/<key>.npz``, written atomically (:mod:`s2s.files`); coordinates are stored as
float64, so a hit returns identical environments.

:func:`sample_k` (:class:`BestOfKSettings`) draws K environments per spectrum this way: the samples
that best-of-k, the medoid picks (:mod:`s2s.ensembles.pick`) and the learned selector choose among.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2s.environment import Environment
from s2s.files import atomic_path, file_sha256
from s2s.resources import resolve
from s2s.site_record import fidelity_flags

#: Bump when the cache layout or the meaning of a cached entry changes.
CACHE_VERSION = 2  # 2: spectra sampled in chunks of similar atom count


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
    sampler: str = "ancestral",
    eta: float = 0.0,
    guidance: float = 0.0,
    fidelity: float | Sequence[float] | np.ndarray | None = None,
) -> str:
    """Hex SHA-256 identifying one generation run (model, inputs and sampling settings).

    ``spectra`` are hashed as float32 (what the model sees), ``n_atoms`` as int64.  The sampler
    settings enter only when they differ from the defaults (ancestral, eta 0, no guidance), so
    entries written before those options existed keep their keys; so does ``fidelity`` (the flag of a model
    with ``ModelConfig.fidelity_input``, one number or one per spectrum), which enters as one float32 flag per
    spectrum when it is not None (a number and the same number per spectrum share a key).
    """
    h = hashlib.sha256()
    settings = {
        "version": CACHE_VERSION,
        "model": model_sha256,
        "n_samples": int(n_samples),
        "n_steps": None if n_steps is None else int(n_steps),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "natoms_mode": natoms_mode if n_atoms is None else None,
        "spectra_shape": list(spectra.shape),
    }
    if (sampler, float(eta), float(guidance)) != ("ancestral", 0.0, 0.0):
        settings.update(sampler=sampler, eta=float(eta), guidance=float(guidance))
    flags = fidelity_flags(fidelity, spectra.shape[0])
    if flags is not None:
        settings["fidelity"] = [float(v) for v in flags]
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(np.ascontiguousarray(spectra, dtype=np.float32).tobytes())
    h.update(b"n_atoms:" + (b"none" if n_atoms is None else np.ascontiguousarray(n_atoms, dtype=np.int64).tobytes()))
    return h.hexdigest()


def save_environments_npz(path: str | os.PathLike, generated: list[list[Environment]], info: dict) -> None:
    """Write M x S environments (a list per spectrum of S samples) and an ``info`` dict to one npz, atomically."""
    flat = [e for row in generated for e in row]
    arrays = {
        "n_per": np.array([e.n_atoms for e in flat], dtype=np.int64),
        "species": np.concatenate([e.species for e in flat]).astype(np.int8),
        "coords": np.concatenate([e.coords for e in flat]).astype(np.float64),
        "shell": np.concatenate([e.shell for e in flat]).astype(np.int8),
        "shape": np.array([len(generated), len(generated[0]) if generated else 0], dtype=np.int64),
        "info": np.array(json.dumps(info, sort_keys=True)),
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_environments_npz(path: str | os.PathLike) -> list[list[Environment]]:
    """Read what :func:`save_environments_npz` wrote (meta ``spectrum_index`` and ``sample`` restored)."""
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


def _resolve(model_path, spectra, n_atoms, cache_dir, **settings):
    n_samples = settings["n_samples"]
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"generate_cached: n_samples must be a positive integer, got {n_samples!r}")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"generate_cached: model file not found: {model_path}")
    spec, counts = _check_inputs(spectra, n_atoms)
    sha = file_sha256(model_path)
    key = cache_key(sha, spec, counts, **settings)
    cache_dir = resolve("generated_cache", cache_dir, must_exist=False)
    return cache_path(cache_dir, key), sha, spec, counts


def generation_cache_path(
    model_path: str | os.PathLike,
    spectra: np.ndarray,
    n_atoms: Sequence[int] | np.ndarray | None,
    *,
    cache_dir: str | os.PathLike | None = None,
    **settings: Any,
) -> Path:
    """The cache file :func:`generate_cached` reads or writes for these arguments (it exists
    when the call would be a hit).  ``settings``: the sampling keywords of :func:`generate_cached`
    (:data:`SAMPLING_SETTINGS`), with its defaults; any other keyword is a ``TypeError``."""
    return _resolve(model_path, spectra, n_atoms, cache_dir, **_sampling_settings(settings))[0]


def generate_cached(
    model_path: str | os.PathLike,
    spectra: np.ndarray,
    n_atoms: Sequence[int] | np.ndarray | None,
    *,
    n_samples: int = 1,
    n_steps: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    batch_size: int = 64,
    natoms_mode: str = "sample",
    sampler: str = "ancestral",
    eta: float = 0.0,
    guidance: float = 0.0,
    fidelity: float | Sequence[float] | np.ndarray | None = None,
    return_info: bool = False,
):
    """:func:`s2s.model.sample.generate` (``buckets=True``) with the model loaded from ``model_path``, cached.

    Returns a list (per spectrum, M) of lists (per sample) of Environments (Å, excited O at
    index 0, shells by the 2.0 Å graph-hop rule), exactly as ``generate`` does; with
    ``return_info`` also the entry's provenance dict (:func:`cache_info`).  ``cache_dir``: argument >
    ``$S2S_GENERATED_CACHE`` > ``runs/generated`` of the checkout (:mod:`s2s.resources`).  The key
    (:func:`cache_key`) covers the SHA-256 of the model file, the spectra (float32), ``n_atoms``,
    ``n_samples``, ``n_steps`` (None = the model's T), ``seed``, ``batch_size`` (the noise stream
    depends on it), ``natoms_mode``, the sampler settings and ``fidelity`` (the fidelity flag of a model with
    ``ModelConfig.fidelity_input``, :func:`s2s.model.sample.generate`; None: not passed).
    """
    settings = dict(
        n_samples=n_samples,
        n_steps=n_steps,
        seed=seed,
        batch_size=batch_size,
        natoms_mode=natoms_mode,
        sampler=sampler,
        eta=eta,
        guidance=guidance,
        fidelity=fidelity,
    )
    path, sha, spec, counts = _resolve(model_path, spectra, n_atoms, cache_dir, **settings)
    if path.is_file():
        out = load_environments_npz(path)
        return (out, cache_info(path)) if return_info else out

    import torch

    from s2s.model.sample import generate
    from s2s.model.train import load_model

    t0, c0 = time.perf_counter(), time.process_time()
    model = load_model(model_path)
    out = generate(
        model,
        spec,
        counts,
        n_samples=int(n_samples),
        seed=int(seed),
        n_steps=n_steps,
        batch_size=batch_size,
        natoms_mode=natoms_mode,
        progress=progress,
        sampler=sampler,
        eta=eta,
        guidance=guidance,
        buckets=True,
        **({} if fidelity is None else {"fidelity": fidelity}),
    )
    info = {
        "model": str(model_path),
        "model_sha256": sha,
        "n_spectra": int(spec.shape[0]),
        "n_samples": int(n_samples),
        "n_steps": n_steps,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "cache_version": CACHE_VERSION,
        "seconds": round(time.perf_counter() - t0, 3),
        "cpu_seconds": round(time.process_time() - c0, 3),
        "torch_threads": torch.get_num_threads(),
    }
    if (sampler, float(eta), float(guidance)) != ("ancestral", 0.0, 0.0):
        info.update(sampler=sampler, eta=float(eta), guidance=float(guidance))
    if fidelity is not None:
        info["fidelity"] = [float(v) for v in fidelity_flags(fidelity, spec.shape[0])]
    save_environments_npz(path, out, info)
    return (out, info) if return_info else out


#: The keywords of :func:`generate_cached` that choose what is sampled (and so its cache entry).
SAMPLING_SETTINGS = (
    "n_samples",
    "n_steps",
    "seed",
    "batch_size",
    "natoms_mode",
    "sampler",
    "eta",
    "guidance",
    "fidelity",
)


def _sampling_settings(given: dict[str, Any]) -> dict[str, Any]:
    """``given`` sampling keywords completed with :func:`generate_cached`'s defaults (one list of defaults for
    both the generation and the path of its entry); ``TypeError`` for a keyword that is not one of them."""
    unknown = sorted(set(given) - set(SAMPLING_SETTINGS))
    if unknown:
        raise TypeError(f"generation_cache_path() got an unexpected keyword argument {unknown[0]!r}")
    defaults = inspect.signature(generate_cached).parameters
    return {k: given[k] if k in given else defaults[k].default for k in SAMPLING_SETTINGS}


@dataclass(frozen=True)
class BestOfKSettings:
    """k samples per spectrum; sampler ("ddim" or "ancestral"), n_steps, eta (DDIM noise), seed,
    batch_size (graphs per sampling call)."""

    k: int = 8
    sampler: str = "ddim"
    n_steps: int | None = 50
    eta: float = 0.0
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if int(self.k) < 1:
            raise ValueError(f"best-of-k: k must be >= 1, got {self.k}")
        if self.n_steps is not None and int(self.n_steps) < 1:
            raise ValueError(f"best-of-k: n_steps must be >= 1 or None, got {self.n_steps}")


def sample_k(
    model_path: str | os.PathLike,
    spectra: np.ndarray,
    n_atoms: Sequence[int],
    settings: BestOfKSettings = BestOfKSettings(),
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[list[list[Environment]], dict]:
    """K environments per spectrum (M, 200) with the given atom counts (M,): a list per spectrum of
    K Environments (Å, excited O first), and an info dict (seconds, settings, model SHA-256).
    :func:`s2s.model.cache.generate_cached` with ``n_samples = k`` and the settings' sampler: spectra
    sampled in chunks of similar atom count, chunk j seeded from (seed, j).  Deterministic for the
    settings; cached under ``cache_dir`` (default: :mod:`s2s.resources` ``generated_cache``)."""
    counts = np.asarray(n_atoms, dtype=np.int64).reshape(-1)
    spec = np.atleast_2d(np.asarray(spectra, dtype=np.float32))
    if counts.shape != (spec.shape[0],):
        raise ValueError(f"sample_k: {spec.shape[0]} spectra but {counts.size} atom counts")
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"{model_path}: generator model file not found")
    out, info = generate_cached(
        model_path,
        spec,
        counts,
        n_samples=settings.k,
        n_steps=settings.n_steps,
        seed=settings.seed,
        batch_size=settings.batch_size,
        sampler=settings.sampler,
        eta=settings.eta,
        cache_dir=cache_dir,
        progress=progress,
        return_info=True,
    )
    return out, {**info, **asdict(settings)}


__all__ = [
    "BestOfKSettings",
    "sample_k",
    "CACHE_VERSION",
    "cache_key",
    "cache_path",
    "cache_info",
    "generate_cached",
    "generation_cache_path",
    "SAMPLING_SETTINGS",
    "save_environments_npz",
    "load_environments_npz",
]
