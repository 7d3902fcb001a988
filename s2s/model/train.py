"""Training loop: AdamW, EMA weights, atomic checkpoints, exact resume.

Reproducibility: the model is initialised from ``seed``; the data order of epoch e is a
permutation drawn from ``default_rng([seed, e])``; the diffusion noise of step k comes from a
torch generator seeded with ``(seed, k)``.  A run interrupted after any checkpoint and resumed
therefore ends with bit-identical weights to an uninterrupted run (same machine, same threads).

Continuation (``init_from``): a new run can start from another run's ``checkpoint.pt`` (its
weights, EMA, optimiser state, step count and loss history) and go on training on a different
training set, e.g. a grown dataset or a user's own spectra; the step count, the learning-rate
state and the loss curve carry on, and ``run.json`` records where it started.  A continuation may add the
fidelity input (``ModelConfig.fidelity_input``) to a model without it: the input layer's weight gets a zero
column for the new channel (:func:`add_fidelity_column`), so the network starts as the old one for either
flag, and training learns the column.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from s2s.checkpoint_io import MODEL_FILE, CheckpointError, load_checkpoint, require_keys
from s2s.config import S2SConfig, TrainConfig
from s2s.environment import Environment
from s2s.files import atomic_path, atomic_write_text, clean_stale
from s2s.model import S2SModel
from s2s.model.graph import collate
from s2s.site_record import fidelity_flags

CHECKPOINT = "checkpoint.pt"
FINAL = "model.pt"
LOSS_CSV = "loss.csv"
#: What a training checkpoint is, for messages (:func:`s2s.checkpoint_io.load_checkpoint`).
TRAINING_CHECKPOINT = "a training checkpoint (checkpoint.pt written by 's2s train')"


@dataclass
class TrainResult:
    model: S2SModel  # EMA weights
    step: int
    history: list[dict] = field(default_factory=list)
    out_dir: Path | None = None
    #: what ended the run: "epochs" (the config's epochs), "max_steps", "cpu_budget", or "stop_after" (an
    #: interruption on purpose, tests); also ``stop_reason`` in ``run.json``
    stop_reason: str = "epochs"


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: never a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def size_bucketed_order(seed: int, epoch: int, sizes: np.ndarray, batch_size: int, window: int = 32) -> np.ndarray:
    """An epoch's order in which each run of ``batch_size`` items holds graphs of similar size.

    The epoch's permutation is cut into windows of ``window`` batches; inside a window the items are
    sorted by atom count and cut into batches; then all batches are shuffled.  Every item appears
    once, the order depends only on (seed, epoch), and a 51-atom graph pads only its own batch.
    """
    sizes = np.asarray(sizes)
    order = _epoch_order(seed, epoch, len(sizes))
    span = window * batch_size
    batches = []
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        chunk = chunk[np.argsort(sizes[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng = np.random.default_rng([seed, epoch, 1])
    return np.concatenate([batches[i] for i in rng.permutation(len(batches))])


def ema_avg_fn(beta: float, warmup: bool):
    """EMA update for :class:`AveragedModel`: theta_EMA <- d theta_EMA + (1 - d) theta.

    d = beta (the paper), or with ``warmup`` d = min(beta, (1 + n) / (10 + n)) after n updates, so that
    the average forgets the first, random weights quickly (the EMA warm-up of timm / EDM2 practice).
    """
    if not warmup:
        return get_ema_multi_avg_fn(beta)

    @torch.no_grad()
    def fn(ema_params, params, num_averaged):
        n = float(num_averaged)
        d = min(beta, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(ema_params, params, 1.0 - d)

    return fn


def lr_at(tc: TrainConfig, step: int) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up over ``warmup_steps``, then constant, then (if
    ``lr_decay_start`` is set) cosine decay to ``lr * lr_min_factor`` over ``lr_decay_steps`` steps, flat after."""
    f = min(1.0, (step + 1) / tc.warmup_steps) if tc.warmup_steps else 1.0
    if tc.lr_decay_start is not None and step >= tc.lr_decay_start:
        u = min(1.0, (step - tc.lr_decay_start) / max(1, tc.lr_decay_steps))
        f *= tc.lr_min_factor + (1.0 - tc.lr_min_factor) * 0.5 * (1.0 + math.cos(math.pi * u))
    return tc.lr * f


