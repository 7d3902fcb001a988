"""E(n)-equivariant graph neural network denoiser (Satorras et al. 2021; EDM variant).

Equations (per layer l, fully connected graph over real atoms, j != i):

    m_ij   = phi_e(h_i, h_j, |x_i - x_j|^2, |x_i^0 - x_j^0|^2)              (edge message)
    m_ij  <- m_ij * sigmoid(phi_att(m_ij))                                  (attention gate)
    x_i   <- x_i + sum_j (x_i - x_j) / (|x_i - x_j| + 1) * phi_x(m_ij) / Z  (coordinate update)
    h_i   <- h_i + phi_h(h_i, sum_j m_ij / Z)                               (feature update)

Z is ``aggregation_norm``.  The first linear map of phi_e is evaluated per node and
broadcast over edges:  W [h_i; h_j; d] = W1 h_i + W2 h_j + w d, which is exact and
2-3x cheaper than materialising the concatenation for every edge.

Conditioning (paper, Methods): the spectrum matrix S = (s, 0, ..., 0) is concatenated to
the node features, so only the excited O (index 0) carries s; every node also carries t/T.
The excited O is pinned at the origin: its coordinate update is masked to zero, so the
network is equivariant to rotations/reflections about it and to permutations of the others.

Beside the paper's S, ``ModelConfig.spectrum_encoder`` can give every node the spectrum before
every layer: c = MLP((s - mean) / std) (per-bin statistics of the training spectra, buffers of
:class:`SpectrumEncoder`), then h <- h + W_l c ("add") or h <- h (1 + gamma_l(c)) + beta_l(c)
("film").  A dropped spectrum (classifier-free guidance, ``cond`` = 0) gives c = 0.

Fidelity input (``ModelConfig.fidelity_input``, issue 29 item 4 (c)): one more node-input channel, the
last one of the input layer, which holds the spectrum's fidelity flag f on the excited atom (1 for a
first-principles spectrum, 0 for xTB; :func:`s2s.site_record.fidelity_flag`) and 0 on every other atom, like
the excited-atom flag.  It is a scalar per node, so the network stays E(n)-equivariant.

Self-conditioning (``ModelConfig.self_condition``, Chen et al. 2022): the previous estimate
x_0' enters each edge as |x_0'_i - x_0'_j|^2 (invariant) and each node as its species h_0'.

Output: ``DiffusionConfig.parameterization`` decides whether (x_out - z_x, h_out) is read as
the noise (eps, the paper) or (x_out, h_out) as the clean environment (x0); see
:func:`s2s.model.diffusion.model_predictions`.
"""

from __future__ import annotations

import torch
from torch import nn

from s2s.config import ModelConfig
from s2s.model.graph import edge_mask as make_edge_mask


