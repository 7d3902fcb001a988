"""The forward model: local environment -> O K-edge spectrum (issue 15).

The second half of an inverse method: given a candidate environment (species, coordinates in Å,
excited O at index 0), predict its spectrum on the project's grid (:data:`s2s.spectrum.GRID`,
200 points, -1.0 .. 18.9 eV, unit area by the trapezoid rule).  ``s2s predict`` uses it to score
each candidate against the input spectrum (:mod:`s2s.forward.selfconsistent`), and the best-of-k
evaluation keeps the sample whose predicted spectrum is closest to the input.

Two E(3)-invariant designs (``ForwardConfig.kind``), both ending in a softmax over the 200 grid
points divided by its trapezoid area, so every prediction is non-negative with unit area:

* ``"soap"`` - the SOAP power spectrum (dscribe, centred on the excited O, the settings of
  :class:`s2s.descriptors.soap.SoapSettings`: r_cut 6 Å, n_max 8, l_max 6, sigma 0.5 Å; 952 features),
  standardised, then an MLP.  Invariant to rotation, reflection and permutation because SOAP is.
* ``"distance"`` - a small invariant network over interatomic distances: each non-central atom j
  contributes phi(rbf(|r_j - r_0|) x species_j), each pair (j, k) of non-central atoms contributes
  psi(rbf(d_jk) x species pair, rbf(d_0j) + rbf(d_0k)) x a cosine envelope of d_jk; the sums go
  through an MLP.  Differentiable in the coordinates (usable for guidance).

Which design ships is decided on a validation split carved from the *training* structures
(:func:`validation_mask`: SHA-256 of ``(seed=1, structure id)`` below 0.1, as
:func:`s2s.splits.make_split` does for the test split), at equal CPU time
(``benchmarks/forward_model.py --compare``).  Training (:func:`s2s.forward.train.train_forward`, ``s2s
train-forward``) is resumable and writes ``checkpoint.pt``, ``model.pt`` (the weights with the
best validation MSE), ``loss.csv`` and ``run.json`` atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from s2s.checkpoint_io import CheckpointError, load_checkpoint
from s2s.descriptors.soap import SoapSettings, soap, soap_vectors
from s2s.environment import SPECIES, Environment
from s2s.spectrum import GRID_STEP, N_GRID
from s2s.splits import hash_pick

KINDS = ("soap", "distance")
CHECKPOINT, FINAL, LOSS_CSV, RUN_JSON = "checkpoint.pt", "model.pt", "loss.csv", "run.json"
FORMAT = "s2s-forward-model"
FORMAT_VERSION = 1
#: What a forward model file is, for messages (:func:`s2s.checkpoint_io.load_checkpoint`).
FORWARD_FILE = "an s2s forward model (model.pt written by 's2s train-forward')"
#: Training loss = MSE of (spectrum x SCALE): intensities of O(1) (mean intensity x SCALE = 1 for
#: a unit-area spectrum on the 19.9 eV grid).  Reported MSEs are always in unit-area intensity^2.
SCALE = N_GRID * GRID_STEP


class ForwardInputError(ValueError):
    """An environment the forward model cannot score; the message names the candidate."""


# ----------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ForwardConfig:
    """Architecture and training settings of the forward model (all lengths in Å).

    kind: "soap" or "distance" (module docstring).  hidden / n_layers: the MLP width and number
    of hidden layers.  feature_clip: standardised SOAP features are clipped to +-feature_clip (an
    environment unlike any training one, e.g. a 4-coordinated O at 1.88 Å, otherwise reaches 80
    standard deviations and the MLP extrapolates wildly); None turns it off.  mean_prior: the logits
    are log(training mean spectrum) + the network's output, so the network learns the deviation
    from the mean spectrum.  SOAP: soap_r_cut, soap_n_max, soap_l_max, soap_sigma (the template-matching
    settings).  Distance network: n_rbf Gaussians on [0.5, rbf_max] Å, pair envelope cutoff
    pair_cutoff.  input_spectrum: the *translator* (issue 29, recipe b): the SOAP design with the site's
    spectrum at another fidelity (the xTB spectrum, 200 grid values) appended to its SOAP vector, so it maps
    (environment, xTB spectrum) -> reference spectrum; :meth:`ForwardModel.predict` then needs ``spectra``.
    Training: AdamW (lr, weight_decay), cosine decay to lr_min_factor x lr over
    max_steps, batch_size environments per step, validation every eval_every steps; the validation
    structures are those with hash(val_seed, id) < val_fraction.
    """

    kind: str = "soap"
    hidden: int = 256
    n_layers: int = 2
    dropout: float = 0.1
    feature_clip: float | None = 5.0
    mean_prior: bool = True
    soap_r_cut: float = 6.0
    soap_n_max: int = 8
    soap_l_max: int = 6
    soap_sigma: float = 0.5
    n_rbf: int = 32
    rbf_max: float = 6.5
    pair_cutoff: float = 6.5
    input_spectrum: bool = False
    lr: float = 1e-3
    lr_min_factor: float = 0.05
    weight_decay: float = 1e-4
    batch_size: int = 64
    max_steps: int = 6000
    eval_every: int = 200
    seed: int = 0
    val_fraction: float = 0.1
    val_seed: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"ForwardConfig.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("hidden", "n_layers", "n_rbf", "batch_size", "max_steps", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ForwardConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"ForwardConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.input_spectrum and self.kind != "soap":
            raise ValueError("ForwardConfig.input_spectrum (the translator) needs kind 'soap'")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ForwardConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"forward model config: unknown field(s) {unknown}")
        return cls(**d)

    def soap_settings(self):
        return SoapSettings(r_cut=self.soap_r_cut, n_max=self.soap_n_max, l_max=self.soap_l_max, sigma=self.soap_sigma)


# ----------------------------------------------------------------------------- inputs
def check_environment(env: Environment, name: str = "environment") -> None:
    """Raise :class:`ForwardInputError` naming ``name`` if ``env`` cannot be scored: not an
    Environment, no atom besides the excited O, or a non-finite coordinate."""
    if not isinstance(env, Environment):
        raise ForwardInputError(f"{name}: expected an s2s Environment, got {type(env).__name__}")
    if env.n_atoms < 2:
        raise ForwardInputError(
            f"{name}: no atoms besides the excited O (n_atoms = {env.n_atoms}); nothing to predict a spectrum from"
        )
    bad = ~np.isfinite(env.coords)
    if bad.any():
        atom = int(np.argmax(bad.any(axis=1)))
        raise ForwardInputError(
            f"{name}: coordinate of atom {atom} ({SPECIES[env.species[atom]]}) is not finite "
            f"({env.coords[atom].tolist()}); {int(bad.any(axis=1).sum())} atom(s) affected"
        )


def validation_mask(structure_ids: Sequence[str], fraction: float = 0.1, seed: int = 1) -> np.ndarray:
    """(n,) bool: records whose structure is in the validation part of the training split.

    The rule of :func:`s2s.splits.validation_split` (which takes a Dataset), on bare structure ids:
    a structure is a validation structure when SHA-256 of ``(seed, structure id)``, read as a number
    in [0, 1) (:func:`s2s.splits.hash_unit`), is below ``fraction``, so no structure is on both
    sides and the choice is stable as the set grows.  The default seed (1) differs from the test
    split's (0).
    """
    ids = [str(s) for s in structure_ids]
    val = hash_pick(sorted(set(ids)), fraction, seed)
    return np.array([k in val for k in ids], dtype=bool)


def with_input_spectra(cfg: ForwardConfig, soap: torch.Tensor, spectra: np.ndarray | None) -> torch.Tensor:
    """The network input of ``cfg``: the SOAP vectors (n, F), followed by the input-fidelity spectra (n, 200) for
    a translator (``cfg.input_spectrum``); raises ``ValueError`` when a translator gets no or misshapen spectra,
    or a plain forward model gets some."""
    if not cfg.input_spectrum:
        if spectra is not None:
            raise ValueError("this forward model reads environments only; it takes no input spectra")
        return soap
    if spectra is None:
        raise ValueError("this forward model is a translator (input_spectrum): give the sites' input spectra")
    sp = np.asarray(spectra, dtype=np.float32)
    if sp.shape != (soap.shape[0], N_GRID):
        raise ValueError(f"translator input spectra: expected shape ({soap.shape[0]}, {N_GRID}), got {sp.shape}")
    return torch.cat([soap, torch.as_tensor(sp)], dim=1)


def unit_area_softmax(logits: torch.Tensor) -> torch.Tensor:
    """(..., 200) logits -> non-negative spectra with unit trapezoid area over GRID (0.1 eV step)."""
    p = torch.softmax(logits, dim=-1)
    area = GRID_STEP * (1.0 - 0.5 * (p[..., :1] + p[..., -1:]))
    return p / area


# ----------------------------------------------------------------------------- networks
def _mlp(n_in: int, hidden: int, n_out: int, n_layers: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden), nn.SiLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = hidden
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


class SoapNet(nn.Module):
    """Standardised SOAP vector (B, F) -> logits (B, 200)."""

    def __init__(self, cfg: ForwardConfig, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("log_prior", torch.zeros(N_GRID))
        self.clip = cfg.feature_clip
        self.mlp = _mlp(n_features, cfg.hidden, N_GRID, cfg.n_layers, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        if self.clip is not None:
            z = z.clamp(-self.clip, self.clip)
        return self.log_prior + self.mlp(z)


@dataclass
class DistanceBatch:
    """Environments flattened for :class:`DistanceNet`: coords (A, 3) Å of every atom, species (A,),
    env (A,) the environment of each atom, center (A,) the global index of its excited O,
    pair_i / pair_j (P,) global indices of the pairs of non-central atoms (i < j), n_env."""

    coords: torch.Tensor
    species: torch.Tensor
    env: torch.Tensor
    center: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    n_env: int


def distance_batch(envs: Sequence[Environment], coords: torch.Tensor | None = None) -> DistanceBatch:
    """Flatten environments (excited O first in each); ``coords`` may replace the stacked
    coordinates (A, 3) by a tensor that requires grad (guidance)."""
    sizes = np.array([e.n_atoms for e in envs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pi, pj = [], []
    for s, n in zip(starts, sizes):
        a, b = np.triu_indices(int(n) - 1, k=1)
        pi.append(a + 1 + s)
        pj.append(b + 1 + s)
    if coords is None:
        coords = torch.as_tensor(np.concatenate([e.coords for e in envs]), dtype=torch.float32)
    return DistanceBatch(
        coords=coords,
        species=torch.as_tensor(np.concatenate([e.species for e in envs]), dtype=torch.long),
        env=torch.as_tensor(np.repeat(np.arange(len(envs)), sizes), dtype=torch.long),
        center=torch.as_tensor(np.repeat(starts, sizes), dtype=torch.long),
        pair_i=torch.as_tensor(np.concatenate(pi) if pi else np.zeros(0, np.int64), dtype=torch.long),
        pair_j=torch.as_tensor(np.concatenate(pj) if pj else np.zeros(0, np.int64), dtype=torch.long),
        n_env=len(envs),
    )


class DistanceNet(nn.Module):
    """Invariant network over distances (module docstring) -> logits (B, 200)."""

    def __init__(self, cfg: ForwardConfig):
        super().__init__()
        r = cfg.n_rbf
        self.register_buffer("mu", torch.linspace(0.5, cfg.rbf_max, r))
        self.width = float((cfg.rbf_max - 0.5) / (r - 1)) if r > 1 else 1.0
        self.pair_cutoff = float(cfg.pair_cutoff)
        h = cfg.hidden // 2
        self.phi = _mlp(2 * r, h, h, 1, 0.0)
        self.psi = _mlp(4 * r, h, h, 1, 0.0)
        self.rho = _mlp(2 * h, cfg.hidden, N_GRID, cfg.n_layers, cfg.dropout)
        self.register_buffer("log_prior", torch.zeros(N_GRID))

    def rbf(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(((d[:, None] - self.mu[None, :]) / self.width) ** 2))

    def forward(self, b: DistanceBatch) -> torch.Tensor:
        x = b.coords
        rel = x - x[b.center]
        d0 = torch.sqrt((rel**2).sum(-1) + 1e-12)
        e0 = self.rbf(d0)
        sp = torch.nn.functional.one_hot(b.species, len(SPECIES)).to(x.dtype)
        atom_in = (e0[:, :, None] * sp[:, None, :]).reshape(len(x), -1)
        not_center = (torch.arange(len(x)) != b.center).to(x.dtype)[:, None]
        h_atom = torch.zeros(b.n_env, self.phi[-1].out_features, dtype=x.dtype)
        h_atom = h_atom.index_add(0, b.env, self.phi(atom_in) * not_center)
        h_pair = torch.zeros_like(h_atom)
        if b.pair_i.numel():
            dij = torch.sqrt(((x[b.pair_i] - x[b.pair_j]) ** 2).sum(-1) + 1e-12)
            code = b.species[b.pair_i] + b.species[b.pair_j]  # 0 Si-Si, 1 Si-O, 2 O-O
            pc = torch.nn.functional.one_hot(code, 3).to(x.dtype)
            eij = self.rbf(dij)
            pin = torch.cat(
                [(eij[:, :, None] * pc[:, None, :]).reshape(len(dij), -1), e0[b.pair_i] + e0[b.pair_j]], dim=1
            )
            env_c = torch.where(
                dij < self.pair_cutoff, 0.5 * (torch.cos(math.pi * dij / self.pair_cutoff) + 1.0), torch.zeros_like(dij)
            )
            h_pair = h_pair.index_add(0, b.env[b.pair_i], self.psi(pin) * env_c[:, None])
        return self.log_prior + self.rho(torch.cat([h_atom, h_pair / 8.0], dim=1))


# ----------------------------------------------------------------------------- the model
class ForwardModel:
    """A trained forward model: :meth:`predict` environments -> (n, 200) unit-area spectra."""

    def __init__(self, cfg: ForwardConfig, net: nn.Module, meta: dict | None = None, path: Path | None = None):
        self.cfg = cfg
        self.net = net.eval()
        self.meta = dict(meta or {})
        self.path = path

    # -- features
    def _inputs(self, envs: Sequence[Environment], spectra: np.ndarray | None = None):
        if self.cfg.kind == "soap":
            x = torch.as_tensor(soap_vectors(list(envs), self.cfg.soap_settings()), dtype=torch.float32)
            return with_input_spectra(self.cfg, x, spectra)
        return distance_batch(envs)

    def spectra_tensor(self, inputs) -> torch.Tensor:
        """Unit-area spectra (B, 200) from prepared inputs (SOAP tensor or :class:`DistanceBatch`)."""
        return unit_area_softmax(self.net(inputs))

    @torch.no_grad()
    def predict(
        self,
        envs: Environment | Sequence[Environment],
        names: Sequence[str] | None = None,
        batch_size: int = 256,
        spectra: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n, 200) predicted spectra (unit area on GRID) of the environments, float64.

        Every environment is checked first (:func:`check_environment`); a bad one raises
        :class:`ForwardInputError` naming it (``names[i]``, default ``environment i``).  ``spectra`` (n, 200):
        the sites' spectra at the input fidelity, for a translator (``cfg.input_spectrum``) only.
        """
        if isinstance(envs, Environment):
            envs = [envs]
            spectra = None if spectra is None else np.atleast_2d(spectra)
        envs = list(envs)
        names = list(names) if names is not None else [f"environment {i}" for i in range(len(envs))]
        if len(names) != len(envs):
            raise ValueError(f"ForwardModel.predict: {len(envs)} environments but {len(names)} names")
        for e, n in zip(envs, names):
            check_environment(e, n)
        if spectra is not None and np.shape(spectra) != (len(envs), N_GRID):
            raise ValueError(
                f"translator input spectra: expected shape ({len(envs)}, {N_GRID}), got {np.shape(spectra)}"
            )
        out = np.empty((len(envs), N_GRID), dtype=np.float64)
        for s in range(0, len(envs), batch_size):
            part = envs[s : s + batch_size]
            sp = None if spectra is None else np.asarray(spectra)[s : s + len(part)]
            out[s : s + len(part)] = self.spectra_tensor(self._inputs(part, sp)).double().numpy()
        return out

    # -- persistence
    def state(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            "weights": self.net.state_dict(),
            "n_features": _n_features(self.net),
            "meta": self.meta,
        }

    @classmethod
    def from_state(cls, state: dict, path: Path | None = None) -> "ForwardModel":
        where = str(path) if path is not None else "forward model state"
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(
                f"{where}: not an s2s forward model file (format field "
                f"{state.get('format') if isinstance(state, dict) else None!r})"
            )
        if int(state.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{where}: forward model format version {state['version']} is newer than this s2s ({FORMAT_VERSION})"
            )
        cfg = ForwardConfig.from_dict(state["config"])
        net = build_net(cfg, state.get("n_features"))
        net.load_state_dict(state["weights"])
        return cls(cfg, net, state.get("meta", {}), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ForwardModel":
        """Load ``model.pt`` (or a run folder holding it, or its ``checkpoint.pt``: the best weights)."""
        p = Path(path)
        if p.is_dir():
            p = p / FINAL
        if not p.exists():
            raise FileNotFoundError(f"{p}: forward model file not found (train one with 's2s train-forward')")
        state = load_checkpoint(p, FORWARD_FILE)
        if "best" in state and "format" not in state:
            state = state["best"]
        try:
            return cls.from_state(state, p)
        except CheckpointError:
            raise
        except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = " ".join(str(exc).split())[:200]
            raise CheckpointError(p, f"cannot be used ({type(exc).__name__}: {msg})", FORWARD_FILE) from None


def _n_features(net: nn.Module) -> int | None:
    return int(net.mean.numel()) if isinstance(net, SoapNet) else None


def build_net(cfg: ForwardConfig, n_features: int | None = None) -> nn.Module:
    if cfg.kind == "soap":
        if n_features is None:
            n_features = soap(cfg.soap_settings()).get_number_of_features() + (N_GRID if cfg.input_spectrum else 0)
        return SoapNet(cfg, int(n_features))
    return DistanceNet(cfg)


def spectrum_mse(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean squared difference over the grid (unit-area intensity^2): the template-matching
    metric (:func:`s2s.retrieval.neighbours.nearest_by_mse`).  (n, 200) x (200,) or (n, 200) -> (n,)."""
    p = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    return np.mean((p - np.asarray(target, dtype=np.float64)) ** 2, axis=-1)


def cosine(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of spectra, (n, 200) x (n, 200) or (200,) -> (n,)."""
    p = np.atleast_2d(np.asarray(predicted, dtype=np.float64))
    t = np.asarray(target, dtype=np.float64)
    return np.sum(p * t, axis=-1) / (np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1))


__all__ = [
    "ForwardConfig",
    "ForwardModel",
    "ForwardInputError",
    "check_environment",
    "validation_mask",
    "spectrum_mse",
    "cosine",
    "unit_area_softmax",
    "with_input_spectra",
    "distance_batch",
    "KINDS",
]