def configs_equal(a: dict, b: dict) -> bool:
    """Two saved configurations, compared after filling in defaults of fields added since either was saved."""
    return S2SConfig.from_dict(a).to_dict() == S2SConfig.from_dict(b).to_dict()


def make_model(cfg: S2SConfig, n_max: int, seed: int) -> S2SModel:
    torch.manual_seed(seed)
    return S2SModel(cfg, n_max=n_max)


def make_ema(model: S2SModel, beta: float, warmup: bool = False) -> AveragedModel:
    """theta_EMA <- beta theta_EMA + (1 - beta) theta (paper, Supplementary Text 1); see :func:`ema_avg_fn`."""
    return AveragedModel(model, multi_avg_fn=ema_avg_fn(beta, warmup), use_buffers=True)


def sum_seconds(history: list[dict]) -> float:
    """Wall time of a (possibly resumed) run: the per-call clocks in ``history`` restart at 0."""
    total, last = 0.0, 0.0
    for row in history:
        sec = float(row.get("seconds", 0.0))
        if sec < last:  # a resumed call started its clock again
            total += last
        last = sec
    return total + last


def sum_cpu_seconds(history: list[dict]) -> float:
    """Process CPU time of a run over all its stages (continuations): the last ``cpu_seconds`` of each stage."""
    last: dict[int, float] = {}
    for row in history:
        if row.get("cpu_seconds") is not None:
            last[int(row.get("stage", 0))] = float(row["cpu_seconds"])
    return float(sum(last.values()))


def _history_csv(history: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["step", "epoch", "loss", "natoms_ce", "seconds", "cpu_seconds", "stage"])
    w.writeheader()
    for row in history:
        w.writerow({**{k: row.get(k) for k in w.fieldnames}, "stage": row.get("stage", 0)})
    return buf.getvalue()


@dataclass
class _Run:
    """What a training run carries from step to step and across resumed calls (``checkpoint.pt``)."""

    model: S2SModel
    ema: AveragedModel
    opt: torch.optim.Optimizer
    n_max: int
    step: int = 0
    history: list[dict] = field(default_factory=list)
    running: list[dict] = field(default_factory=list)  # loss parts of the steps since the last logged row
    info: dict | None = None
    stage: int = 0  # 0 for a fresh run, +1 for each continuation (init_from) on another training set
    stage_start: int = 0  # the stage's first step: the config's epochs count from it

    def checkpoint(self, cfg: S2SConfig, n_train: int) -> dict:
        return {
            "config": cfg.to_dict(),
            "n_max": self.n_max,
            "n_train": n_train,
            "step": self.step,
            "history": self.history,
            "running": self.running,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "continued_from": (self.info or {}).get("continued_from"),
            "stage_start": self.stage_start,
        }

    def log(self, epoch: int, seconds: float, cpu_seconds: float) -> dict:
        """Append a loss row (means over the steps since the last row; NaN without any) and return it."""

        def mean(key: str) -> float:
            return float(np.mean([r[key] for r in self.running])) if self.running else float("nan")

        row = {
            "step": self.step,
            "epoch": epoch,
            "loss": mean("loss"),
            "natoms_ce": mean("natoms_ce"),
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu_seconds, 3),
            "stage": self.stage,
        }
        self.history.append(row)
        self.running = []
        return row