class EdgeMLP(nn.Module):
    """phi_e with the per-node first layer: (B,N,H),(B,N,N,2) -> (B,N,N,M)."""

    def __init__(self, hidden: int, message: int, n_edge: int = 2):
        super().__init__()
        self.w_src = nn.Linear(hidden, message)
        self.w_dst = nn.Linear(hidden, message, bias=False)
        self.w_dist = nn.Linear(n_edge, message, bias=False)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(message, message), nn.SiLU())
        self.att = nn.Linear(message, 1)

    def forward(self, h: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
        """h (B,N,H), dist (B,N,N,n_edge) -> gated messages (B,N,N,M)."""
        pre = self.w_src(h)[:, :, None, :] + self.w_dst(h)[:, None, :, :] + self.w_dist(dist)
        m = self.out(pre)
        return m * torch.sigmoid(self.att(m))


class SpectrumEncoder(nn.Module):
    """c = MLP((s - mean) / std): (B, L) spectra -> (B, D) embeddings.

    ``mean``/``std`` (L,) are buffers set once from the training spectra by :meth:`set_statistics`
    (saved with the weights).  Standardising per bin makes differences between spectra O(1),
    where unit-area values differ by ~0.02 between sites.
    """

    def __init__(self, spectrum_dim: int, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(spectrum_dim))
        self.register_buffer("std", torch.ones(spectrum_dim))
        self.net = nn.Sequential(nn.Linear(spectrum_dim, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    @torch.no_grad()
    def set_statistics(self, spectra: torch.Tensor, floor: float = 1e-3) -> None:
        """Per-bin mean and standard deviation (floored at ``floor``) of training spectra (M, L)."""
        spectra = torch.as_tensor(spectra, dtype=self.mean.dtype)
        self.mean.copy_(spectra.mean(0))
        self.std.copy_(spectra.std(0).clamp(min=floor))

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        return self.net((spectrum - self.mean) / self.std)


class EGCL(nn.Module):
    """One equivariant graph convolutional layer (equations in the module docstring)."""

    def __init__(
        self, hidden: int, message: int, extra: int, aggregation_norm: float, coords_range: float, n_edge: int = 2
    ):
        super().__init__()
        self.edge = EdgeMLP(hidden + extra, message, n_edge)
        self.node = nn.Sequential(nn.Linear(hidden + extra + message, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.coord = nn.Sequential(nn.Linear(message, message), nn.SiLU(), nn.Linear(message, 1, bias=False))
        nn.init.xavier_uniform_(self.coord[-1].weight, gain=1e-3)
        self.norm = aggregation_norm
        self.coords_range = coords_range

    def forward(self, h, x, x0_dist, extra, node_mask, emask, move_mask):
        """h (B,N,H), x (B,N,3), x0_dist (B,N,N,k) fixed edge features, extra (B,N,E) or None,
        masks (B,N), (B,N,N), (B,N)."""
        diff = x[:, :, None, :] - x[:, None, :, :]  # (B,N,N,3)
        d2 = (diff**2).sum(-1, keepdim=True)  # (B,N,N,1)
        hin = h if extra is None else torch.cat([h, extra], dim=-1)
        m = self.edge(hin, torch.cat([d2, x0_dist], dim=-1)) * emask[..., None]  # (B,N,N,M)
        # coordinate update, equivariant: sum_j (x_i - x_j)/(|x_i - x_j| + 1) * phi_x(m_ij)
        unit = diff / (torch.sqrt(d2 + 1e-8) + 1.0)
        w = torch.tanh(self.coord(m)) * self.coords_range  # (B,N,N,1)
        dx = (unit * w * emask[..., None]).sum(dim=2) / self.norm  # (B,N,3)
        x = x + dx * move_mask[..., None]
        # feature update with residual
        agg = m.sum(dim=2) / self.norm  # (B,N,M)
        h = h + self.node(torch.cat([hin, agg], dim=-1))
        return h * node_mask[..., None], x


class EGNNDenoiser(nn.Module):
    """Predicts the noise (eps_x, eps_h) from noisy (z_x, z_h), the time t/T and the spectrum."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # node input: species channels + t/T + excited-atom flag + spectrum row S_i (+ self-conditioning species)
        # (+ fidelity flag, the last column)
        n_in = (
            cfg.n_species
            + 2
            + cfg.spectrum_dim
            + (cfg.n_species if cfg.self_condition else 0)
            + (1 if cfg.fidelity_input else 0)
        )
        self.embed = nn.Linear(n_in, cfg.hidden_dim)
        extra = cfg.spectrum_dim if cfg.spectrum_every_layer else 0
        n_edge = 3 if cfg.self_condition else 2
        self.layers = nn.ModuleList(
            EGCL(cfg.hidden_dim, cfg.message_dim, extra, cfg.aggregation_norm, cfg.coords_range, n_edge)
            for _ in range(cfg.n_layers)
        )
        self.encoder: SpectrumEncoder | None = None
        if cfg.spectrum_encoder != "none":
            dim = cfg.spectrum_embed_dim or cfg.hidden_dim
            self.encoder = SpectrumEncoder(cfg.spectrum_dim, dim)
            width = cfg.hidden_dim * (2 if cfg.spectrum_encoder == "film" else 1)
            self.cond = nn.ModuleList(nn.Linear(dim, width) for _ in range(cfg.n_layers))
            for lin in self.cond:  # start as the unconditioned network: h unchanged
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        self.out_h = nn.Sequential(
            nn.Linear(cfg.hidden_dim, cfg.hidden_dim), nn.SiLU(), nn.Linear(cfg.hidden_dim, cfg.n_species)
        )

    @staticmethod
    def spectrum_matrix(spectrum: torch.Tensor, n: int) -> torch.Tensor:
        """S = (s, 0, ..., 0): (B,L) -> (B,N,L), the spectrum on the excited atom only."""
        s = torch.zeros(spectrum.shape[0], n, spectrum.shape[1], dtype=spectrum.dtype, device=spectrum.device)
        s[:, 0] = spectrum
        return s

    @staticmethod
    def fidelity_matrix(fidelity: torch.Tensor | None, b: int, n: int, like: torch.Tensor) -> torch.Tensor:
        """(B,N,1): the fidelity flags (B,) (None: 0) on the excited atom, 0 on the others."""
        f = torch.zeros(b, n, 1, dtype=like.dtype, device=like.device)
        if fidelity is not None:
            f[:, 0, 0] = torch.as_tensor(fidelity, dtype=like.dtype, device=like.device).reshape(-1).expand(b)
        return f

    def condition(self, h: torch.Tensor, c: torch.Tensor | None, layer: int) -> torch.Tensor:
        """Every node's features h (B,N,H) with the spectrum embedding c (B,D) of layer ``layer`` applied."""
        if c is None:
            return h
        out = self.cond[layer](c)[:, None, :]
        if self.cfg.spectrum_encoder == "add":
            return h + out
        gamma, beta = out.chunk(2, dim=-1)
        return h * (1.0 + gamma) + beta

    def forward(
        self,
        z_x: torch.Tensor,
        z_h: torch.Tensor,
        t: torch.Tensor,
        spectrum: torch.Tensor,
        node_mask: torch.Tensor,
        cond: torch.Tensor | None = None,
        self_cond: tuple[torch.Tensor, torch.Tensor] | None = None,
        fidelity: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z_x (B,N,3) Å, z_h (B,N,2), t (B,) in [0,1], spectrum (B,L), node_mask (B,N) -> (x_out - z_x, h_out).

        ``cond`` (B,) 1 keeps a graph's spectrum, 0 drops it (classifier-free guidance; None: keep all).
        ``self_cond``: the previous estimate (x_0' (B,N,3) Å, h_0' (B,N,K)); zeros when None and the model
        is self-conditioned.  ``fidelity`` (B,) flags in [0, 1] of a model with ``fidelity_input`` (1 first
        principles, 0 xTB; None: all 0); a model without that input refuses them.  The outputs are eps
        (``parameterization="eps"``) or x_0 - z_x, h_0 ("x0").
        """
        b, n, _ = z_x.shape
        move_mask = node_mask.clone()
        move_mask[:, 0] = 0.0
        emask = make_edge_mask(node_mask)
        excited = torch.zeros(b, n, 1, dtype=z_x.dtype, device=z_x.device)
        excited[:, 0] = 1.0
        keep = None if cond is None else cond.to(z_x.dtype)
        s_in = spectrum if keep is None else spectrum * keep[:, None]
        s_mat = self.spectrum_matrix(s_in, n)
        parts = [z_h, t[:, None, None].expand(b, n, 1), excited, s_mat]
        if self.cfg.self_condition:
            sc_x, sc_h = self_cond if self_cond is not None else (torch.zeros_like(z_x), torch.zeros_like(z_h))
            parts.append(sc_h)
        if self.cfg.fidelity_input:
            parts.append(self.fidelity_matrix(fidelity, b, n, z_x))
        elif fidelity is not None:
            raise ValueError("EGNNDenoiser: fidelity flags given, but this model has no fidelity input")
        h = self.embed(torch.cat(parts, dim=-1)) * node_mask[..., None]
        x = z_x * node_mask[..., None]
        diff0 = x[:, :, None, :] - x[:, None, :, :]
        x0_dist = (diff0**2).sum(-1, keepdim=True)
        if self.cfg.self_condition:
            d_sc = sc_x[:, :, None, :] - sc_x[:, None, :, :]
            x0_dist = torch.cat([x0_dist, (d_sc**2).sum(-1, keepdim=True)], dim=-1)
        extra = s_mat if self.cfg.spectrum_every_layer else None
        c = None
        if self.encoder is not None:
            c = self.encoder(spectrum)
            if keep is not None:
                c = c * keep[:, None]
        for k, layer in enumerate(self.layers):
            h = self.condition(h, c, k) * node_mask[..., None]
            h, x = layer(h, x, x0_dist, extra, node_mask, emask, move_mask)
        eps_x = (x - z_x) * move_mask[..., None]
        eps_h = self.out_h(h) * move_mask[..., None]
        return eps_x, eps_h
