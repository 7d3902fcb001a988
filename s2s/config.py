"""Configuration dataclasses.  Defaults are the paper's values (Supplementary Text 1).

`cpu_preset()` gives the documented default for a 2-core machine: the same method,
a smaller network and batched graphs, so that a model trains in under an hour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

#: Spectrum length on the paper's grid (200 points, -1..19 eV, 0.1 eV).
N_SPECTRUM = 200
#: Number of species channels (Si, O).
N_SPECIES = 2


#: Ways the spectrum reaches the network (``ModelConfig.spectrum_encoder``).
SPECTRUM_ENCODERS = ("none", "add", "film")
#: What the network predicts (``DiffusionConfig.parameterization``).
PARAMETERIZATIONS = ("eps", "x0")
#: Loss weights w(t) of the x_0 error (``DiffusionConfig.loss_weight``), see :mod:`s2s.model.diffusion`.
LOSS_WEIGHTS = ("snr", "min_snr", "clamp_snr")
#: Training-time distributions of t (``DiffusionConfig.t_sampling``).
T_SAMPLINGS = ("uniform", "band")
#: Noise schedules (``DiffusionConfig.schedule``): the paper's, EDM's code, and the straight (flow-matching) path.
SCHEDULES = ("paper", "edm", "linear")
#: Pairings of noise and data during training (``DiffusionConfig.coupling``), see :mod:`s2s.model.coupling`.
COUPLINGS = ("independent", "ot")


@dataclass(frozen=True)
class ModelConfig:
    """EGNN denoiser (Satorras et al. 2021, EDM variant).  Paper: L = 5, hidden 1024, message 256."""

    n_layers: int = 5
    hidden_dim: int = 1024
    message_dim: int = 256
    spectrum_dim: int = N_SPECTRUM
    n_species: int = N_SPECIES
    #: Divisor of the summed messages (EDM's ``normalization_factor``).
    aggregation_norm: float = 10.0
    #: Bound of each coordinate update, Å (EDM's ``coords_range`` with tanh).
    coords_range: float = 15.0
    #: Feed the spectrum to every layer, not only the input embedding.
    spectrum_every_layer: bool = False
    #: Spectrum encoder beside the paper's S = (s, 0, ..., 0): "none" (the paper), "add" (an MLP of the
    #: per-bin standardised spectrum added to every node before every layer) or "film" (the same
    #: embedding scales and shifts every node before every layer, Perez et al. 2018).
    spectrum_encoder: str = "none"
    #: Width of the spectrum embedding (None: ``hidden_dim``).
    spectrum_embed_dim: int | None = None
    #: Self-conditioning (Chen et al. 2022): the previous x_0 estimate enters as pair distances.
    self_condition: bool = False
    #: The spectrum's fidelity as an input (issue 29, item 4 (c)): one more node-input channel, on the excited
    #: atom 1.0 for a first-principles ("reference", "translated") spectrum and 0.0 for an xTB one, 0 elsewhere
    #: (:func:`s2s.site_record.fidelity_flag`).  Off: the network, its weights and its outputs are as before.
    fidelity_input: bool = False

    def __post_init__(self) -> None:
        if self.spectrum_encoder not in SPECTRUM_ENCODERS:
            raise ValueError(
                f"ModelConfig.spectrum_encoder must be one of {SPECTRUM_ENCODERS}, got {self.spectrum_encoder!r}"
            )


@dataclass(frozen=True)
class DiffusionConfig:
    """Polynomial noise schedule of Hoogeboom et al. (2022) as written in the paper.

    alpha_t = (1 - 2s) (1 - (t/T)^2)^p + s,  sigma_t = sqrt(1 - alpha_t^2).
    """

    T: int = 1000
    s: float = 1e-5
    power: float = 2.0
    #: "paper": the polynomial gives alpha_t (the paper's equation).
    #: "edm": the polynomial gives alpha_t^2 (the EDM reference code).
    #: "linear": alpha_t = 1 - t/T, sigma_t = t/T, the straight path of (rectified) flow matching
    #: (Lipman et al. 2023, Liu et al. 2023); its deterministic DDIM step is the Euler step of the flow ODE.
    #: Not variance-preserving; needs ``parameterization="x0"`` (alpha_T = 0).
    schedule: str = "paper"
    #: Scale of the one-hot species channels before noising (EDM normalises h by 4).
    species_scale: float = 0.25
    #: The network predicts the noise ("eps", the paper) or the clean environment ("x0", EQGAT-diff).
    parameterization: str = "eps"
    #: Weight w(t) of |x0_hat - x0|^2: "snr" = alpha^2/sigma^2, i.e. the paper's plain eps loss;
    #: "min_snr" = min(SNR, gamma) (Hang et al. 2023); "clamp_snr" = clamp(SNR, lo, hi) (EQGAT-diff).
    loss_weight: str = "snr"
    min_snr_gamma: float = 5.0
    snr_clamp: tuple[float, float] = (0.05, 1.5)
    #: t ~ U{1..T} ("uniform", the paper) or half of the draws inside the band where alpha_t lies in
    #: ``alpha_band`` ("band"), the noise levels at which the environment is decided.
    t_sampling: str = "uniform"
    alpha_band: tuple[float, float] = (0.2, 0.95)
    #: Classifier-free guidance (Ho & Salimans 2021): fraction of training graphs whose spectrum is dropped.
    cond_drop: float = 0.0
    #: Pairing of each training environment with its noise draw: "independent" (the paper) or "ot" (atoms
    #: assigned and the noise rotated onto the environment, :mod:`s2s.model.coupling`; equivariant OT flow
    #: matching, SemlaFlow).  Sampling is unchanged (it starts from N(0, I) either way).
    coupling: str = "independent"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("parameterization", self.parameterization, PARAMETERIZATIONS),
            ("loss_weight", self.loss_weight, LOSS_WEIGHTS),
            ("t_sampling", self.t_sampling, T_SAMPLINGS),
            ("schedule", self.schedule, SCHEDULES),
            ("coupling", self.coupling, COUPLINGS),
        ):
            if value not in allowed:
                raise ValueError(f"DiffusionConfig.{name} must be one of {allowed}, got {value!r}")
        if self.schedule == "linear" and self.parameterization != "x0":
            raise ValueError(
                'DiffusionConfig: schedule "linear" reaches alpha_T = 0, where an eps-prediction gives no x_0; '
                'use parameterization="x0"'
            )
        if not 0.0 <= self.cond_drop < 1.0:
            raise ValueError(f"DiffusionConfig.cond_drop must be in [0, 1), got {self.cond_drop}")
        # tuples survive a JSON round trip as lists: store them as tuples again
        object.__setattr__(self, "snr_clamp", tuple(self.snr_clamp))
        object.__setattr__(self, "alpha_band", tuple(self.alpha_band))


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and loop.  Paper: AdamW lr 1e-4, weight decay 1e-12, EMA 0.999, batch 1, 3000 epochs."""

    lr: float = 1e-4
    weight_decay: float = 1e-12
    ema_beta: float = 0.999
    batch_size: int = 1
    epochs: int = 3000
    max_steps: int | None = None
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    #: torch threads for training (None: torch's default).
    num_threads: int | None = None
    #: Linear learning-rate warm-up over this many steps (0: none, the paper).
    warmup_steps: int = 0
    #: EMA decay min(beta, (1 + n) / (10 + n)) after n updates, so early weights are forgotten (False: the paper's
    #: fixed beta).
    ema_warmup: bool = False
    #: Batches of graphs of similar size (a 51-atom graph does not pad a batch of 15-atom graphs).
    bucket_by_size: bool = False
    #: Cosine learning-rate decay from ``lr`` to ``lr * lr_min_factor`` over ``lr_decay_steps`` steps starting at
    #: step ``lr_decay_start`` (None: constant lr, the paper); typically the last phase of a continuation.
    lr_decay_start: int | None = None
    lr_decay_steps: int = 0
    lr_min_factor: float = 0.1