def _start(
    cfg: S2SConfig,
    environments: Sequence[Environment],
    spectra: np.ndarray,
    out: Path | None,
    resume: bool,
    init_from: str | Path | None,
    info: dict | None,
    device: str | torch.device,
) -> _Run:
    """A fresh run, a continuation of ``init_from``, or this run resumed from ``out/checkpoint.pt``."""
    tc = cfg.train
    n = len(environments)
    n_max = max(64, max(e.n_atoms for e in environments) + 16)
    init_state, init_info = None, None
    if init_from is not None and not (resume and out is not None and (out / CHECKPOINT).exists()):
        init_state, init_info = _load_init(Path(init_from), cfg, environments)
        n_max = init_state["n_max"]
    model = make_model(cfg, n_max, tc.seed)
    if init_state is not None and init_info.get("fidelity_input_added"):
        init_state = add_fidelity_column(init_state, model)
    model.set_spectrum_statistics(spectra)
    model.to(device)
    ema = make_ema(model, tc.ema_beta, tc.ema_warmup)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    run = _Run(model=model, ema=ema, opt=opt, n_max=n_max, info=info)
    resumed_stage_start = None
    if init_state is not None:
        model.load_state_dict(init_state["model"])
        ema.load_state_dict(init_state["ema"])
        opt.load_state_dict(init_state["optimizer"])
        for group in opt.param_groups:  # this run's optimiser settings apply (e.g. a lower lr to fine-tune)
            group["lr"], group["weight_decay"] = tc.lr, tc.weight_decay
        run.step, run.history = init_state["step"], list(init_state["history"])
        run.info = {**(info or {}), "continued_from": init_info}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        clean_stale(out)  # temporaries of killed runs (their PID no longer runs)
        ck = out / CHECKPOINT
        if resume and ck.exists():
            state = load_checkpoint(ck, TRAINING_CHECKPOINT)
            require_keys(state, ck, ("config", "n_train", "model", "ema", "optimizer", "step", "history", "n_max"))
            if not configs_equal(state["config"], cfg.to_dict()):
                raise ValueError(f"{ck}: saved with a different configuration; use another out_dir or resume=False")
            if state["n_train"] != n:
                raise ValueError(f"{ck}: saved for {state['n_train']} training items, got {n}")
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            opt.load_state_dict(state["optimizer"])
            run.step, run.history = state["step"], state["history"]
            run.running = state.get("running", [])
            run.n_max = state["n_max"]
            resumed_stage_start = state.get("stage_start")
            if state.get("continued_from"):
                run.info = {**(run.info or {}), "continued_from": state["continued_from"]}
    # The config's epochs count from the stage's first step: a continuation on a small set (e.g. 33 reference
    # spectra, one step per epoch) would otherwise be past its epochs at its first step and end without training.
    run.stage = (run.history[-1].get("stage", 0) if run.history else 0) + (init_state is not None)
    if init_state is not None:
        run.stage_start = int(init_state["step"])
    elif resumed_stage_start is not None:
        run.stage_start = int(resumed_stage_start)
    else:  # a fresh run, or a checkpoint written before stage_start was saved: the last step of earlier stages
        run.stage_start = max((int(r["step"]) for r in run.history if int(r.get("stage", 0)) < run.stage), default=0)
    return run


def _save(
    run: _Run,
    cfg: S2SConfig,
    out: Path | None,
    n: int,
    steps_per_epoch: int,
    t0: float,
    final: bool,
    stop_reason: str | None = None,
) -> None:
    """``checkpoint.pt`` and ``loss.csv``; when ``final``, also ``model.pt`` (EMA weights) and ``run.json``
    (with ``stop_reason``, what ended the run)."""
    if out is None:
        return
    atomic_torch_save(run.checkpoint(cfg, n), out / CHECKPOINT)
    atomic_write_text(out / LOSS_CSV, _history_csv(run.history))
    if final:
        save_inference_model(run.ema.module, cfg, run.n_max, out / FINAL, step=run.step)
        summary = {
            **(run.info or {}),
            "n_train": n,
            "n_max": run.n_max,
            "steps": run.step,
            "steps_per_epoch": steps_per_epoch,
            "epochs": run.step / steps_per_epoch,
            "seconds_this_call": round(time.perf_counter() - t0, 1),
            "seconds_total": round(sum_seconds(run.history), 1),
            "cpu_seconds_total": round(sum_cpu_seconds(run.history), 1),
            "stop_reason": stop_reason,
            "config": cfg.to_dict(),
        }
        atomic_write_text(out / "run.json", json.dumps(summary, indent=1))


def _snapshot(run: _Run, cfg: S2SConfig, snap_dir: Path, cpu_seconds: float) -> None:
    """Raw and EMA weights at this step (validation curves): ``snapshots/step_<step>.pt``."""
    snap_dir.mkdir(exist_ok=True)
    atomic_torch_save(
        {
            "step": run.step,
            "cpu_seconds": cpu_seconds,
            "model": run.model.state_dict(),
            "ema": run.ema.module.state_dict(),
            "config": cfg.to_dict(),
            "n_max": run.n_max,
        },
        snap_dir / f"step_{run.step:07d}.pt",
    )


def _optimiser_step(run: _Run, tc: TrainConfig, batch, generator: torch.Generator) -> dict[str, float]:
    """One AdamW step on ``batch`` (learning-rate schedule, gradient clipping, EMA update); the loss parts."""
    if tc.warmup_steps or tc.lr_decay_start is not None:
        for group in run.opt.param_groups:
            group["lr"] = lr_at(tc, run.step)
    loss, parts = run.model.loss(batch, generator)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if tc.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), tc.grad_clip)
    run.opt.step()
    run.ema.update_parameters(run.model)
    run.step += 1
    run.running.append(parts)
    return parts


