"""Training and evaluation tables for the confidence model: K generated samples per site, labelled
with their true errors.

A table is one npz (:func:`save_table` / :func:`load_table`) with, for M sites and K samples each:

* ``site`` (M,) index of the site in its split (fit or validation records), ``structure_id`` (M,),
  ``spectrum`` (M, 200), ``n_atoms`` (M,) the target's atom count;
* the labels (M, K) of :func:`label_samples`: ``rmsd_shell1``, ``rmsd_all`` (Å, paper alignment,
  :func:`s2s.geometry.metrics.evaluate_pair`), ``species_match``, ``valid`` (bool);
* ``distances`` (M, K, K): the samples' pairwise aligned RMSD (Å, paper alignment), which the
  composition medoid and the relative features read;
* the samples themselves, flat as in :func:`s2s.model.cache.save_environments_npz` (``n_per``,
  ``species``, ``coords``), and ``info`` (JSON: sampler settings, model SHA-256, seconds).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from s2s.ensembles.describe import pairwise_rmsd
from s2s.environment import Environment
from s2s.files import atomic_path
from s2s.geometry.metrics import evaluate_pair
from s2s.geometry.shells import assign_shells
from s2s.model.cache import BestOfKSettings, sample_k

#: The per-sample labels of a table, (M, K) each.
LABELS = ("rmsd_shell1", "rmsd_all", "species_match", "valid")


def label_samples(target: Environment, samples: Sequence[Environment]) -> dict[str, np.ndarray]:
    """The true errors of K samples against the site's environment: ``rmsd_shell1`` and ``rmsd_all``
    (Å, paper alignment; NaN where the alignment leaves none), ``species_match`` and ``valid``
    (bool), each (K,) - the paper-aligned numbers of :func:`s2s.geometry.metrics.evaluate_pair`."""
    rows = [evaluate_pair(target, g, method="paper") for g in samples]
    return {
        "rmsd_shell1": np.array([r["rmsd_shell1"] for r in rows], dtype=np.float64),
        "rmsd_all": np.array([r["rmsd_all"] for r in rows], dtype=np.float64),
        "species_match": np.array([bool(r["species_match"]) for r in rows]),
        "valid": np.array([bool(r["valid"]) for r in rows]),
    }


def build_table(
    targets: Sequence[Environment],
    samples: Sequence[Sequence[Environment]],
    spectra: np.ndarray,
    site: Sequence[int],
    structure_id: Sequence[str],
    info: dict | None = None,
) -> dict[str, np.ndarray]:
    """A table (module docstring) from M targets, their K samples each and the spectra (M, 200)."""
    m = len(samples)
    k = len(samples[0]) if m else 0
    if not (len(targets) == m == len(site) == len(structure_id) == np.asarray(spectra).shape[0]):
        raise ValueError("build_table: targets, samples, spectra, site and structure_id differ in length")
    if any(len(row) != k for row in samples):
        raise ValueError("build_table: every site needs the same number of samples")
    labels = [label_samples(t, row) for t, row in zip(targets, samples)]
    flat = [e for row in samples for e in row]
    out = {name: np.stack([lab[name] for lab in labels]) for name in LABELS}
    out.update(
        site=np.asarray(site, dtype=np.int64),
        structure_id=np.asarray([str(s) for s in structure_id]),
        spectrum=np.asarray(spectra, dtype=np.float32),
        n_atoms=np.array([t.n_atoms for t in targets], dtype=np.int64),
        distances=np.stack([pairwise_rmsd(row, method="paper") for row in samples]),
        n_per=np.array([e.n_atoms for e in flat], dtype=np.int64),
        species=np.concatenate([e.species for e in flat]).astype(np.int8),
        coords=np.concatenate([e.coords for e in flat]).astype(np.float32),
        shape=np.array([m, k], dtype=np.int64),
        info=np.array(json.dumps(info or {}, sort_keys=True)),
    )
    return out


def sample_table(
    model_path,
    records: Sequence,
    idx: Sequence[int],
    settings=None,
    cache_dir=None,
) -> dict[str, np.ndarray]:
    """A table of the records ``records[i]`` for i in ``idx`` (``.spectrum``, ``.environment``,
    ``.structure_id``): K samples each by :func:`s2s.model.cache.sample_k` (``settings``: a
    :class:`~s2s.model.cache.BestOfKSettings`, default its defaults; the target's atom count;
    cached under ``cache_dir``), labelled (:func:`build_table`); ``info`` adds the wall and CPU seconds."""
    import time

    settings = settings or BestOfKSettings()
    recs = [records[i] for i in idx]
    spectra = np.stack([r.spectrum for r in recs])
    t0, c0 = time.time(), time.process_time()
    samples, info = sample_k(model_path, spectra, [r.environment.n_atoms for r in recs], settings, cache_dir=cache_dir)
    t1 = time.time()
    table = build_table([r.environment for r in recs], samples, spectra, list(idx), [r.structure_id for r in recs])
    info = {
        **info,
        "sampling_wall_s": round(t1 - t0, 1),
        "labelling_wall_s": round(time.time() - t1, 1),
        "cpu_s": round(time.process_time() - c0, 1),
    }
    table["info"] = np.array(json.dumps(info, sort_keys=True, default=str))
    return table


def concat_tables(tables: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One table of several with the same K (sites in order; ``info`` of the first)."""
    if not tables:
        raise ValueError("concat_tables: no tables")
    k = {int(t["shape"][1]) for t in tables}
    if len(k) != 1:
        raise ValueError(f"concat_tables: tables with different K {sorted(k)}")
    out = {name: np.concatenate([t[name] for t in tables]) for name in tables[0] if name not in ("shape", "info")}
    out["shape"] = np.array([sum(int(t["shape"][0]) for t in tables), k.pop()], dtype=np.int64)
    out["info"] = tables[0]["info"]
    return out


def save_table(path: str | os.PathLike, table: dict[str, np.ndarray]) -> None:
    """Write a table atomically (:mod:`s2s.files`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **table)


def load_table(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a table written by :func:`save_table`."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def table_samples(table: dict[str, np.ndarray]) -> list[list[Environment]]:
    """The M x K sample environments of a table (shells re-assigned from the coordinates)."""
    m, k = (int(v) for v in table["shape"])
    ends = np.cumsum(table["n_per"])
    starts = ends - table["n_per"]
    flat = []
    for a, b in zip(starts, ends):
        c = table["coords"][a:b].astype(np.float64)
        flat.append(Environment(table["species"][a:b], c, assign_shells(c - c[0])))
    return [flat[i * k : (i + 1) * k] for i in range(m)]


__all__ = [
    "LABELS",
    "label_samples",
    "build_table",
    "sample_table",
    "concat_tables",
    "save_table",
    "load_table",
    "table_samples",
]
