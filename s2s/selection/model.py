"""The confidence model: a small MLP that scores each of K candidates of one spectrum.

Input: :func:`s2s.selection.features.group_features` per candidate (standardised with the fit data's
mean and spread).  Output: a score, higher = closer to the truth.  Three losses, one architecture:

* ``pointwise`` - regress the (clipped) 1st-shell RMSD: score = -predicted error (Huber loss);
* ``pairwise`` - logistic loss on the score difference of every pair of candidates of one spectrum whose
  errors differ by more than ``margin`` Å (RankNet);
* ``listwise`` - softmax over the K candidates against the target distribution softmax(-error / tau)
  (ListNet).

The error a candidate is judged by (:func:`utility`) is its paper-aligned 1st-shell RMSD, clipped at
``clip`` Å (NaN = ``clip``), plus ``penalty`` Å for a wrong composition and for an invalid environment,
so that a pick that wins on the first shell does not lose species accuracy or validity.

:class:`Selector` holds the network, the feature scaling and a calibration (:class:`Isotonic`) of the
score into the probability that the candidate's 1st-shell RMSD is within ``threshold`` Å; it saves to one
small ``.pt`` (:meth:`Selector.save`, tensors and JSON only, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from s2s.files import atomic_path
from s2s.selection.features import input_columns

LOSSES = ("pointwise", "pairwise", "listwise")


@dataclass
class SelectorConfig:
    """Training settings: loss (:data:`LOSSES`), hidden width and depth, dropout, epochs, learning rate, weight
    decay, seed; the error's ``clip`` and ``penalty`` (Å, :func:`utility`), ``tau`` (Å, listwise), ``margin``
    (Å, pairwise), ``threshold`` (Å, what the calibrated probability is about), ``spectrum`` (whether the
    spectrum's 20 bins enter the input), ``features`` (:data:`s2s.selection.features.FEATURE_SETS`: every
    column, or the relative features and a few key ones), ``n_models`` (an ensemble of that many networks,
    seeds ``seed``, ``seed`` + 1, ..., whose scores are averaged), ``forward`` (whether the forward model's
    score of each candidate enters, :func:`s2s.selection.features.forward_features`)."""

    loss: str = "listwise"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 60
    lr: float = 2e-3
    weight_decay: float = 1e-3
    batch_groups: int = 32
    seed: int = 0
    clip: float = 1.5
    penalty: float = 0.5
    tau: float = 0.1
    margin: float = 0.05
    threshold: float = 0.3
    spectrum: bool = False
    features: str = "all"
    n_models: int = 1
    forward: bool = False

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"SelectorConfig: loss must be one of {LOSSES}, got {self.loss!r}")


def utility(rmsd_shell1, species_match, valid, clip: float = 1.5, penalty: float = 0.5) -> np.ndarray:
    """The error a candidate is ranked by (Å, lower is better): 1st-shell RMSD clipped at ``clip`` (NaN =
    ``clip``), plus ``penalty`` for a composition that differs from the target's and for an invalid one."""
    r = np.asarray(rmsd_shell1, dtype=np.float64)
    r = np.where(np.isfinite(r), np.minimum(r, clip), clip)
    return (
        r
        + penalty * (1.0 - np.asarray(species_match, dtype=np.float64))
        + penalty * (1.0 - np.asarray(valid, dtype=np.float64))
    )