@dataclass(frozen=True)
class S2SConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "S2SConfig":
        def build(kind, sub: dict[str, Any] | None):
            sub = dict(sub or {})
            known = {f.name for f in fields(kind)}
            unknown = set(sub) - known
            if unknown:
                raise ValueError(
                    f"{kind.__name__}: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}"
                )
            return kind(**sub)

        unknown = set(d) - {"model", "diffusion", "train"}
        if unknown:
            raise ValueError(f"S2SConfig: unknown section(s) {sorted(unknown)}; expected model, diffusion, train")
        return cls(
            model=build(ModelConfig, d.get("model")),
            diffusion=build(DiffusionConfig, d.get("diffusion")),
            train=build(TrainConfig, d.get("train")),
        )


def paper_config() -> S2SConfig:
    """The paper's hyperparameters (Supplementary Text 1)."""
    return S2SConfig()


def cpu_preset() -> S2SConfig:
    """Default for a 2-core CPU machine: hidden 128, message 64, 4 layers, batches of 64 graphs.

    Batching: the paper trained with batch size 1 on a GPU for 3000 epochs.  On 2 CPU cores the
    per-step overhead dominates for single graphs, so we batch 64 padded graphs per step
    (masks keep graphs independent) and raise the learning rate accordingly (5e-4, a common
    choice for EDM-style models at this batch size).
    """
    return S2SConfig(
        model=ModelConfig(n_layers=4, hidden_dim=128, message_dim=64),
        diffusion=DiffusionConfig(),
        train=TrainConfig(lr=5e-4, batch_size=64, epochs=300, checkpoint_every=200),
    )


