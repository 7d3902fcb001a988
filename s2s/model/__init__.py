"""The conditional E(n)-equivariant diffusion model (paper, Methods: "Model").

- :mod:`~s2s.model.graph`: an environment as a fully connected graph (batched, padded).
- :mod:`~s2s.model.egnn`: the EGNN denoiser, Eqs. (5)-(8), with the spectrum encoder.
- :mod:`~s2s.model.natoms`: the atom-count head p(N | s).
- :mod:`~s2s.model.diffusion`: noise schedule, q(z_t | x), the loss and the samplers.
- :mod:`~s2s.model.s2s_model`: :class:`S2SModel`, denoiser + count head.
- :mod:`~s2s.model.train`, :mod:`~s2s.model.sample`: training and the one ``generate()``.
- :mod:`~s2s.model.probe`, :mod:`~s2s.model.refine`: the denoising probe and SDEdit refinement.
"""

from s2s.model.s2s_model import S2SModel

__all__ = ["S2SModel"]
