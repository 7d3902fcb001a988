"""Best-of-k generation: draw K samples per spectrum, keep the one the forward model likes best.

For each test spectrum the generator draws K environments (the target's atom count, the paper's
protocol; DDIM with few steps so that K samples stay cheap).  Three ways to pick one of them:

* ``single`` - the first sample (one draw: the single-sample method at the same sampler/steps);
* ``best_of_k`` - the sample ranked first by :func:`s2s.forward.selfconsistent.score_candidates`: the
  smallest MSE of its forward-model spectrum (:mod:`s2s.forward.model`) to the input spectrum among the
  geometrically plausible samples (all samples when none is); no target used;
* ``oracle_of_k`` - the sample with the smallest true 1st-shell RMSD to the target (paper
  alignment; ties and NaN by overall RMSD, then index): an upper bound of what any ranking of
  these K samples can reach.

Each pick is scored like notebook 03 (:func:`s2s.evaluation.evaluate.summary_table`, paper alignment: RMSD per
shell in Å, CN error in %, species accuracy, validity) plus the win rate over template matching
(SOAP cosine similarity to the target, :func:`s2s.evaluation.template.compare_with_generation`).  The K
samples are cached on disk (key: model file SHA-256, spectra, counts, K, sampler, steps, seed).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2s.environment import Environment

METHODS = ("single", "best_of_k", "oracle_of_k")
CACHE_VERSION = 1


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


def _key(model_sha: str, spectra: np.ndarray, counts: np.ndarray, s: BestOfKSettings) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "model": model_sha, **asdict(s)}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(spectra, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(counts, dtype=np.int64).tobytes())
    return h.hexdigest()


def _save(path: Path, samples: list[list[Environment]], info: dict) -> None:
    flat = [e for row in samples for e in row]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, n_per=np.array([e.n_atoms for e in flat]), species=np.concatenate([e.species for e in flat]),
                     coords=np.concatenate([e.coords for e in flat]), shell=np.concatenate([e.shell for e in flat]),
                     shape=np.array([len(samples), len(samples[0])]), info=np.array(json.dumps(info)))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load(path: Path) -> tuple[list[list[Environment]], dict]:
    with np.load(path, allow_pickle=False) as z:
        n_per, sp, xyz, sh = z["n_per"], z["species"], z["coords"], z["shell"]
        m, k = (int(v) for v in z["shape"])
        info = json.loads(str(z["info"]))
    if n_per.size != m * k or int(n_per.sum()) != sp.shape[0]:
        raise ValueError(f"{path}: corrupt best-of-k cache (counts do not add up); delete it")
    ends = np.cumsum(n_per)
    envs = [Environment(sp[a:b], xyz[a:b], sh[a:b], meta={"spectrum_index": i // k, "sample": i % k})
            for i, (a, b) in enumerate(zip(ends - n_per, ends))]
    return [envs[i * k : (i + 1) * k] for i in range(m)], info


def sample_k(model_path: str | os.PathLike, spectra: np.ndarray, n_atoms: Sequence[int], settings: BestOfKSettings = BestOfKSettings(),
             *, cache_dir: str | os.PathLike | None = None, progress: bool = False) -> tuple[list[list[Environment]], dict]:
    """K environments per spectrum (M, 200) with the given atom counts (M,): a list per spectrum of
    K Environments (Å, excited O first), and an info dict (seconds, settings, model SHA-256).
    Spectra are sampled in chunks of similar atom count (:func:`s2s.evaluation.evaluate.size_chunks`), chunk
    j seeded from (seed, j).  Deterministic for the settings; cached under ``cache_dir`` if given."""
    import torch

    from s2s.evaluation.evaluate import file_sha256, size_chunks
    from s2s.model.sample import generate
    from s2s.model.train import load_model

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: generator model file not found")
    spec = np.atleast_2d(np.asarray(spectra, dtype=np.float32))
    counts = np.asarray(n_atoms, dtype=np.int64).reshape(-1)
    if counts.shape != (spec.shape[0],):
        raise ValueError(f"sample_k: {spec.shape[0]} spectra but {counts.size} atom counts")
    sha = file_sha256(model_path)
    path = None
    if cache_dir is not None:
        key = _key(sha, spec, counts, settings)
        path = Path(cache_dir) / key[:2] / f"bestofk_{key}.npz"
        if path.is_file():
            return _load(path)
    t0 = time.process_time()
    w0 = time.perf_counter()
    model = load_model(model_path)
    out: list[list[Environment]] = [[] for _ in range(spec.shape[0])]
    chunks = size_chunks(counts, max(1, settings.batch_size // settings.k), weight=settings.k)
    it = chunks
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(chunks, desc=f"sampling {settings.k} per spectrum", unit="batch")
    with torch.no_grad():
        for j, idx in enumerate(it):
            seed = int(np.random.SeedSequence([settings.seed, j]).generate_state(1, dtype=np.uint32)[0])
            res = generate(model, spec[idx], counts[idx], n_samples=settings.k, seed=seed, n_steps=settings.n_steps,
                           batch_size=settings.batch_size, sampler=settings.sampler, eta=settings.eta)
            for i, row in zip(idx, res):
                out[int(i)] = row
    info = {"model": str(model_path), "model_sha256": sha, **asdict(settings), "n_spectra": int(spec.shape[0]),
            "cpu_seconds": round(time.process_time() - t0, 3), "wall_seconds": round(time.perf_counter() - w0, 3),
            "torch_threads": torch.get_num_threads()}
    if path is not None:
        _save(path, out, info)
    return out, info


def select(samples: list[list[Environment]], spectra: np.ndarray, forward, targets: Sequence[Environment] | None = None
           ) -> dict[str, Any]:
    """Indices of the picked sample per spectrum for each method of :data:`METHODS` (oracle only
    with ``targets``), plus per-sample ``scores`` (M, K) MSE of the forward spectrum to the input
    and, with targets, ``rows`` (M, K) of :func:`s2s.evaluation.metrics.evaluate_pair` dicts (paper alignment)."""
    from s2s.evaluation.metrics import evaluate_pair
    from s2s.forward.selfconsistent import score_candidates

    m = len(samples)
    k = len(samples[0])
    scores = np.full((m, k), np.nan)
    errors = {}
    picks: list[int] = []
    for i, row in enumerate(samples):
        sc = score_candidates(forward, spectra[i], row, [f"spectrum {i}, sample {j}" for j in range(len(row))])
        scores[i] = sc.scores
        picks.append(int(sc.order[0]))
        errors.update({(i, j): msg for j, msg in sc.errors.items()})
    out: dict[str, Any] = {"single": np.zeros(m, dtype=np.int64),
                           "best_of_k": np.array(picks, dtype=np.int64),
                           "scores": scores, "errors": errors}
    if targets is not None:
        rows = [[evaluate_pair(t, g, method="paper") for g in row] for t, row in zip(targets, samples)]
        r1 = np.array([[r["rmsd_shell1"] for r in rr] for rr in rows], dtype=np.float64)
        ra = np.array([[r["rmsd_all"] for r in rr] for rr in rows], dtype=np.float64)
        inf1, infa = np.where(np.isfinite(r1), r1, np.inf), np.where(np.isfinite(ra), ra, np.inf)
        out["oracle_of_k"] = np.array([int(np.lexsort((np.arange(k), infa[i], inf1[i]))[0]) for i in range(m)])
        out["rows"] = rows
    return out


def evaluate_best_of_k(model_path: str | os.PathLike, forward, test_records: Sequence[Any], train_records: Sequence[Any],
                       settings: BestOfKSettings = BestOfKSettings(), *, cache_dir: str | os.PathLike | None = None,
                       progress: bool = False, digits: int | None = 4) -> dict[str, Any]:
    """The best-of-k evaluation on site records (``.environment``, ``.spectrum``, ``.structure_id``).

    Returns ``{"single": table, "best_of_k": table, "oracle_of_k": table, "settings": ..., "sampling": info,
    "picked": {method: [sample index per site]}, "selection_mse_mean": {method: mean forward-model MSE of the picks}}``
    where each table is :func:`s2s.evaluation.evaluate.summary_table` (paper alignment) plus ``template_win_rate`` (SOAP
    similarity to the target above the template-matched environment's; template database = ``train_records``,
    same-structure sites excluded) and ``sim_mean`` (mean SOAP cosine similarity to the target).
    """
    from s2s.evaluation.evaluate import summary_table
    from s2s.evaluation.template import compare_with_generation, template_match

    test_records, train_records = list(test_records), list(train_records)
    if not test_records:
        raise ValueError("evaluate_best_of_k: no test records")
    targets = [r.environment for r in test_records]
    spectra = np.stack([np.asarray(r.spectrum, dtype=np.float64) for r in test_records])
    counts = np.array([t.n_atoms for t in targets])
    samples, info = sample_k(model_path, spectra, counts, settings, cache_dir=cache_dir, progress=progress)
    t0 = time.process_time()
    sel = select(samples, spectra, forward, targets)
    tm = template_match(spectra, [r.structure_id for r in test_records], np.stack([r.spectrum for r in train_records]),
                        [r.structure_id for r in train_records], [r.environment for r in train_records])
    out: dict[str, Any] = {"settings": asdict(settings), "sampling": info, "picked": {}, "selection_mse_mean": {}}
    for m in METHODS:
        pick = sel[m]
        rows = [{"index": i, "sample": int(j), "paper": sel["rows"][i][int(j)]} for i, j in enumerate(pick)]
        tab = summary_table(rows, "paper")
        cmp = compare_with_generation(targets, [samples[i][int(j)] for i, j in enumerate(pick)], tm.environments, tm.mse)
        tab["template_win_rate"] = cmp["model_win_rate"]
        tab["sim_mean"] = float(np.mean(cmp["sim_generated"]))
        if digits is not None:
            tab = {k: (round(v, digits) if isinstance(v, float) and math.isfinite(v) else v) for k, v in tab.items()}
        out[m] = tab
        out["picked"][m] = [int(j) for j in pick]
        mse = sel["scores"][np.arange(len(pick)), pick]
        out["selection_mse_mean"][m] = float(np.nanmean(mse))
    out["scoring_cpu_seconds"] = round(time.process_time() - t0, 3)
    out["n_unscorable"] = len(sel["errors"])
    return out


__all__ = ["BestOfKSettings", "sample_k", "select", "evaluate_best_of_k", "METHODS"]