def train(
    cfg: S2SConfig,
    environments: Sequence[Environment],
    spectra: np.ndarray,
    out_dir: str | Path | None = None,
    *,
    resume: bool = True,
    max_steps: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    info: dict | None = None,
    init_from: str | Path | None = None,
    cpu_budget: float | None = None,
    snapshot_every: int | None = None,
    device: str | torch.device = "cpu",
    fidelity: Sequence[float] | np.ndarray | None = None,
) -> TrainResult:
    """Train on (environment, spectrum) pairs; returns the EMA model.

    out_dir: where ``checkpoint.pt`` (full state), ``model.pt`` (EMA weights + config), ``loss.csv`` and
    ``run.json`` (with ``info``, e.g. the dataset and its hash) go; ``None`` keeps everything in memory.
    ``max_steps`` caps the optimiser steps (default: ``cfg.train.max_steps`` or epochs x steps per epoch, the
    epochs counted from the start of this stage).  ``stop_after``: stop after that many steps of this call,
    as an interruption would (tests).  ``init_from``: a ``checkpoint.pt`` of another run (same model and
    diffusion configuration) to continue from on this training set with this run's learning rate and weight
    decay; ``max_steps`` then counts its steps too; a checkpoint of this run in ``out_dir`` takes precedence.
    ``cpu_budget`` (s): stop once the stage's process CPU time, summed over resumed calls, reaches it, writing
    ``model.pt`` and ``run.json`` as a finished run does (recipes are compared at equal CPU time).
    ``snapshot_every``: also keep the raw and EMA weights every that many steps, and where ``cpu_budget``
    ends the run, in ``out_dir/snapshots/``.  ``device``: where the model and batches live ("cpu", "cuda");
    random numbers are drawn on the CPU, so a seed gives the same data order and noise on every device.
    ``fidelity``: the fidelity flag of each training spectrum (M,) (1 first principles, 0 xTB;
    :func:`s2s.site_record.fidelity_flag` of the records), required by and only for a model with
    ``ModelConfig.fidelity_input``; every batch carries its items' flags (``GraphBatch.fidelity``).
    """
    tc = cfg.train
    spectra = np.asarray(spectra, dtype=np.float64)
    n = len(environments)
    if n == 0:
        raise ValueError("train: empty training set")
    if spectra.shape != (n, cfg.model.spectrum_dim):
        raise ValueError(f"train: spectra must have shape ({n}, {cfg.model.spectrum_dim}), got {spectra.shape}")
    if cfg.model.fidelity_input and fidelity is None:
        raise ValueError("train: a model with fidelity_input needs the fidelity flag of every training spectrum")
    if not cfg.model.fidelity_input and fidelity is not None:
        raise ValueError("train: fidelity flags given, but the model has no fidelity input (fidelity_input=False)")
    flags = fidelity_flags(fidelity, n)  # (n,) float32 or None
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    out = Path(out_dir) if out_dir is not None else None
    run = _start(cfg, environments, spectra, out, resume, init_from, info, device)
    bs = min(tc.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    total, limit = run.stage_start + tc.epochs * steps_per_epoch, "epochs"
    for cap in (tc.max_steps, max_steps):
        if cap is not None and cap <= total:
            total, limit = cap, "max_steps"
    sizes = np.array([e.n_atoms for e in environments])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=run.step, desc="training", unit="step")
    run.model.train()
    t0 = time.perf_counter()
    c0 = time.process_time()
    last = run.history[-1] if run.history else {}
    cpu_before = float(last.get("cpu_seconds") or 0.0) if last.get("stage", 0) == run.stage and last else 0.0
    done_here = 0
    order, order_epoch = None, -1
    snap_dir = out / "snapshots" if (out is not None and snapshot_every) else None

    def cpu_now() -> float:
        return cpu_before + time.process_time() - c0

    def save(final: bool = False, reason: str | None = None) -> None:
        _save(run, cfg, out, n, steps_per_epoch, t0, final, reason)

    def finished(reason: str) -> TrainResult:
        run.ema.module.eval()
        return TrainResult(model=run.ema.module, step=run.step, history=run.history, out_dir=out, stop_reason=reason)

    try:
        while run.step < total:
            epoch, pos = divmod(run.step, steps_per_epoch)
            if epoch != order_epoch:
                order = (
                    size_bucketed_order(tc.seed, epoch, sizes, bs)
                    if tc.bucket_by_size
                    else _epoch_order(tc.seed, epoch, n)
                )
                order_epoch = epoch
            idx = order[pos * bs : (pos + 1) * bs]
            batch = collate(
                [environments[i] for i in idx], spectra[idx], fidelity=None if flags is None else flags[idx]
            ).to(device)
            _optimiser_step(run, tc, batch, _step_generator(tc.seed, run.step))
            done_here += 1
            if run.step % tc.log_every == 0 or run.step == total:
                row = run.log(epoch, time.perf_counter() - t0, cpu_now())
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
            if bar is not None:
                bar.update(1)
            if snap_dir is not None and run.step % snapshot_every == 0:
                _snapshot(run, cfg, snap_dir, cpu_now())
            if run.step % tc.checkpoint_every == 0 and run.step < total:
                save()
            cpu_check = cpu_now()  # one reading: the budget is judged and logged at the same CPU time
            if cpu_budget is not None and cpu_check >= cpu_budget and run.step < total:
                if snap_dir is not None and run.step % snapshot_every:  # the budget's end is evaluable at its CPU
                    _snapshot(run, cfg, snap_dir, cpu_check)
                if not run.history or run.history[-1]["step"] != run.step:
                    run.log(epoch, time.perf_counter() - t0, cpu_check)
                else:  # this step's row was logged before the check, at a lower CPU time
                    run.history[-1]["cpu_seconds"] = round(cpu_check, 3)
                save(final=True, reason="cpu_budget")  # a clean end: model.pt and run.json; a larger budget resumes
                return finished("cpu_budget")
            if stop_after is not None and done_here >= stop_after and run.step < total:
                save()
                return TrainResult(
                    model=run.ema.module, step=run.step, history=run.history, out_dir=out, stop_reason="stop_after"
                )
    except KeyboardInterrupt:
        save()
        raise
    finally:
        if bar is not None:
            bar.close()
    save(final=True, reason=limit)
    return finished(limit)


