"""Training the forward model (:class:`s2s.forward.model.ForwardModel`): environments -> spectra (n, 200).

Validation structures (:func:`s2s.forward.model.validation_mask`) choose the weights kept;
checkpoints, ``model.pt``, ``loss.csv`` and ``run.json`` are written atomically (:mod:`s2s.files`)
and a run resumes from its ``checkpoint.pt``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from s2s.checkpoint_io import load_checkpoint
from s2s.descriptors.soap import soap_vectors
from s2s.environment import Environment
from s2s.files import atomic_path, atomic_write_text, clean_stale
from s2s.forward.model import (
    CHECKPOINT,
    FINAL,
    LOSS_CSV,
    RUN_JSON,
    SCALE,
    ForwardConfig,
    ForwardModel,
    _n_features,
    build_net,
    check_environment,
    distance_batch,
    unit_area_softmax,
    validation_mask,
    with_input_spectra,
)
from s2s.spectrum import N_GRID


# ----------------------------------------------------------------------------- training
@dataclass
class ForwardTrainResult:
    model: ForwardModel  # the weights with the best validation MSE
    step: int
    best_step: int
    best_val_mse: float
    cpu_seconds: float
    history: list[dict] = field(default_factory=list)
    out_dir: Path | None = None


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _atomic_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _prepare_inputs(cfg: ForwardConfig, envs: list[Environment], progress: bool, input_spectra=None):
    """Per-environment inputs: a (n, F) SOAP tensor (with the input spectra appended for a translator), or the
    environments themselves."""
    if cfg.kind == "soap":
        x = torch.as_tensor(soap_vectors(envs, cfg.soap_settings(), progress=progress), dtype=torch.float32)
        return with_input_spectra(cfg, x, input_spectra)
    return envs


def _take(cfg: ForwardConfig, inputs, idx: np.ndarray):
    if cfg.kind == "soap":
        return inputs[torch.as_tensor(idx)]
    return distance_batch([inputs[int(i)] for i in idx])


def _eval_mse(net: nn.Module, cfg: ForwardConfig, inputs, spectra: torch.Tensor, bs: int = 512) -> float:
    net.eval()
    total = 0.0
    with torch.no_grad():
        for s in range(0, spectra.shape[0], bs):
            idx = np.arange(s, min(s + bs, spectra.shape[0]))
            pred = unit_area_softmax(net(_take(cfg, inputs, idx)))
            total += float(((pred - spectra[idx]) ** 2).mean(dim=1).sum())
    net.train()
    return total / max(1, spectra.shape[0])


def train_forward(
    cfg: ForwardConfig,
    envs: Sequence[Environment],
    spectra: np.ndarray,
    structure_ids: Sequence[str],
    out_dir: str | os.PathLike | None = None,
    *,
    resume: bool = True,
    max_steps: int | None = None,
    cpu_seconds: float | None = None,
    progress: bool = True,
    info: dict | None = None,
    input_spectra: np.ndarray | None = None,
) -> ForwardTrainResult:
    """Train a forward model on ``envs`` -> ``spectra`` (n, 200), holding out the validation
    structures (:func:`validation_mask` of ``structure_ids``) to choose the weights kept.

    The learning rate decays over ``cfg.max_steps``.  Stops at ``max_steps`` (default ``cfg.max_steps``) optimiser
    steps or after ``cpu_seconds`` of
    process CPU time spent in training (summed over resumed sessions; feature computation excluded).
    With ``out_dir``: ``checkpoint.pt`` every ``cfg.eval_every`` steps (weights, optimiser, step,
    CPU time, best weights; resumed when present and ``resume``), ``model.pt`` (best validation
    weights with config and meta), ``loss.csv`` (step, train_mse, val_mse, lr, cpu_seconds) and
    ``run.json``, each written to a temporary file and renamed.  Batches of step k come from
    ``default_rng([seed, k])``, so a resumed run follows the same data order.  ``input_spectra`` (n, 200): for a
    translator (``cfg.input_spectrum``), each site's spectrum at the input fidelity.
    """
    envs = list(envs)
    y = np.asarray(spectra, dtype=np.float32)
    if y.ndim != 2 or y.shape != (len(envs), N_GRID):
        raise ValueError(f"train_forward: spectra must have shape ({len(envs)}, {N_GRID}), got {y.shape}")
    if len(structure_ids) != len(envs):
        raise ValueError(f"train_forward: {len(envs)} environments but {len(structure_ids)} structure ids")
    for i, e in enumerate(envs):
        check_environment(e, f"training environment {i} (structure {structure_ids[i]})")
    max_steps = int(cfg.max_steps if max_steps is None else max_steps)
    val = validation_mask(structure_ids, cfg.val_fraction, cfg.val_seed)
    tr_idx, va_idx = np.flatnonzero(~val), np.flatnonzero(val)
    if tr_idx.size == 0 or va_idx.size == 0:
        raise ValueError(
            f"train_forward: need training and validation structures; got {tr_idx.size} / {va_idx.size} sites"
        )
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale(out)  # temporaries of killed runs (their PID no longer runs)

    torch.manual_seed(cfg.seed)
    inputs_all = _prepare_inputs(cfg, envs, progress, input_spectra)
    if cfg.kind == "soap":
        tr_in, va_in = inputs_all[torch.as_tensor(tr_idx)], inputs_all[torch.as_tensor(va_idx)]
    else:
        tr_in, va_in = [envs[i] for i in tr_idx], [envs[i] for i in va_idx]
    y_tr, y_va = torch.as_tensor(y[tr_idx]), torch.as_tensor(y[va_idx])
    net = build_net(cfg, tr_in.shape[1] if cfg.kind == "soap" else None)
    if cfg.kind == "soap":
        net.mean.copy_(tr_in.mean(0))
        net.std.copy_(tr_in.std(0) + 1e-6 * float(tr_in.std(0).max()) + 1e-12)
    if cfg.mean_prior:
        net.log_prior.copy_(torch.log(y_tr.mean(0).clamp_min(1e-6)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    step, cpu_used, history = 0, 0.0, []
    best = {"step": 0, "val_mse": math.inf, "weights": None}
    ckpt = out / CHECKPOINT if out is not None else None
    if ckpt is not None and ckpt.exists() and resume:
        st = load_checkpoint(ckpt, "a forward-model training checkpoint (checkpoint.pt written by 's2s train-forward')")
        if st.get("config") != cfg.to_dict():
            raise ValueError(
                f"{ckpt}: written with another forward config; use --no-resume or another --out "
                f"(differs in {sorted(k for k in cfg.to_dict() if st.get('config', {}).get(k) != cfg.to_dict()[k])})"
            )
        net.load_state_dict(st["weights"])
        opt.load_state_dict(st["optimizer"])
        step, cpu_used, history = int(st["step"]), float(st["cpu_seconds"]), list(st["history"])
        best = {"step": int(st["best_step"]), "val_mse": float(st["best_val_mse"]), "weights": st["best_weights"]}
        if "torch_rng" in st:  # dropout masks continue the interrupted run's stream
            torch.set_rng_state(st["torch_rng"])

    def lr_at(k: int) -> float:
        f = cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (
            1 + math.cos(math.pi * min(k, cfg.max_steps) / cfg.max_steps)
        )
        return cfg.lr * f

    meta_base = {
        "n_train": int(tr_idx.size),
        "n_val": int(va_idx.size),
        "n_val_structures": int(len({structure_ids[i] for i in va_idx})),
        **(info or {}),
    }

    def best_model(path=None) -> ForwardModel:
        """The best-validation weights as a ForwardModel (``path``: where it was saved)."""
        fm = ForwardModel(
            cfg,
            build_net(cfg, _n_features(net)),
            {
                **meta_base,
                "step": step,
                "best_step": best["step"],
                "best_val_mse": best["val_mse"],
                "cpu_seconds": cpu_used,
            },
            path,
        )
        fm.net.load_state_dict(best["weights"])
        return fm

    def save(final: bool) -> None:
        if out is None:
            return
        rng = torch.get_rng_state()  # building the saved copy must not advance the dropout stream
        best_state = best_model().state() if best["weights"] is not None else None
        _atomic_torch_save(
            {
                "config": cfg.to_dict(),
                "weights": net.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "cpu_seconds": cpu_used,
                "history": history,
                "best_step": best["step"],
                "best_val_mse": best["val_mse"],
                "best_weights": best["weights"],
                "torch_rng": rng,
            },
            ckpt,
        )
        torch.set_rng_state(rng)
        if best_state is not None:
            _atomic_torch_save(best_state, out / FINAL)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["step", "train_mse", "val_mse", "lr", "cpu_seconds"])
        w.writeheader()
        w.writerows(history)
        _atomic_text(out / LOSS_CSV, buf.getvalue())
        _atomic_text(
            out / RUN_JSON,
            json.dumps(
                {
                    "config": cfg.to_dict(),
                    **meta_base,
                    "step": step,
                    "best_step": best["step"],
                    "best_val_mse": best["val_mse"],
                    "cpu_seconds": round(cpu_used, 2),
                    "finished": final,
                },
                indent=1,
            )
            + "\n",
        )

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, initial=step, desc="train-forward", unit="step")
    net.train()
    running: list[float] = []
    budget_hit = False
    while step < max_steps:
        if cpu_seconds is not None and cpu_used >= cpu_seconds:
            budget_hit = True
            break
        t0 = time.process_time()
        rng = np.random.default_rng([cfg.seed, step])
        idx = rng.choice(tr_idx.size, size=min(cfg.batch_size, tr_idx.size), replace=False)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        pred = unit_area_softmax(net(_take(cfg, tr_in, idx)))
        loss = (((pred - y_tr[idx]) * SCALE) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running.append(loss.item() / SCALE**2)
        cpu_used += time.process_time() - t0
        if bar is not None:
            bar.update(1)
        if step % cfg.eval_every == 0 or step == max_steps:
            t1 = time.process_time()
            v = _eval_mse(net, cfg, va_in, y_va)
            cpu_used += time.process_time() - t1
            history.append(
                {
                    "step": step,
                    "train_mse": float(np.mean(running)),
                    "val_mse": v,
                    "lr": lr_at(step),
                    "cpu_seconds": round(cpu_used, 3),
                }
            )
            running = []
            if v < best["val_mse"]:
                best = {
                    "step": step,
                    "val_mse": v,
                    "weights": {k: t.detach().clone() for k, t in net.state_dict().items()},
                }
            if bar is not None:
                bar.set_postfix(val_mse=f"{v:.2e}", best=f"{best['val_mse']:.2e}")
            save(final=False)
    if bar is not None:
        bar.close()
    if best["weights"] is None or (step % cfg.eval_every and not budget_hit) or budget_hit:
        v = _eval_mse(net, cfg, va_in, y_va)
        if not history or history[-1]["step"] != step:
            history.append(
                {
                    "step": step,
                    "train_mse": float(np.mean(running)) if running else math.nan,
                    "val_mse": v,
                    "lr": lr_at(step),
                    "cpu_seconds": round(cpu_used, 3),
                }
            )
        if v < best["val_mse"]:
            best = {"step": step, "val_mse": v, "weights": {k: t.detach().clone() for k, t in net.state_dict().items()}}
    save(final=True)
    fm = best_model(out / FINAL if out else None)
    fm.net.eval()
    return ForwardTrainResult(fm, step, best["step"], best["val_mse"], cpu_used, history, out)


__all__ = ["ForwardTrainResult", "train_forward"]
