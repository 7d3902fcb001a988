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


@dataclass
class _Data:
    """The training and validation inputs (SOAP rows or environments, as :func:`_take` reads them) and their
    target spectra, (n_train, 200) and (n_val, 200) float32 tensors."""

    tr_in: Any
    va_in: Any
    y_tr: torch.Tensor
    y_va: torch.Tensor


@dataclass
class _Run:
    """What a forward training run carries from step to step and across resumed calls (``checkpoint.pt``)."""

    cfg: ForwardConfig
    net: nn.Module
    opt: torch.optim.Optimizer
    meta: dict  # n_train, n_val, n_val_structures and the caller's info: into model.pt and run.json
    step: int = 0
    cpu_used: float = 0.0  # process CPU seconds of training, summed over resumed calls
    history: list[dict] = field(default_factory=list)
    running: list[float] = field(default_factory=list)  # training MSEs of the steps since the last logged row
    best_step: int = 0
    best_val_mse: float = math.inf
    best_weights: dict[str, torch.Tensor] | None = None

    def lr_at(self, k: int) -> float:
        """The learning rate at step ``k``: cosine decay over ``cfg.max_steps`` down to ``lr_min_factor * lr``."""
        cfg = self.cfg
        f = cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (
            1 + math.cos(math.pi * min(k, cfg.max_steps) / cfg.max_steps)
        )
        return cfg.lr * f

    def log(self, val_mse: float) -> None:
        """Append a loss row at this step (training MSE: the mean since the last row, NaN without any)."""
        self.history.append(
            {
                "step": self.step,
                "train_mse": float(np.mean(self.running)) if self.running else math.nan,
                "val_mse": val_mse,
                "lr": self.lr_at(self.step),
                "cpu_seconds": round(self.cpu_used, 3),
            }
        )
        self.running = []

    def keep_if_best(self, val_mse: float) -> None:
        """Keep a copy of the weights when ``val_mse`` beats the best validation MSE so far."""
        if val_mse < self.best_val_mse:
            self.best_step, self.best_val_mse = self.step, val_mse
            self.best_weights = {k: t.detach().clone() for k, t in self.net.state_dict().items()}

    def best_model(self, path: Path | None = None) -> ForwardModel:
        """The best-validation weights as a ForwardModel (``path``: where it was saved)."""
        meta = {
            **self.meta,
            "step": self.step,
            "best_step": self.best_step,
            "best_val_mse": self.best_val_mse,
            "cpu_seconds": self.cpu_used,
        }
        fm = ForwardModel(self.cfg, build_net(self.cfg, _n_features(self.net)), meta, path)
        fm.net.load_state_dict(self.best_weights)
        return fm

    def checkpoint(self, torch_rng: torch.Tensor) -> dict:
        """The full state for ``checkpoint.pt`` (``torch_rng``: the dropout stream to continue)."""
        return {
            "config": self.cfg.to_dict(),
            "weights": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "cpu_seconds": self.cpu_used,
            "history": self.history,
            "best_step": self.best_step,
            "best_val_mse": self.best_val_mse,
            "best_weights": self.best_weights,
            "torch_rng": torch_rng,
        }

    def resume_from(self, ckpt: Path) -> None:
        """Continue the run saved in ``ckpt`` (same config, else ValueError)."""
        cfg = self.cfg
        st = load_checkpoint(ckpt, "a forward-model training checkpoint (checkpoint.pt written by 's2s train-forward')")
        if st.get("config") != cfg.to_dict():
            raise ValueError(
                f"{ckpt}: written with another forward config; use --no-resume or another --out "
                f"(differs in {sorted(k for k in cfg.to_dict() if st.get('config', {}).get(k) != cfg.to_dict()[k])})"
            )
        self.net.load_state_dict(st["weights"])
        self.opt.load_state_dict(st["optimizer"])
        self.step, self.cpu_used, self.history = int(st["step"]), float(st["cpu_seconds"]), list(st["history"])
        self.best_step, self.best_val_mse = int(st["best_step"]), float(st["best_val_mse"])
        self.best_weights = st["best_weights"]
        if "torch_rng" in st:  # dropout masks continue the interrupted run's stream
            torch.set_rng_state(st["torch_rng"])


