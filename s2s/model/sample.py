"""Conditional generation: spectra in, environments out -- the one ``generate()``.

Every path of the library that turns spectra into environments (the notebooks through
:func:`s2s.model.cache.generate_cached`, best-of-k, ``s2s sample``/``s2s evaluate``/``s2s predict``)
calls :func:`generate`.  With ``buckets=True`` the graphs are batched by atom count
(:func:`size_chunks`): a padded batch costs ~ overhead + batch x N_max^2 per denoising step, so a
51-atom environment among 15-atom ones would make every member of its batch as expensive as itself.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from s2s.environment import Environment
from s2s.geometry.shells import assign_shells
from s2s.model import S2SModel
from s2s.model.diffusion import SAMPLERS
from s2s.model.graph import uncollate
from s2s.site_record import fidelity_flags

#: Fixed cost of one batched sampling call per step, in units of one padded graph's N^2 (atoms^2).
#: Measured on one CPU thread (2-core machine, loaded): a call-step costs ~0.03-0.04 s plus
#: ~1e-4 s x batch x N_max^2, so the overhead is about that of one 17-atom graph.
CALL_OVERHEAD_ATOMS2 = 300.0


def size_chunks(
    counts: np.ndarray, max_len: int, overhead: float = CALL_OVERHEAD_ATOMS2, weight: int = 1
) -> list[np.ndarray]:
    """Indices of ``counts`` (atom counts, shape (M,)) grouped into batches at minimal modelled cost.

    Sampling pads a batch to its largest environment and costs ~ ``overhead`` + batch x
    N_max^2 per step (dense graphs; ``weight`` = samples per spectrum multiplies the batch),
    while very small batches pay the per-call overhead many times.  The counts are sorted
    (stable) and split into contiguous chunks of at most ``max_len`` by dynamic programming on
    that cost model.  Returns index arrays in ascending count order.
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