#: Diffusion settings that shape only the training (which noise pairs with which environment, which steps
#: are drawn, how they are weighted, how often the spectrum is dropped), not what the network computes or
#: how it is sampled: a continuation (``init_from``) may change them.
TRAINING_ONLY_DIFFUSION_FIELDS = (
    "coupling",
    "t_sampling",
    "alpha_band",
    "loss_weight",
    "min_snr_gamma",
    "snr_clamp",
    "cond_drop",
)


def _load_init(path: Path, cfg: S2SConfig, environments: Sequence[Environment]) -> tuple[dict, dict]:
    """The checkpoint to continue from, checked against this run; and its provenance."""
    import hashlib

    if not path.exists():
        raise FileNotFoundError(f"init_from: {path} does not exist (expected a checkpoint.pt written by training)")
    state = load_checkpoint(path, TRAINING_CHECKPOINT)
    if "optimizer" not in state or "ema" not in state:
        raise CheckpointError(path, "is not a training checkpoint (no optimiser state)", TRAINING_CHECKPOINT)
    require_keys(state, path, ("config", "n_max", "step", "n_train", "history"), TRAINING_CHECKPOINT)
    mine, theirs = cfg.to_dict(), state["config"]
    theirs = S2SConfig.from_dict(theirs).to_dict()
    changed = {
        k: (theirs["diffusion"][k], mine["diffusion"][k])
        for k in TRAINING_ONLY_DIFFUSION_FIELDS
        if mine["diffusion"][k] != theirs["diffusion"][k]
    }
    # the one change of the network a continuation may make: add the fidelity input (a zero column, below)
    added = bool(mine["model"]["fidelity_input"]) and not theirs["model"]["fidelity_input"]
    for part in ("model", "diffusion"):
        a, b = dict(mine.get(part)), dict(theirs.get(part))
        if part == "diffusion":  # what only shapes the training may change in a continuation
            for k in TRAINING_ONLY_DIFFUSION_FIELDS:
                a.pop(k), b.pop(k)
        if part == "model" and added:
            a.pop("fidelity_input"), b.pop("fidelity_input")
        if a != b:
            raise ValueError(
                f"init_from: {path}: its {part} configuration {theirs.get(part)} differs from this run's "
                f"{mine.get(part)}"
            )
    biggest = max(e.n_atoms for e in environments)
    if biggest > state["n_max"]:
        raise ValueError(
            f"init_from: {path}: its atom-count head covers N <= {state['n_max']}, the training set has "
            f"an environment of {biggest} atoms"
        )
    prov = {
        "checkpoint": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "step": state["step"],
        "n_train": state["n_train"],
        "lr": state["optimizer"]["param_groups"][0]["lr"],
    }
    if added:
        prov["fidelity_input_added"] = True
    if changed:
        prov["diffusion_changed"] = {k: {"from": v[0], "to": v[1]} for k, v in changed.items()}
    run_json = path.parent / "run.json"
    if run_json.exists():
        earlier = json.loads(run_json.read_text())
        prov.update({k: earlier[k] for k in ("dataset", "dataset_sha256", "split", "preset") if k in earlier})
    if state.get("continued_from"):  # the chain of earlier continuations
        prov["continued_from"] = state["continued_from"]
    return state, prov