def _split(
    envs: list[Environment], y: np.ndarray, structure_ids: Sequence[str], cfg: ForwardConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Check the training set (``y``: (n, 200) spectra) and split it by structure: (train, validation) indices."""
    if y.ndim != 2 or y.shape != (len(envs), N_GRID):
        raise ValueError(f"train_forward: spectra must have shape ({len(envs)}, {N_GRID}), got {y.shape}")
    if len(structure_ids) != len(envs):
        raise ValueError(f"train_forward: {len(envs)} environments but {len(structure_ids)} structure ids")
    for i, e in enumerate(envs):
        check_environment(e, f"training environment {i} (structure {structure_ids[i]})")
    val = validation_mask(structure_ids, cfg.val_fraction, cfg.val_seed)
    tr_idx, va_idx = np.flatnonzero(~val), np.flatnonzero(val)
    if tr_idx.size == 0 or va_idx.size == 0:
        raise ValueError(
            f"train_forward: need training and validation structures; got {tr_idx.size} / {va_idx.size} sites"
        )
    return tr_idx, va_idx


def _start(
    cfg: ForwardConfig,
    envs: list[Environment],
    y: np.ndarray,
    tr_idx: np.ndarray,
    va_idx: np.ndarray,
    progress: bool,
    input_spectra: np.ndarray | None,
    meta: dict,
    init_from: ForwardModel | None = None,
) -> tuple[_Run, _Data]:
    """Features, a fresh network (input standardisation and mean prior from the training split) and its optimiser.

    ``init_from``: start from that model's weights and input standardisation instead (fine-tuning, e.g. the xTB
    forward model on first-principles spectra); the mean prior is still this training split's mean spectrum, so the
    network's learned deviation from the mean carries over and the mean itself is the new fidelity's."""
    torch.manual_seed(cfg.seed)
    inputs_all = _prepare_inputs(cfg, envs, progress, input_spectra)
    if cfg.kind == "soap":
        tr_in, va_in = inputs_all[torch.as_tensor(tr_idx)], inputs_all[torch.as_tensor(va_idx)]
    else:
        tr_in, va_in = [envs[i] for i in tr_idx], [envs[i] for i in va_idx]
    data = _Data(tr_in, va_in, torch.as_tensor(y[tr_idx]), torch.as_tensor(y[va_idx]))
    net = build_net(cfg, tr_in.shape[1] if cfg.kind == "soap" else None)
    if init_from is not None:
        _load_init(net, cfg, init_from)
    elif cfg.kind == "soap":
        net.mean.copy_(tr_in.mean(0))
        net.std.copy_(tr_in.std(0) + 1e-6 * float(tr_in.std(0).max()) + 1e-12)
    if cfg.mean_prior:
        net.log_prior.copy_(torch.log(data.y_tr.mean(0).clamp_min(1e-6)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return _Run(cfg, net, opt, meta), data


ARCHITECTURE = (
    "kind",
    "hidden",
    "n_layers",
    "mean_prior",
    "soap_r_cut",
    "soap_n_max",
    "soap_l_max",
    "soap_sigma",
    "n_rbf",
    "rbf_max",
    "pair_cutoff",
    "input_spectrum",
)


def _load_init(net: nn.Module, cfg: ForwardConfig, init: ForwardModel) -> None:
    """Copy ``init``'s weights (and SOAP standardisation) into ``net``; ValueError naming the fields when the
    architectures differ."""
    differ = [k for k in ARCHITECTURE if getattr(cfg, k) != getattr(init.cfg, k)]
    if differ:
        where = f" ({init.path})" if init.path is not None else ""
        raise ValueError(f"train_forward: init_from{where} has another architecture: differs in {differ}")
    net.load_state_dict(init.net.state_dict())


def _loss_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["step", "train_mse", "val_mse", "lr", "cpu_seconds"])
    w.writeheader()
    w.writerows(history)
    return buf.getvalue()


def _save(run: _Run, out: Path | None, final: bool) -> None:
    """``checkpoint.pt``, ``model.pt`` (best validation weights, once there are any), ``loss.csv`` and ``run.json``."""
    if out is None:
        return
    rng = torch.get_rng_state()  # building the saved copy must not advance the dropout stream
    best_state = run.best_model().state() if run.best_weights is not None else None
    _atomic_torch_save(run.checkpoint(rng), out / CHECKPOINT)
    torch.set_rng_state(rng)
    if best_state is not None:
        _atomic_torch_save(best_state, out / FINAL)
    _atomic_text(out / LOSS_CSV, _loss_csv(run.history))
    summary = {
        "config": run.cfg.to_dict(),
        **run.meta,
        "step": run.step,
        "best_step": run.best_step,
        "best_val_mse": run.best_val_mse,
        "cpu_seconds": round(run.cpu_used, 2),
        "finished": final,
    }
    _atomic_text(out / RUN_JSON, json.dumps(summary, indent=1) + "\n")


def _optimiser_step(run: _Run, data: _Data) -> None:
    """One AdamW step on the batch of this step (``default_rng([seed, step])``); its CPU time is counted."""
    cfg, net, opt = run.cfg, run.net, run.opt
    t0 = time.process_time()
    rng = np.random.default_rng([cfg.seed, run.step])
    n_train = data.y_tr.shape[0]
    idx = rng.choice(n_train, size=min(cfg.batch_size, n_train), replace=False)
    for g in opt.param_groups:
        g["lr"] = run.lr_at(run.step)
    pred = unit_area_softmax(net(_take(cfg, data.tr_in, idx)))
    loss = (((pred - data.y_tr[idx]) * SCALE) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    run.step += 1
    run.running.append(loss.item() / SCALE**2)
    run.cpu_used += time.process_time() - t0


def _validate(run: _Run, data: _Data) -> float:
    """Validation MSE at this step (its CPU time counted), logged; the weights kept when they are the best."""
    t1 = time.process_time()
    v = _eval_mse(run.net, run.cfg, data.va_in, data.y_va)
    run.cpu_used += time.process_time() - t1
    run.log(v)
    run.keep_if_best(v)
    return v


def _validate_last(run: _Run, data: _Data, budget_hit: bool) -> None:
    """After the loop: evaluate the last step too when it was not (a budget stop, a step off the evaluation grid,
    or no evaluation at all), so that the weights kept are the best of every step that counts."""
    if run.best_weights is None or (run.step % run.cfg.eval_every and not budget_hit) or budget_hit:
        v = _eval_mse(run.net, run.cfg, data.va_in, data.y_va)
        if not run.history or run.history[-1]["step"] != run.step:
            run.log(v)
        run.keep_if_best(v)


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
    init_from: ForwardModel | None = None,
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
    translator (``cfg.input_spectrum``), each site's spectrum at the input fidelity.  ``init_from``: a trained
    forward model of the same architecture to start from (fine-tuning; :func:`_start`); ignored when a checkpoint
    is resumed.
    """
    envs = list(envs)
    y = np.asarray(spectra, dtype=np.float32)
    tr_idx, va_idx = _split(envs, y, structure_ids, cfg)
    max_steps = int(cfg.max_steps if max_steps is None else max_steps)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale(out)  # temporaries of killed runs (their PID no longer runs)
    meta = {
        "n_train": int(tr_idx.size),
        "n_val": int(va_idx.size),
        "n_val_structures": int(len({structure_ids[i] for i in va_idx})),
        **(info or {}),
    }
    if init_from is not None:
        meta["init_from"] = str(init_from.path) if init_from.path is not None else "a model in memory"
    run, data = _start(cfg, envs, y, tr_idx, va_idx, progress, input_spectra, meta, init_from)
    if out is not None and (out / CHECKPOINT).exists() and resume:
        run.resume_from(out / CHECKPOINT)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_steps, initial=run.step, desc="train-forward", unit="step")
    run.net.train()
    budget_hit = False
    while run.step < max_steps:
        if cpu_seconds is not None and run.cpu_used >= cpu_seconds:
            budget_hit = True
            break
        _optimiser_step(run, data)
        if bar is not None:
            bar.update(1)
        if run.step % cfg.eval_every == 0 or run.step == max_steps:
            v = _validate(run, data)
            if bar is not None:
                bar.set_postfix(val_mse=f"{v:.2e}", best=f"{run.best_val_mse:.2e}")
            _save(run, out, final=False)
    if bar is not None:
        bar.close()
    _validate_last(run, data, budget_hit)
    _save(run, out, final=True)
    fm = run.best_model(out / FINAL if out else None)
    fm.net.eval()
    return ForwardTrainResult(fm, run.step, run.best_step, run.best_val_mse, run.cpu_used, run.history, out)


__all__ = ["ForwardTrainResult", "train_forward"]
