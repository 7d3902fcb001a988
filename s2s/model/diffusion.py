"""Joint diffusion of coordinates and species (Hoogeboom et al. 2022), conditioned on a spectrum.

Forward process (paper, Supplementary Text 1), for t = 0..T:

    z_t = alpha_t x_0 + sigma_t eps,    eps ~ N(0, I)
    alpha_t = (1 - 2s) (1 - (t/T)^2)^p + s,    sigma_t = sqrt(1 - alpha_t^2)

applied to the coordinates x (Å) and to the scaled one-hot species h of every atom but the
excited O, which stays at the origin with species O: it is the conditioning site, not a
variable.  The denoiser predicts eps; the loss is the mean squared error (EDM's L2 loss).

Reverse (ancestral) step from t to s = t - 1, with alpha_{t|s} = alpha_t / alpha_s and
sigma_{t|s}^2 = 1 - alpha_{t|s}^2 (exact for this variance-preserving process):

    mu    = z_t / alpha_{t|s} - sigma_{t|s}^2 / (alpha_{t|s} sigma_t) * eps_hat
          = alpha_s sigma_{t|s}^2 / sigma_t^2 * x_hat + alpha_{t|s} sigma_s^2 / sigma_t^2 * z_t,
            with x_hat = (z_t - sigma_t eps_hat) / alpha_t
    sigma = sigma_{t|s} sigma_s / sigma_t
    z_s   = mu + sigma * eps
and finally x_0 = (z_0 - sigma_0 eps_hat) / alpha_0, species = argmax of h.

The sampler uses the second (x_hat) form, which is identical unless ``clip_radius`` is set:
then each atom's x_hat is pulled back radially to |x_hat| <= clip_radius (Ho et al. 2020 clip
x_hat to the data range).  This matters for this schedule: alpha_T = s = 1e-5, so an O(1e-2)
error of eps_hat at t ~ T means x_hat errors of 1e3 Å, which the network cannot undo later.
An environment of 3 shells with a 2.0 Å cutoff lies within 3 x 2.0 = 6 Å of the excited O,
so a radius of 6 Å removes nothing physical; it is a rotation-equivariant operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from s2s.config import DiffusionConfig
from s2s.environment import O
from s2s.model.coupling import ot_couple
from s2s.model.graph import GraphBatch
from s2s.site_record import fidelity_flags


# ---------------------------------------------------------------- schedule
def alpha_schedule(t: np.ndarray | float, cfg: DiffusionConfig) -> np.ndarray:
    """alpha_t for integer t in 0..T (float64).

    ``schedule="paper"``: alpha_t = (1 - 2s)(1 - (t/T)^2)^p + s  (the paper's equation);
    ``schedule="edm"``:   alpha_t^2 = (1 - 2s)(1 - (t/T)^2)^p + s (EDM's reference code);
    ``schedule="linear"``: alpha_t = 1 - t/T (flow matching's straight path; sigma_t = t/T).
    """
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0) or np.any(t > cfg.T):
        raise ValueError(f"t must lie in 0..{cfg.T}")
    if cfg.schedule == "linear":
        return 1.0 - t / cfg.T
    poly = (1.0 - 2.0 * cfg.s) * (1.0 - (t / cfg.T) ** 2) ** cfg.power + cfg.s
    if cfg.schedule == "paper":
        return poly
    if cfg.schedule == "edm":
        return np.sqrt(poly)
    raise ValueError(f"unknown schedule {cfg.schedule!r}; expected 'paper', 'edm' or 'linear'")


def sigma_schedule(t: np.ndarray | float, cfg: DiffusionConfig) -> np.ndarray:
    """sigma_t = sqrt(1 - alpha_t^2) (variance-preserving schedules); t/T for ``schedule="linear"``."""
    if cfg.schedule == "linear":
        return np.asarray(t, dtype=np.float64) / cfg.T
    return np.sqrt(1.0 - alpha_schedule(t, cfg) ** 2)


def equivalent_step(t: int, cfg: DiffusionConfig, reference: DiffusionConfig | None = None) -> int:
    """The step of ``cfg``'s schedule whose SNR alpha^2 / sigma^2 is nearest to that of step ``t`` of
    ``reference`` (default: the paper's schedule), so that probes at "t = 200" compare the same noise
    level across schedules.  Identity when both schedules are the same.
    """
    reference = reference or DiffusionConfig()
    if (cfg.schedule, cfg.T, cfg.s, cfg.power) == (reference.schedule, reference.T, reference.s, reference.power):
        return int(t)
    snr_ref = alpha_schedule(t, reference) ** 2 / max(sigma_schedule(t, reference) ** 2, 1e-300)
    ts = np.arange(1, cfg.T + 1)
    snr = alpha_schedule(ts, cfg) ** 2 / sigma_schedule(ts, cfg) ** 2
    return int(ts[np.argmin(np.abs(np.log(snr + 1e-300) - np.log(snr_ref + 1e-300)))])


def transition_variance(a_ts, sg_t, sg_s, variance_preserving: bool = True):
    """sigma_{t|s}^2 of q(z_t | z_s) = N(alpha_{t|s} z_s, sigma_{t|s}^2), a_ts = alpha_{t|s} = alpha_t / alpha_s, s < t.

    In general sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2 (Kingma et al. 2021, VDM), which is
    1 - alpha_{t|s}^2 for a variance-preserving schedule (that form is kept there, bit for bit).
    """
    if variance_preserving:
        return (1.0 - a_ts**2).clamp(min=0.0)
    return (sg_t**2 - a_ts**2 * sg_s**2).clamp(min=0.0)


class Schedule:
    """Tabulated alpha_t, sigma_t for t = 0..T as torch tensors (float64 tables, cast on lookup)."""

    def __init__(self, cfg: DiffusionConfig):
        self.cfg = cfg
        ts = np.arange(cfg.T + 1)
        self.alpha = torch.as_tensor(alpha_schedule(ts, cfg))
        self.sigma = torch.as_tensor(sigma_schedule(ts, cfg))
        #: alpha_t^2 + sigma_t^2 = 1 (the paper's and EDM's schedules; not the linear path).
        self.variance_preserving = cfg.schedule != "linear"
        self._on_device: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, t: torch.Tensor, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha_t, sigma_t) for integer steps t (B,), looked up in tables on t's device (no host sync)."""
        key = str(t.device)
        if key not in self._on_device:
            self._on_device[key] = (self.alpha.to(t.device), self.sigma.to(t.device))
        alpha, sigma = self._on_device[key]
        idx = t.long()
        return alpha[idx].to(dtype), sigma[idx].to(dtype)


def randn_like_on(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) of ``shape`` drawn on the CPU from ``generator`` and moved to ``like``'s device and dtype.

    Drawing on the CPU keeps a seed's samples identical on every device (a CUDA generator would give
    other numbers) and lets one CPU generator drive a model on any device.
    """
    return torch.randn(shape, generator=generator, dtype=like.dtype).to(like.device)


def device_of(model, fallback: torch.Tensor | None = None) -> torch.device:
    """The device of a model's parameters (or of ``fallback``, or the CPU, for a model without any)."""
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return fallback.device if isinstance(fallback, torch.Tensor) else torch.device("cpu")


# ---------------------------------------------------------------- forward process
def movable_mask(node_mask: torch.Tensor) -> torch.Tensor:
    """(B,N): real atoms other than the excited O (index 0)."""
    m = node_mask.clone()
    m[:, 0] = 0.0
    return m


def encode_species(h_onehot: torch.Tensor, cfg: DiffusionConfig) -> torch.Tensor:
    """One-hot species -> diffused variable (scaled by ``species_scale``, EDM's 1/4)."""
    return h_onehot * cfg.species_scale


def excited_species(b: int, n: int, n_species: int, cfg: DiffusionConfig, like: torch.Tensor) -> torch.Tensor:
    """(B,N,n_species) with the scaled O one-hot at index 0 and zeros elsewhere."""
    h = torch.zeros(b, n, n_species, dtype=like.dtype, device=like.device)
    h[:, 0, O] = cfg.species_scale
    return h


def q_sample(x0, h0, t, schedule: Schedule, node_mask, generator=None, coupling: str = "independent"):
    """z_t = alpha_t x_0 + sigma_t eps on movable atoms; the excited O keeps x=0, h=O.

    x0 (B,N,3) Å, h0 (B,N,K) scaled species, t (B,) integer steps -> (z_x, z_h, eps_x, eps_h).
    ``coupling="ot"``: the noise atoms are first assigned and rotated onto x0
    (:func:`s2s.model.coupling.ot_couple`), the training pairing of equivariant OT flow matching.
    """
    mm = movable_mask(node_mask)[..., None]
    alpha, sigma = schedule(t, x0.dtype)
    alpha, sigma = alpha[:, None, None], sigma[:, None, None]
    eps_x = randn_like_on(x0.shape, generator, x0) * mm
    eps_h = randn_like_on(h0.shape, generator, h0) * mm
    if coupling == "ot":
        eps_x, eps_h = ot_couple(eps_x, eps_h, x0, mm[..., 0])
    elif coupling != "independent":
        raise ValueError(f"q_sample: coupling must be 'independent' or 'ot', got {coupling!r}")
    fixed = 1.0 - mm
    z_x = (alpha * x0 + sigma * eps_x) * mm + x0 * fixed * node_mask[..., None]
    z_h = (alpha * h0 + sigma * eps_h) * mm + h0 * fixed * node_mask[..., None]
    return z_x, z_h, eps_x, eps_h


def snr_weight(snr: torch.Tensor, cfg: DiffusionConfig) -> torch.Tensor:
    """w(t) multiplying |x0_hat - x0|^2 (``DiffusionConfig.loss_weight``); SNR = alpha_t^2 / sigma_t^2.

    "snr": w = SNR, which is the paper's plain |eps_hat - eps|^2 (since eps error = sqrt(SNR) x_0 error);
    "min_snr": w = min(SNR, gamma) (Hang et al. 2023); "clamp_snr": w = clamp(SNR, lo, hi) (EQGAT-diff,
    Le et al. 2024), which spends the training on the noise levels where the environment is decided.
    """
    if cfg.loss_weight == "snr":
        return snr
    if cfg.loss_weight == "min_snr":
        return snr.clamp(max=cfg.min_snr_gamma)
    lo, hi = cfg.snr_clamp
    return snr.clamp(min=lo, max=hi)


def sample_t(b: int, schedule: Schedule, generator=None) -> torch.Tensor:
    """(B,) training steps in 1..T: uniform (the paper) or half of them in the ``alpha_band`` ("band")."""
    cfg = schedule.cfg
    t = torch.randint(1, cfg.T + 1, (b,), generator=generator)
    if cfg.t_sampling == "band":
        lo, hi = cfg.alpha_band
        alpha = schedule.alpha[1:]
        band = torch.nonzero((alpha >= lo) & (alpha <= hi)).flatten() + 1
        pick = band[torch.randint(0, len(band), (b,), generator=generator)]
        half = torch.rand(b, generator=generator) < 0.5
        t = torch.where(half, pick, t)
    return t


def model_predictions(
    model, z_x, z_h, t, spectrum, node_mask, schedule: Schedule, cond=None, self_cond=None, fidelity=None
):
    """The network's x_0 and eps estimates at integer steps t (B,), whatever it was trained to predict.

    Returns (x_hat (B,N,3) Å, h_hat (B,N,K), eps_x, eps_h), unclipped:
    ``parameterization="eps"``: x_hat = (z_t - sigma_t eps_hat) / alpha_t;
    ``parameterization="x0"``:  eps_hat = (z_t - alpha_t x_hat) / sigma_t.
    Only movable atoms (not the excited O, not padding) carry meaningful values.
    ``fidelity`` (B,): the spectra's fidelity flags, for a model with ``fidelity_input`` (None: not passed).
    """
    cfg = schedule.cfg
    a, sg = schedule(t, z_x.dtype)
    a, sg = a[:, None, None], sg[:, None, None]
    kwargs = {}
    if cond is not None:
        kwargs["cond"] = cond
    if self_cond is not None:
        kwargs["self_cond"] = self_cond
    if fidelity is not None:
        kwargs["fidelity"] = fidelity
    out_x, out_h = model(z_x, z_h, t.to(z_x.dtype) / cfg.T, spectrum, node_mask, **kwargs)
    if cfg.parameterization == "eps":
        return (z_x - sg * out_x) / a, (z_h - sg * out_h) / a, out_x, out_h
    mm = movable_mask(node_mask)[..., None]
    x_hat = (z_x + out_x) * mm
    h_hat = out_h * mm
    return x_hat, h_hat, (z_x - a * x_hat) / sg, (z_h - a * h_hat) / sg


def guided_predictions(
    model, z_x, z_h, t, spectrum, node_mask, schedule: Schedule, guidance: float = 0.0, self_cond=None, fidelity=None
):
    """:func:`model_predictions` with classifier-free guidance (Ho & Salimans 2021).

    x_hat = (1 + w) x_hat(s) - w x_hat(no spectrum) for guidance weight w (0: the conditional model alone);
    eps follows linearly.  Costs a second network call when w != 0.  ``fidelity`` (B,) flags (or None) go to
    both calls: training drops the spectrum, never the fidelity flag.
    """
    if guidance == 0.0:
        return model_predictions(
            model, z_x, z_h, t, spectrum, node_mask, schedule, self_cond=self_cond, fidelity=fidelity
        )
    b = z_x.shape[0]
    cat = lambda v: torch.cat([v, v], dim=0)  # noqa: E731
    cond = torch.cat([torch.ones(b), torch.zeros(b)]).to(device=z_x.device, dtype=z_x.dtype)
    sc = None if self_cond is None else tuple(cat(v) for v in self_cond)
    fid = None if fidelity is None else cat(fidelity)
    both = model_predictions(
        model,
        cat(z_x),
        cat(z_h),
        cat(t),
        cat(spectrum),
        cat(node_mask),
        schedule,
        cond=cond,
        self_cond=sc,
        fidelity=fid,
    )
    return tuple((1.0 + guidance) * v[:b] - guidance * v[b:] for v in both)


def diffusion_loss(model, batch: GraphBatch, schedule: Schedule, generator=None) -> torch.Tensor:
    """Mean over graphs of w(t)/SNR(t) |eps - eps_hat|^2 = w(t) |x_0 - x_hat|^2 over movable atoms and dims.

    With the defaults (eps parameterization, ``loss_weight="snr"``, uniform t, no spectrum dropout,
    no self-conditioning) this is EDM's plain L2 loss of the paper, computed as before.
    ``batch.fidelity`` (B,) (the spectra's fidelity flags, or None) goes to the network as it is.
    """
    cfg = schedule.cfg
    fid = batch.fidelity
    b = batch.batch_size
    dev = batch.x.device
    t = sample_t(b, schedule, generator).to(dev)
    h0 = encode_species(batch.h, cfg)
    z_x, z_h, eps_x, eps_h = q_sample(batch.x, h0, t, schedule, batch.node_mask, generator, cfg.coupling)
    cond = None
    if cfg.cond_drop > 0:
        cond = (torch.rand(b, generator=generator) >= cfg.cond_drop).to(device=dev, dtype=z_x.dtype)
    self_cond = None
    if getattr(getattr(model, "cfg", None), "self_condition", False):
        use = (torch.rand(b, generator=generator) < 0.5).to(dev)
        with torch.no_grad():
            x_sc, h_sc, _, _ = model_predictions(
                model, z_x, z_h, t, batch.spectrum, batch.node_mask, schedule, cond, fidelity=fid
            )
        keep = use.to(z_x.dtype)[:, None, None]
        self_cond = (x_sc.detach() * keep, h_sc.detach() * keep)
    mm = movable_mask(batch.node_mask)
    dims = 3 + batch.h.shape[-1]
    if cfg.parameterization == "eps" and cfg.loss_weight == "snr":
        pred_x, pred_h = model(
            z_x,
            z_h,
            t.to(z_x.dtype) / cfg.T,
            batch.spectrum,
            batch.node_mask,
            **({"cond": cond} if cond is not None else {}),
            **({"self_cond": self_cond} if self_cond is not None else {}),
            **({"fidelity": fid} if fid is not None else {}),
        )
        err = ((pred_x - eps_x) ** 2).sum(-1) + ((pred_h - eps_h) ** 2).sum(-1)  # (B,N)
        per_graph = (err * mm).sum(1) / (mm.sum(1).clamp(min=1.0) * dims)
        return per_graph.mean()
    x_hat, h_hat, e_x, e_h = model_predictions(
        model, z_x, z_h, t, batch.spectrum, batch.node_mask, schedule, cond, self_cond, fid
    )
    a, sg = schedule(t, z_x.dtype)
    snr = (a / sg) ** 2
    w = snr_weight(snr, cfg)
    if cfg.parameterization == "eps":
        err = ((e_x - eps_x) ** 2).sum(-1) + ((e_h - eps_h) ** 2).sum(-1)
        factor = w / snr
    else:
        err = ((x_hat - batch.x) ** 2).sum(-1) + ((h_hat - h0) ** 2).sum(-1)
        factor = w
    per_graph = (err * mm).sum(1) / (mm.sum(1).clamp(min=1.0) * dims)
    return (factor * per_graph).mean()


# ---------------------------------------------------------------- reverse process
def clip_x0(x: torch.Tensor, radius: float | None) -> torch.Tensor:
    """Scale each atom's position (B,N,3) back to |x| <= radius (Å); identity for None."""
    if radius is None:
        return x
    r = torch.linalg.norm(x, dim=-1, keepdim=True)
    return x * torch.clamp(radius / r.clamp(min=1e-12), max=1.0)


def clip_h0(h: torch.Tensor, scale: float | None) -> torch.Tensor:
    """Clamp predicted scaled one-hot species to [0, scale]; identity for None."""
    return h if scale is None else h.clamp(0.0, scale)


@dataclass
class SampleOutput:
    x: torch.Tensor  # (B,N,3) Å
    species: torch.Tensor  # (B,N) int indices
    node_mask: torch.Tensor  # (B,N)


def node_mask_from_counts(n_atoms: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """(B,) atom counts -> (B, max N) mask (on ``device``, default the CPU)."""
    n_atoms = torch.as_tensor(n_atoms).long().cpu()
    if torch.any(n_atoms < 1):
        raise ValueError("every environment needs at least the excited atom (n_atoms >= 1)")
    n = int(n_atoms.max())
    return (torch.arange(n)[None, :] < n_atoms[:, None]).float().to(device or "cpu")


def timesteps(T: int, n_steps: int | None = None) -> list[int]:
    """Descending time grid T = t_0 > ... > t_k = 0 with ``n_steps`` steps (all T by default)."""
    if n_steps is None or n_steps >= T:
        return list(range(T, -1, -1))
    if n_steps < 1:
        raise ValueError("n_steps must be >= 1")
    grid = np.unique(np.round(np.linspace(0, T, n_steps + 1)).astype(int))[::-1]
    return [int(v) for v in grid]


def _decode_z0(
    model, schedule, z_x, z_h, spectrum, node_mask, mm, clip_radius, guidance=0.0, self_cond=None, fidelity=None
) -> SampleOutput:
    """Last step of every sampler: x = (z_0 - sigma_0 eps_hat) / alpha_0 (clipped), species = argmax h."""
    b = z_x.shape[0]
    t0 = torch.zeros(b, dtype=torch.long, device=z_x.device)
    x, h, _, _ = guided_predictions(model, z_x, z_h, t0, spectrum, node_mask, schedule, guidance, self_cond, fidelity)
    x = clip_x0(x, clip_radius) * mm
    species = torch.argmax(h, dim=-1)
    species[:, 0] = O
    return SampleOutput(x=x, species=species, node_mask=node_mask)


def _self_cond(model, x_hat, h_hat):
    """The previous estimate for a self-conditioned model, else None."""
    return (x_hat, h_hat) if getattr(getattr(model, "cfg", None), "self_condition", False) else None


class _Batch(NamedTuple):
    """What every sampler sets up from its inputs: the model's device, the spectra (B, L) float32 there, the
    node mask (B, N), the movable-atom mask (B, N, 1), B, N and K (species channels), and the fidelity
    flags (B,) float32 there (None: not given)."""

    device: torch.device
    spectrum: torch.Tensor
    node_mask: torch.Tensor
    mm: torch.Tensor
    b: int
    n: int
    k: int
    fidelity: torch.Tensor | None = None


def _batch(model, spectrum: torch.Tensor, n_atoms: torch.Tensor, fidelity=None) -> _Batch:
    """The spectra (B, L), atom counts (B,) and fidelity flags (a number or (B,); None) of one sampling call
    as a :class:`_Batch`."""
    dev = device_of(model, spectrum)
    spectrum = torch.as_tensor(spectrum, dtype=torch.float32).to(dev)
    node_mask = node_mask_from_counts(n_atoms, dev)
    b, n = node_mask.shape
    fid = None
    if fidelity is not None:
        fid = torch.as_tensor(fidelity_flags(torch.as_tensor(fidelity).cpu().numpy(), b)).to(dev)
    return _Batch(dev, spectrum, node_mask, movable_mask(node_mask)[..., None], b, n, model.cfg.n_species, fid)


def _start_state(
    z_x: torch.Tensor, z_h: torch.Tensor, bt: _Batch, cfg: DiffusionConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Initial noise (B,N,3), (B,N,K) masked to the movable atoms, with the excited O's fixed species added:
    (z_x, z_h, fixed_h), fixed_h being what every step adds back to z_h."""
    z_x = z_x * bt.mm
    z_h = z_h * bt.mm + excited_species(bt.b, bt.n, bt.k, cfg, z_x)
    return z_x, z_h, excited_species(bt.b, bt.n, bt.k, cfg, z_x)


def _steps(grid: list[int], progress: bool, desc: str):
    """The (t, s) pairs of consecutive times of ``grid``, behind a progress bar when ``progress``."""
    pairs = list(zip(grid[:-1], grid[1:]))
    if not progress:
        return pairs
    from tqdm.auto import tqdm

    return tqdm(pairs, desc=desc, unit="step")


def _times(schedule: Schedule, t_int: int, s_int: int, bt: _Batch):
    """Step t -> s of a batch: t (B,) and alpha_t, sigma_t, alpha_s, sigma_s, each (B,)."""
    t = torch.full((bt.b,), t_int, device=bt.device)
    s = torch.full((bt.b,), s_int, device=bt.device)
    a_t, sg_t = schedule(t)
    a_s, sg_s = schedule(s)
    return t, a_t, sg_t, a_s, sg_s


def _estimate_x0(model, schedule: Schedule, z_x, z_h, t, bt: _Batch, clip_radius, guidance, sc):
    """The clipped x_0 estimate at time t, x_hat (B,N,3) Å and h_hat (B,N,K) (h clamped to [0, species_scale]
    while ``clip_radius`` is set), and the self-conditioning input it gives the next step."""
    x_raw, h_raw, _, _ = guided_predictions(
        model, z_x, z_h, t, bt.spectrum, bt.node_mask, schedule, guidance, sc, bt.fidelity
    )
    x_hat = clip_x0(x_raw, clip_radius)
    h_hat = clip_h0(h_raw, schedule.cfg.species_scale if clip_radius else None)
    return x_hat, h_hat, _self_cond(model, x_hat, h_hat)


@torch.no_grad()
def sample(
    model,
    spectrum: torch.Tensor,
    n_atoms: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator | None = None,
    n_steps: int | None = None,
    progress: bool = False,
    clip_radius: float | None = 6.0,
    guidance: float = 0.0,
    noise_scale: float = 1.0,
    fidelity=None,
) -> SampleOutput:
    """Ancestral sampling from N(0, I) at t=T down to t=0, conditioned on spectra (B, L).

    ``n_steps`` < T skips steps (the same ancestral update between non-adjacent times),
    a cheap approximation; the paper's protocol uses all T = 1000 steps.
    ``clip_radius`` (Å): radial clip of the predicted x_0 (module docstring); None disables it.
    ``guidance``: classifier-free guidance weight w (:func:`guided_predictions`; 0 = none, the paper).
    ``noise_scale``: factor on the noise of every reverse step, z_s = mu + noise_scale * sigma_{t->s} eps
    (low-temperature sampling; 1 = the paper's ancestral sampler, 0 = every step goes to its mean;
    the initial draw at t = T stays N(0, I)).
    ``fidelity``: the spectra's fidelity flag in [0, 1], one number or (B,), for a model with
    ``ModelConfig.fidelity_input`` (1 first principles, 0 xTB; None: 0).
    """
    if not noise_scale >= 0.0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale!r}")
    cfg = schedule.cfg
    bt = _batch(model, spectrum, n_atoms, fidelity)
    b, n, k, mm = bt.b, bt.n, bt.k, bt.mm
    z_x, z_h, fixed_h = _start_state(
        randn_like_on((b, n, 3), generator, mm), randn_like_on((b, n, k), generator, mm), bt, cfg
    )
    sc = None
    for t_int, s_int in _steps(timesteps(cfg.T, n_steps), progress, "sampling"):
        t, a_t, sg_t, a_s, sg_s = _times(schedule, t_int, s_int, bt)
        a_ts = (a_t / a_s)[:, None, None]
        sg_t, sg_s = sg_t[:, None, None], sg_s[:, None, None]
        sg2_ts = transition_variance(a_ts, sg_t, sg_s, schedule.variance_preserving)
        x_hat, h_hat, sc = _estimate_x0(model, schedule, z_x, z_h, t, bt, clip_radius, guidance, sc)
        c_x0 = a_s[:, None, None] * sg2_ts / sg_t**2
        c_zt = a_ts * sg_s**2 / sg_t**2
        mu_x = c_x0 * x_hat + c_zt * z_x
        mu_h = c_x0 * h_hat + c_zt * z_h
        std = noise_scale * torch.sqrt(sg2_ts) * sg_s / sg_t
        z_x = (mu_x + std * randn_like_on(z_x.shape, generator, z_x)) * mm
        z_h = (mu_h + std * randn_like_on(z_h.shape, generator, z_h)) * mm + fixed_h
    # x_0 from z_0: x = (z_0 - sigma_0 eps_hat) / alpha_0
    return _decode_z0(model, schedule, z_x, z_h, bt.spectrum, bt.node_mask, mm, clip_radius, guidance, sc, bt.fidelity)


@torch.no_grad()
def sample_ddim(
    model,
    spectrum: torch.Tensor,
    n_atoms: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator | None = None,
    n_steps: int | None = 50,
    eta: float = 0.0,
    progress: bool = False,
    clip_radius: float | None = 6.0,
    noise: tuple[torch.Tensor, torch.Tensor] | None = None,
    guidance: float = 0.0,
    t_start: int | None = None,
    fidelity=None,
) -> SampleOutput:
    """Few-step DDIM sampler (Song et al. 2021) on the same eps-model, via the predicted x_0.

    On the time grid :func:`timesteps` (T, n_steps), each step t -> s does

        x_hat  = clip((z_t - sigma_t eps_hat) / alpha_t)     (same radial clip as :func:`sample`)
        e_hat  = (z_t - alpha_t x_hat) / sigma_t             (eps consistent with the clipped x_hat)
        c      = eta * sigma_{t|s} sigma_s / sigma_t         (the ancestral step's noise level)
        z_s    = alpha_s x_hat + sqrt(sigma_s^2 - c^2) e_hat + c * noise

    ``eta = 0``: deterministic (the probability-flow ODE's first-order solver): the output
    is a fixed, rotation-equivariant function of the initial noise.  ``eta = 1``: the same
    marginals as the ancestral sampler; with the same generator it reproduces
    :func:`sample` step by step (it draws its random numbers in the same order).
    Species h are handled like in :func:`sample` (x_hat of h clamped to [0, species_scale]
    while ``clip_radius`` is set; the excited O keeps x = 0, h = O) and the last step is the
    same x_0 = (z_0 - sigma_0 eps_hat) / alpha_0 at t = 0.  Network calls: n_steps + 1.
    ``noise``: optional initial (z_x (B,N,3), z_h (B,N,K)) instead of drawing them from
    ``generator`` (masked like the drawn ones; used to test equivariance).
    ``guidance``: classifier-free guidance weight w (:func:`guided_predictions`; 0 = none).
    ``t_start``: start from step t_start < T instead of T (SDEdit, Meng et al. 2022): ``noise`` is then
    the state z_{t_start} (e.g. a known environment noised by :func:`q_sample`), and the grid takes
    ceil(n_steps t_start / T) steps down to 0.
    ``fidelity``: the spectra's fidelity flag, as in :func:`sample`.
    """
    if not eta >= 0.0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    cfg = schedule.cfg
    bt = _batch(model, spectrum, n_atoms, fidelity)
    b, n, k, mm = bt.b, bt.n, bt.k, bt.mm
    if noise is None:
        z_x = randn_like_on((b, n, 3), generator, mm)
        z_h = randn_like_on((b, n, k), generator, mm)
    else:
        z_x, z_h = (torch.as_tensor(v, dtype=torch.float32).to(bt.device) for v in noise)
        if z_x.shape != (b, n, 3) or z_h.shape != (b, n, k):
            raise ValueError(
                f"noise must have shapes {(b, n, 3)} and {(b, n, k)}, got {tuple(z_x.shape)} and {tuple(z_h.shape)}"
            )
    z_x, z_h, fixed_h = _start_state(z_x, z_h, bt, cfg)
    if t_start is None or t_start >= cfg.T:
        grid = timesteps(cfg.T, n_steps)
    else:
        if noise is None or t_start < 1:
            raise ValueError("t_start < T needs the state z_{t_start} as noise= and t_start >= 1")
        k_steps = max(1, int(np.ceil((n_steps or cfg.T) * t_start / cfg.T)))
        grid = [int(v) for v in np.unique(np.round(np.linspace(0, t_start, k_steps + 1)).astype(int))[::-1]]
    sc = None
    for t_int, s_int in _steps(grid, progress, "sampling (DDIM)"):
        t, a_t, sg_t, a_s, sg_s = _times(schedule, t_int, s_int, bt)
        a_t, sg_t = a_t[:, None, None], sg_t[:, None, None]
        a_s, sg_s = a_s[:, None, None], sg_s[:, None, None]
        x_hat, h_hat, sc = _estimate_x0(model, schedule, z_x, z_h, t, bt, clip_radius, guidance, sc)
        e_x = (z_x - a_t * x_hat) / sg_t
        e_h = (z_h - a_t * h_hat) / sg_t
        sg2_ts = transition_variance(a_t / a_s, sg_t, sg_s, schedule.variance_preserving)
        c = eta * torch.sqrt(sg2_ts) * sg_s / sg_t
        d = torch.sqrt((sg_s**2 - c**2).clamp(min=0.0))
        z_x = a_s * x_hat + d * e_x
        z_h = a_s * h_hat + d * e_h
        if eta > 0:
            z_x = z_x + c * randn_like_on(z_x.shape, generator, z_x)
            z_h = z_h + c * randn_like_on(z_h.shape, generator, z_h)
        z_x = z_x * mm
        z_h = z_h * mm + fixed_h
    return _decode_z0(model, schedule, z_x, z_h, bt.spectrum, bt.node_mask, mm, clip_radius, guidance, sc, bt.fidelity)


def _draw_ancestral(
    denoiser, spectrum, n_atoms, schedule, generator, *, n_steps, eta, guidance, noise_scale, fidelity=None
):
    return sample(
        denoiser,
        spectrum,
        n_atoms,
        schedule,
        generator,
        n_steps=n_steps,
        guidance=guidance,
        noise_scale=noise_scale,
        fidelity=fidelity,
    )


def _draw_ddim(denoiser, spectrum, n_atoms, schedule, generator, *, n_steps, eta, guidance, noise_scale, fidelity=None):
    return sample_ddim(
        denoiser, spectrum, n_atoms, schedule, generator, n_steps=n_steps, eta=eta, guidance=guidance, fidelity=fidelity
    )


#: The samplers by name: the one registry that :func:`s2s.model.sample.generate`, the command line and the
#: benchmarks read their choices from.  Each draws one batch: ``f(denoiser, spectrum (B, L), n_atoms (B,),
#: schedule, generator, *, n_steps, eta, guidance, noise_scale, fidelity=None) -> SampleOutput`` (``eta``: DDIM
#: noise; ``noise_scale``: the ancestral sampler's; each ignores the other's; ``fidelity``: the fidelity flags,
#: a number or (B,), of a model with ``ModelConfig.fidelity_input``, None for 0).  A new sampler is its function and
#: one entry here.
SAMPLERS: dict[str, Callable[..., SampleOutput]] = {"ancestral": _draw_ancestral, "ddim": _draw_ddim}


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "alpha_schedule",
    "sigma_schedule",
    "Schedule",
    "q_sample",
    "diffusion_loss",
    "sample",
    "model_predictions",
    "guided_predictions",
    "snr_weight",
    "sample_t",
    "transition_variance",
    "equivalent_step",
    "SampleOutput",
    "timesteps",
    "sample_ddim",
    "SAMPLERS",
    "node_mask_from_counts",
    "movable_mask",
    "encode_species",
    "n_parameters",
]