#: The input layer of the denoiser, whose last column is the fidelity channel (``ModelConfig.fidelity_input``).
EMBED_WEIGHT = "denoiser.embed.weight"


def add_fidelity_column(state: dict, model: S2SModel) -> dict:
    """A training checkpoint ``state`` of a model without the fidelity input, made loadable into ``model``
    (the same configuration plus ``fidelity_input``): a zero last column in the input layer's weight
    (H, n_in) -> (H, n_in + 1) of the weights and of the EMA weights, and zero AdamW moments for it.  The
    network then computes exactly what the old one did, for any fidelity flag; the column is learnt from
    there (its first AdamW steps are larger than the others', up to ~3 lr, as its second moment starts at 0).
    Nothing else may differ: the weights are then loaded strictly.  Returns a new dict; ``state`` is not
    changed."""
    if not model.cfg.model.fidelity_input:
        raise ValueError("add_fidelity_column: the model has no fidelity input")
    n_in = model.denoiser.embed.in_features - 1

    def pad(w: torch.Tensor, where: str) -> torch.Tensor:
        if w.ndim != 2 or w.shape[1] != n_in:
            raise ValueError(f"init_from: {where} has shape {tuple(w.shape)}, expected (hidden, {n_in})")
        return torch.cat([w, torch.zeros(w.shape[0], 1, dtype=w.dtype, device=w.device)], dim=1)

    weights = dict(state["model"])
    weights[EMBED_WEIGHT] = pad(weights[EMBED_WEIGHT], EMBED_WEIGHT)
    ema = dict(state["ema"])
    ema["module." + EMBED_WEIGHT] = pad(ema["module." + EMBED_WEIGHT], "the EMA's " + EMBED_WEIGHT)
    # AdamW keys its state by the parameter's position in model.parameters() (the column adds no parameter)
    idx = [name for name, _ in model.named_parameters()].index(EMBED_WEIGHT)
    opt = {**state["optimizer"], "state": dict(state["optimizer"]["state"])}
    if idx in opt["state"]:
        moments = dict(opt["state"][idx])
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if k in moments:
                moments[k] = pad(moments[k], f"the optimiser's {k} of {EMBED_WEIGHT}")
        opt["state"][idx] = moments
    return {**state, "model": weights, "ema": ema, "optimizer": opt}


def save_inference_model(model: S2SModel, cfg: S2SConfig, n_max: int, path: Path, step: int = 0) -> None:
    """EMA weights + config, for ``load_model``."""
    atomic_torch_save({"config": cfg.to_dict(), "n_max": n_max, "step": step, "weights": model.state_dict()}, path)


def load_model(path: str | Path) -> S2SModel:
    """Load a model saved by training (``model.pt``, EMA weights) or a ``checkpoint.pt`` (its EMA weights)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    state = load_checkpoint(path, MODEL_FILE)
    require_keys(state, path, ("config", "n_max"))
    if "weights" not in state and "ema" not in state:
        raise CheckpointError(path, "has neither 'weights' nor 'ema' entries", MODEL_FILE)
    try:
        cfg = S2SConfig.from_dict(state["config"])
        model = S2SModel(cfg, n_max=int(state["n_max"]))
        if "weights" in state:
            model.load_state_dict(state["weights"])
        else:
            ema = make_ema(model, cfg.train.ema_beta, cfg.train.ema_warmup)
            ema.load_state_dict(state["ema"])
            model = ema.module
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            path, f"its weights do not fit its configuration ({type(exc).__name__}: {msg})", MODEL_FILE
        ) from None
    model.eval()
    return model
