"""s2s: spectrum-to-structure.

Generates 3D local environments around an excited O atom from its O K-edge
(ELNES/XANES) spectrum with a conditional E(n)-equivariant diffusion model.
"""

__version__ = "0.1.0"