@dataclass
class Isotonic:
    """A non-decreasing step function fitted by pool-adjacent-violators: ``x`` (knots, ascending) and ``y``
    (values); :meth:`__call__` interpolates linearly between knots and holds the ends."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, scores: np.ndarray, outcomes: np.ndarray) -> Isotonic:
        """P(outcome | score), non-decreasing in the score (outcomes 0/1)."""
        s = np.asarray(scores, dtype=np.float64).ravel()
        o = np.asarray(outcomes, dtype=np.float64).ravel()
        keep = np.isfinite(s)
        s, o = s[keep], o[keep]
        if s.size == 0:
            raise ValueError("Isotonic.fit: no finite scores")
        order = np.argsort(s, kind="stable")
        s, o = s[order], o[order]
        vals, wts, lo, hi = [], [], [], []  # blocks: mean, weight, first and last score
        for xi, yi in zip(s, o):
            vals.append(yi)
            wts.append(1.0)
            lo.append(xi)
            hi.append(xi)
            while len(vals) > 1 and vals[-2] >= vals[-1]:
                w = wts[-2] + wts[-1]
                v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
                vals[-2:], wts[-2:], lo[-2:], hi[-2:] = [v], [w], [lo[-2]], [hi[-1]]
        xs, ys = [], []
        for v, a, b in zip(vals, lo, hi):
            xs += [a, b] if b > a else [a]
            ys += [v, v] if b > a else [v]
        return cls([float(v) for v in xs], [float(v) for v in ys])

    def __call__(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        return np.interp(s, self.x, self.y)


def _mlp(n_in: int, cfg: SelectorConfig):
    import torch.nn as nn

    layers: list = []
    width = n_in
    for _ in range(cfg.layers):
        layers += [nn.Linear(width, cfg.hidden), nn.SiLU(), nn.Dropout(cfg.dropout)]
        width = cfg.hidden
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def _loss(score, err, cfg: SelectorConfig):
    """Mean loss over a batch of groups: ``score`` and ``err`` (G, K) tensors."""
    import torch
    import torch.nn.functional as F

    if cfg.loss == "pointwise":
        return F.huber_loss(-score, err, delta=0.3)
    if cfg.loss == "listwise":
        target = torch.softmax(-err / cfg.tau, dim=1)
        return -(target * torch.log_softmax(score, dim=1)).sum(dim=1).mean()
    diff = score[:, :, None] - score[:, None, :]  # s_i - s_j
    better = (err[:, None, :] - err[:, :, None]) > cfg.margin  # i better than j
    if not better.any():
        return score.sum() * 0.0
    return F.softplus(-diff[better]).mean()


class Selector:
    """A trained confidence model (module docstring).  ``mean``/``std`` standardise the inputs;
    ``calibration`` maps a score to P(1st-shell RMSD <= ``config.threshold``)."""

    def __init__(self, config: SelectorConfig, n_in: int, mean: np.ndarray, std: np.ndarray, net=None):
        import torch.nn as nn

        self.config = config
        self.n_in = int(n_in)  # columns of the full input (group_features)
        self.columns = input_columns(config.features, config.spectrum, config.forward)
        if self.columns.max() >= self.n_in:
            raise ValueError(f"Selector: {self.n_in} input columns, feature set {config.features!r} needs more")
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.net = (
            net if net is not None else nn.ModuleList(_mlp(len(self.columns), config) for _ in range(config.n_models))
        )
        self.calibration: Isotonic | None = None
        self.info: dict = {}

    def _forward(self, z):
        return sum(net(z).squeeze(-1) for net in self.net) / len(self.net)

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, x: np.ndarray, err: np.ndarray, config: SelectorConfig = SelectorConfig()) -> Selector:
        """Fit on ``x`` (G, K, F) inputs and ``err`` (G, K) errors (:func:`utility`), deterministic for the seed."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        err = np.asarray(err, dtype=np.float32)
        if x.ndim != 3 or err.shape != x.shape[:2]:
            raise ValueError(f"Selector.train: x {x.shape} and err {err.shape} do not fit (G, K, F) / (G, K)")

        cols = input_columns(config.features, config.spectrum, config.forward)
        flat = x[..., cols].reshape(-1, len(cols))
        mean, std = flat.mean(axis=0), flat.std(axis=0) + 1e-6
        torch.manual_seed(config.seed)
        sel = cls(config, x.shape[2], mean, std)
        xt = torch.as_tensor((x[..., cols] - mean) / std)
        et = torch.as_tensor(err)
        for j, net in enumerate(sel.net):
            torch.manual_seed(config.seed + j)
            rng = np.random.default_rng(config.seed + j)
            opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            n_steps = config.epochs * max(1, math.ceil(len(x) / config.batch_groups))
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=n_steps)
            net.train()
            for _ in range(config.epochs):
                order = rng.permutation(len(x))
                for b in range(0, len(x), config.batch_groups):
                    idx = torch.as_tensor(order[b : b + config.batch_groups])
                    loss = _loss(net(xt[idx]).squeeze(-1), et[idx], config)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
            net.eval()
        return sel

    # ------------------------------------------------------------------ use
    def scores(self, x: np.ndarray) -> np.ndarray:
        """Scores (..., K) of inputs (..., K, F), higher = closer to the truth."""
        import torch

        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.n_in:
            raise ValueError(f"Selector: inputs have {x.shape[-1]} features, the model takes {self.n_in}")
        if not np.all(np.isfinite(x[..., self.columns])):
            raise ValueError("Selector: inputs are not finite (a forward-model selector needs the forward scores)")
        with torch.no_grad():
            z = torch.as_tensor((x[..., self.columns] - self.mean) / self.std)
            return self._forward(z).numpy().astype(np.float64)

    def calibrate(self, scores: np.ndarray, rmsd_shell1: np.ndarray) -> None:
        """Fit :attr:`calibration` on held-out scores and their true 1st-shell RMSDs (Å; NaN = not within)."""
        r = np.asarray(rmsd_shell1, dtype=np.float64)
        self.calibration = Isotonic.fit(scores, np.isfinite(r) & (r <= self.config.threshold))

    def probability(self, scores: np.ndarray) -> np.ndarray:
        """P(1st-shell RMSD <= threshold) of scores (NaN without a calibration)."""
        s = np.asarray(scores, dtype=np.float64)
        return np.full(s.shape, np.nan) if self.calibration is None else self.calibration(s)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """One ``.pt``: state dict, scaling, config, calibration and info (tensors and a JSON string)."""
        import torch

        meta = {
            "config": asdict(self.config),
            "n_in": self.n_in,
            "calibration": None if self.calibration is None else asdict(self.calibration),
            "info": self.info,
            "format": "s2s-selector-1",
        }
        blob = {
            "state_dict": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "mean": torch.as_tensor(self.mean),
            "std": torch.as_tensor(self.std),
            "meta": json.dumps(meta, sort_keys=True),
        }
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(blob, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Selector:
        import torch

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: selector model file not found")
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
        if meta.get("format") != "s2s-selector-1":
            raise ValueError(f"{path}: not an s2s selector (format {meta.get('format')!r})")
        sel = cls(SelectorConfig(**meta["config"]), meta["n_in"], blob["mean"].numpy(), blob["std"].numpy())
        sel.net.load_state_dict(blob["state_dict"])
        sel.net.eval()
        sel.calibration = None if meta["calibration"] is None else Isotonic(**meta["calibration"])
        sel.info = meta.get("info", {})
        return sel


__all__ = ["LOSSES", "SelectorConfig", "Selector", "Isotonic", "utility"]