def chunk_seed(seed: int, k: int) -> int:
    """Independent, reproducible seed for chunk ``k`` of a run with ``seed`` (numpy SeedSequence)."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint32)[0])


def _chunk_generator(seed: int, k: int, n_chunks: int) -> torch.Generator:
    """CPU generator of chunk ``k`` of ``n_chunks``: ``seed`` itself for a single chunk, else :func:`chunk_seed`."""
    return torch.Generator().manual_seed(int(seed) if n_chunks == 1 else chunk_seed(int(seed), k))


def _sample_batches(
    model: S2SModel,
    spec_t: torch.Tensor,
    counts: torch.Tensor,
    gen: torch.Generator,
    *,
    n_steps: int | None,
    batch_size: int,
    sampler: str,
    eta: float,
    guidance: float,
    progress: bool,
    noise_scale: float = 1.0,
    fid_t: torch.Tensor | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sample graphs (spectrum ``spec_t[i]`` (B, 200), ``counts[i]`` atoms, fidelity flag ``fid_t[i]`` unless
    None) in batches of ``batch_size`` in input order from one generator; returns (coords (N, 3) Å, species (N,))
    per graph."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    starts = range(0, spec_t.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="generating", unit="batch")
    for start in starts:
        sl = slice(start, start + batch_size)
        res = SAMPLERS[sampler](
            model.denoiser,
            spec_t[sl],
            counts[sl],
            model.schedule,
            gen,
            n_steps=n_steps,
            eta=eta,
            guidance=guidance,
            noise_scale=noise_scale,
            **({} if fid_t is None else {"fidelity": fid_t[sl]}),
        )
        out.extend(uncollate(res.x, res.species, res.node_mask))
    return out


@torch.no_grad()
def generate(
    model: S2SModel,
    spectra: np.ndarray,
    n_atoms: Sequence[int] | np.ndarray | None = None,
    *,
    n_samples: int = 1,
    seed: int = 0,
    n_steps: int | None = None,
    batch_size: int = 64,
    natoms_mode: str = "sample",
    progress: bool = False,
    sampler: str = "ancestral",
    eta: float = 0.0,
    guidance: float = 0.0,
    device: str | torch.device | None = None,
    buckets: bool = False,
    noise_scale: float = 1.0,
    fidelity: float | Sequence[float] | np.ndarray | None = None,
) -> list[list[Environment]]:
    """Generate ``n_samples`` environments for each spectrum (M, 200).

    n_atoms: the atom count per spectrum (M,) (the paper's protocol: the target's count); ``None``
    draws it from the model's p(N | s) (``natoms_mode="sample"``) or takes its mode ("argmax").
    Returns a list (per spectrum) of lists (per sample) of Environments (Å, excited O at index 0),
    shells assigned by the 2.0 Å graph-hop rule; meta ``spectrum_index`` and ``sample``.
    Deterministic for a given seed.

    ``sampler``: "ancestral" (default; the paper's sampler, strided when ``n_steps`` < T) or
    "ddim" (:func:`s2s.model.diffusion.sample_ddim`, few-step; ``eta`` = 0 deterministic, > 0
    stochastic; ``n_steps=None`` means all T steps for both).  ``guidance``: classifier-free
    guidance weight (0: none; only for models trained with ``cond_drop`` > 0).  ``noise_scale``: the
    ancestral sampler's per-step noise factor (:func:`s2s.model.diffusion.sample`; 1 = the paper's,
    < 1 low-temperature; the DDIM sampler refuses anything but 1).  ``device``: move the
    model there first (e.g. "cuda"); by default it runs where its weights are.  The random numbers
    are drawn on the CPU, so a seed gives the same noise on every device.

    A model trained on OT-coupled noise (``DiffusionConfig.coupling="ot"``, flow matching) is sampled by
    the deterministic ``sampler="ddim"`` (``eta=0``: the Euler steps of its ODE) only.

    ``buckets``: batch by atom count (:func:`size_chunks`), chunk k seeded by
    :func:`chunk_seed` (``seed``, k) (by ``seed`` itself when everything fits one chunk); with
    ``n_atoms=None`` the counts of all M x n_samples graphs are drawn first (seeded) and the graphs
    bucketed one by one.  ``buckets=False``: batches of ``batch_size`` graphs in input order from one
    generator.  The two give different (equally valid) random streams.

    ``fidelity``: for a model with ``ModelConfig.fidelity_input``, the spectra's fidelity flag in [0, 1], one
    number or one per spectrum (M,): 1 for a first-principles ("reference") spectrum, 0 for xTB
    (:func:`s2s.site_record.fidelity_flag`); None = 0.  A model without that input refuses it.  The atom-count
    head p(N | s) does not read it.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}")
    coupling = getattr(getattr(getattr(model, "cfg", None), "diffusion", None), "coupling", "independent")
    if coupling != "independent" and (sampler != "ddim" or eta != 0.0):
        raise ValueError(
            f"generate: this model was trained on {coupling!r}-coupled noise, whose path has no Gaussian posterior "
            f"q(z_s | z_t, x_0) for a stochastic step to sample; use its ODE: sampler='ddim' with eta=0 "
            f"(got sampler={sampler!r}, eta={eta:g})"
        )
    if noise_scale != 1.0 and sampler != "ancestral":
        raise ValueError(f"generate: noise_scale {noise_scale:g} is an ancestral-sampler option, not {sampler!r}'s")
    if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"generate: n_samples must be a positive integer, got {n_samples!r}")
    if guidance and not getattr(getattr(getattr(model, "cfg", None), "diffusion", None), "cond_drop", 0.0):
        raise ValueError(
            f"generate: guidance {guidance:g} needs a model trained with spectrum dropout (cond_drop > 0); "
            "this one never learnt the unconditional score"
        )
    if fidelity is not None and not getattr(getattr(getattr(model, "cfg", None), "model", None), "fidelity_input", 0):
        raise ValueError(
            "generate: fidelity given, but this model has no fidelity input (ModelConfig.fidelity_input); drop it"
        )
    if device is not None:
        model.to(device)
    spectra = np.atleast_2d(np.asarray(spectra, dtype=np.float32))
    m = spectra.shape[0]
    n_samples = int(n_samples)
    flags = fidelity_flags(fidelity, m)  # (M,) float32 or None
    fid_all = None if flags is None else torch.as_tensor(flags).repeat_interleave(n_samples)
    opts = dict(
        n_steps=n_steps, batch_size=batch_size, sampler=sampler, eta=eta, guidance=guidance, noise_scale=noise_scale
    )
    spec_all = torch.as_tensor(spectra).repeat_interleave(n_samples, dim=0)  # graph g = (g // n_samples, g % n_samples)
    if n_atoms is not None:
        counts = torch.as_tensor(np.asarray(n_atoms), dtype=torch.long)
        if counts.shape != (m,):
            raise ValueError(f"n_atoms must have one count per spectrum ({m}), got shape {tuple(counts.shape)}")
        if bool((counts < 1).any()):
            raise ValueError("generate: n_atoms must be >= 1")
    if not buckets:
        gen = torch.Generator().manual_seed(seed)
        if n_atoms is None:
            per_graph = model.natoms.predict(spec_all, mode=natoms_mode, generator=gen)
        else:
            per_graph = counts.repeat_interleave(n_samples)
        graphs = _sample_batches(model, spec_all, per_graph, gen, progress=progress, fid_t=fid_all, **opts)
    elif n_atoms is not None:  # buckets of spectra, each with its n_samples graphs
        chunks = size_chunks(counts.numpy(), max(1, batch_size // n_samples), weight=n_samples)
        graphs = [None] * (m * n_samples)
        it = chunks
        if progress and len(chunks) > 1:
            from tqdm.auto import tqdm

            it = tqdm(chunks, desc="generating", unit="batch")
        for k, idx in enumerate(it):
            gen = _chunk_generator(seed, k, len(chunks))
            sel = torch.as_tensor(idx)
            res = _sample_batches(
                model,
                spec_all.view(m, n_samples, -1)[sel].reshape(-1, spectra.shape[1]),
                counts[sel].repeat_interleave(n_samples),
                gen,
                progress=progress and len(chunks) == 1,
                fid_t=None if fid_all is None else fid_all.view(m, n_samples)[sel].reshape(-1),
                **opts,
            )
            for j, g in enumerate(res):
                graphs[int(idx[j // n_samples]) * n_samples + j % n_samples] = g
    else:  # counts drawn first, then every graph bucketed on its own
        gen = torch.Generator().manual_seed(seed)
        per_graph = model.natoms.predict(spec_all, mode=natoms_mode, generator=gen).cpu()
        chunks = size_chunks(per_graph.numpy(), batch_size)
        graphs = [None] * (m * n_samples)
        for k, idx in enumerate(chunks):
            g_k = _chunk_generator(seed, k, len(chunks))
            sel = torch.as_tensor(idx)
            fid_k = None if fid_all is None else fid_all[sel]
            for j, g in enumerate(
                _sample_batches(model, spec_all[sel], per_graph[sel], g_k, progress=False, fid_t=fid_k, **opts)
            ):
                graphs[int(idx[j])] = g
    flat = [
        Environment(sp, x, assign_shells(x), meta={"spectrum_index": i // n_samples, "sample": i % n_samples})
        for i, (x, sp) in enumerate(graphs)
    ]
    return [flat[i * n_samples : (i + 1) * n_samples] for i in range(m)]
