"""SOAP descriptors of O-centred environments (dscribe), the one implementation behind the
template-matching comparison (:mod:`s2s.retrieval.template`) and the forward model's input
(:mod:`s2s.forward.model`).

* :class:`SoapSettings` (:data:`DEFAULT_SOAP`) - the SOAP parameters and why;
* :func:`soap` - the dscribe ``SOAP`` descriptor for a settings (cached);
* :func:`soap_vectors` - SOAP vector of each environment, centred on the excited O, the
  environment treated as a finite, non-periodic Si/O cluster (:func:`environment_to_atoms`);
* :func:`soap_cosine`, :func:`soap_similarity_to_target` - cosine similarity of SOAP vectors.

dscribe and ase are imported where used, so that this module loads without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from s2s.environment import SPECIES, Environment


@dataclass(frozen=True)
class SoapSettings:
    """SOAP (dscribe) parameters for O-centred Si/O environments.

    Defaults and why:

    * ``r_cut = 6.0`` Å: environments are three graph hops of at most 2.0 Å, so every atom
      lies within 3 x 2.0 = 6.0 Å of the excited O (triangle inequality); dscribe adds a
      Gaussian-tail padding beyond ``r_cut``, so nothing of the environment is cut off.
    * ``n_max = 8``, ``l_max = 6``: dscribe's usual choice; radial resolution ~ r_cut / n_max
      ~ 0.75 Å separates the Si-O (1.6 Å), O-O/Si-Si (2.6-3.1 Å) and third-shell (~4-5 Å)
      distances, and l <= 6 resolves tetrahedral vs octahedral angular motifs.
    * ``sigma = 0.5`` Å: narrower than the smallest interatomic distance (Si-O 1.6 Å) so
      shells stay distinct, wider than typical generation errors of the first shell
      (~0.06 Å RMSD), so the similarity degrades smoothly rather than all-or-nothing.
    * ``rbf = "gto"``, no radial weighting, non-periodic (the environment is a finite cluster).
    * ``center_weight = None``: the excited O's own density is included (dscribe default);
      set 0.0 to hide it (it adds the same constant to every environment and so raises all
      cosine similarities slightly without changing their order much).
    """

    r_cut: float = 6.0
    n_max: int = 8
    l_max: int = 6
    sigma: float = 0.5
    rbf: str = "gto"
    center_weight: float | None = None


DEFAULT_SOAP = SoapSettings()


@lru_cache(maxsize=8)
def soap(settings: SoapSettings = DEFAULT_SOAP):
    """The dscribe ``SOAP`` descriptor for ``settings`` (built once per settings: cached)."""
    from dscribe.descriptors import SOAP

    weighting = None if settings.center_weight is None else {"w0": float(settings.center_weight)}
    return SOAP(
        species=list(SPECIES),
        r_cut=settings.r_cut,
        n_max=settings.n_max,
        l_max=settings.l_max,
        sigma=settings.sigma,
        rbf=settings.rbf,
        weighting=weighting,
        periodic=False,
        sparse=False,
    )


def environment_to_atoms(env: Environment):
    """``ase.Atoms`` of the environment (symbols from SPECIES, positions in Å, no cell, pbc off)."""
    from ase import Atoms

    if not isinstance(env, Environment):
        raise TypeError(f"expected an s2s.environment.Environment, got {type(env).__name__}")
    return Atoms(symbols=env.symbols(), positions=env.coords, pbc=False)


def soap_vectors(
    environments: Environment | Sequence[Environment],
    settings: SoapSettings = DEFAULT_SOAP,
    *,
    progress: bool = False,
) -> np.ndarray:
    """SOAP vector of each environment, centred on its excited atom (index 0).

    Returns (n_env, n_features) float64 (a single Environment gives (1, n_features)).
    Each environment is a finite, non-periodic Si/O cluster; see :class:`SoapSettings`.
    """
    if isinstance(environments, Environment):
        environments = [environments]
    envs = list(environments)
    desc = soap(settings)
    out = np.empty((len(envs), desc.get_number_of_features()), dtype=np.float64)
    it = envs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(envs, desc="SOAP", unit="env")
    for i, env in enumerate(it):
        out[i] = desc.create(environment_to_atoms(env), centers=[0]).reshape(-1)
    return out


def soap_cosine(a: ArrayLike, b: ArrayLike) -> np.ndarray | float:
    """Cosine similarity of SOAP vectors: 1-D x 1-D gives a float; (N, D) x (N, D) or
    broadcastable shapes give one value per row.  Raises on a zero vector."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"soap_cosine: feature lengths differ ({a.shape[-1]} vs {b.shape[-1]})")
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    if np.any(na == 0) or np.any(nb == 0):
        raise ValueError("soap_cosine: zero SOAP vector (empty environment?)")
    cos = np.sum(a * b, axis=-1) / (na * nb)
    return float(cos) if np.ndim(cos) == 0 else cos


def soap_similarity_to_target(
    target_envs: Sequence[Environment],
    candidate_envs: Sequence[Environment],
    settings: SoapSettings = DEFAULT_SOAP,
) -> np.ndarray:
    """(N,) SOAP cosine similarity of ``candidate_envs[i]`` to ``target_envs[i]``."""
    targets, cands = list(target_envs), list(candidate_envs)
    if len(targets) != len(cands):
        raise ValueError(f"soap_similarity_to_target: {len(targets)} targets but {len(cands)} candidates")
    if not targets:
        return np.empty(0)
    return np.atleast_1d(soap_cosine(soap_vectors(targets, settings), soap_vectors(cands, settings)))