def cpu_v3_preset() -> S2SConfig:
    """The CPU recipe that reads the spectrum (issue 14; ablation in docs/model.md).

    The cpu preset's network and batch, plus: the standardised spectrum through an MLP encoder to
    every node before every layer (FiLM), self-conditioning on the previous x_0 estimate, clean-data
    prediction with the EQGAT-diff loss weight clamp(SNR, 0.05, 1.5), half of the training steps drawn
    where alpha_t is 0.2-0.95, 10 % of the spectra dropped (classifier-free guidance), lr warm-up, EMA
    warm-up and size-bucketed batches.
    """
    base = cpu_preset()
    return S2SConfig(
        model=replace(base.model, spectrum_encoder="film", self_condition=True),
        diffusion=replace(
            base.diffusion, parameterization="x0", loss_weight="clamp_snr", t_sampling="band", cond_drop=0.1
        ),
        train=replace(base.train, warmup_steps=500, ema_warmup=True, bucket_by_size=True),
    )


def gpu_v3_preset() -> S2SConfig:
    """cpu_v3's method (FiLM spectrum encoder, x0 prediction, self-conditioning) at a GPU's size: 5 layers,
    hidden 512, message 128 (7.2 M parameters, 27 MiB of float32 weights), batches of 128 graphs, lr 3e-4.

    For one short run on a lent GPU (``scripts/device_fidelity.sh``; docs/fidelity.md "A GPU run, prepared").
    Half the paper's width so that the weights come back from the device machine (files of at most 16 MiB,
    two parts) and stay a light checkpoint to ship; the lr is lower than cpu_v3's 5e-4 for the wider network
    and larger batch.  Untested on a GPU here (none was lent).  On one CPU thread a step took ~13 CPU s (6 steps,
    set-up included), where cpu_v3 trains at ~0.4 s a step: a preset for a GPU only.
    """
    base = cpu_v3_preset()
    return S2SConfig(
        model=replace(base.model, n_layers=5, hidden_dim=512, message_dim=128),
        diffusion=base.diffusion,
        train=replace(base.train, lr=3e-4, batch_size=128, checkpoint_every=1000),
    )


def tiny_preset() -> S2SConfig:
    """For tests and CI smoke runs."""
    return S2SConfig(
        model=ModelConfig(n_layers=2, hidden_dim=32, message_dim=16),
        diffusion=DiffusionConfig(),
        train=TrainConfig(lr=1e-3, batch_size=16, epochs=1000, checkpoint_every=50, log_every=10),
    )


PRESETS = {
    "paper": paper_config,
    "cpu": cpu_preset,
    "cpu_v3": cpu_v3_preset,
    "gpu_v3": gpu_v3_preset,
    "tiny": tiny_preset,
}


def get_preset(name: str) -> S2SConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


__all__ = [
    "ModelConfig",
    "DiffusionConfig",
    "TrainConfig",
    "S2SConfig",
    "paper_config",
    "cpu_preset",
    "cpu_v3_preset",
    "gpu_v3_preset",
    "tiny_preset",
    "get_preset",
    "replace",
    "N_SPECTRUM",
    "N_SPECIES",
]
