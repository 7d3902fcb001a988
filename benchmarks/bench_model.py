"""Model benchmarks on CPU: training steps per second and sampling time per structure.

    python benchmarks/bench_model.py                 # cpu preset, batch 64 graphs of 16 atoms, T = 1000
    python benchmarks/bench_model.py --preset paper  # the paper's size (slow on CPU)
    python benchmarks/bench_model.py --threads 2 --atoms 16 --batch 64 --sample-batch 32

Prints figures; asserts nothing.  Random environments of silica-like density stand in for data.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from s2s.config import get_preset
from s2s.environment import Environment
from s2s.model import S2SModel
from s2s.model.diffusion import n_parameters, sample
from s2s.model.graph import collate


def random_envs(n_env: int, n_atoms: int, seed: int = 0) -> tuple[list[Environment], np.ndarray]:
    rng = np.random.default_rng(seed)
    envs = []
    for _ in range(n_env):
        x = rng.normal(scale=2.5, size=(n_atoms, 3))
        x[0] = 0
        sp = rng.integers(0, 2, n_atoms)
        sp[0] = 1
        envs.append(Environment(sp, x, np.r_[0, np.ones(n_atoms - 1, int)]))
    spec = rng.random((n_env, 200))
    return envs, spec / spec.sum(1, keepdims=True) / 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--atoms", type=int, default=16)
    ap.add_argument("--batch", type=int, default=None, help="training batch (default: the preset's)")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--sample-batch", type=int, default=32)
    ap.add_argument("--sample-steps", type=int, default=1000)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = get_preset(a.preset)
    bs = a.batch or cfg.train.batch_size
    model = S2SModel(cfg)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {a.threads}")
    print(
        f"preset {a.preset}: layers {cfg.model.n_layers}, hidden {cfg.model.hidden_dim}, message "
        f"{cfg.model.message_dim}, "
        f"{n_parameters(model.denoiser) / 1e6:.2f} M parameters"
    )
    envs, spec = random_envs(bs, a.atoms)
    batch = collate(envs, spec)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    for k in range(a.train_steps + 2):
        if k == 2:
            t0 = time.perf_counter()
        loss, _ = model.loss(batch, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = (time.perf_counter() - t0) / a.train_steps
    print(
        f"training: {dt:.3f} s/step, {1 / dt:.2f} steps/s (batch {bs} graphs x {a.atoms} atoms); "
        f"an epoch of 2,000 samples = {dt * np.ceil(2000 / bs):.0f} s"
    )
    model.eval()
    t0 = time.perf_counter()
    sample(
        model.denoiser,
        torch.as_tensor(spec[: a.sample_batch], dtype=torch.float32),
        torch.full((a.sample_batch,), a.atoms),
        model.schedule,
        g,
        n_steps=a.sample_steps,
    )
    dt = time.perf_counter() - t0
    print(
        f"sampling: T = {a.sample_steps} steps, batch {a.sample_batch}: {dt:.1f} s, {dt / a.sample_batch:.2f} s per "
        "structure"
    )


if __name__ == "__main__":
    main()
