"""Shared test helpers: the one source of random rotations / reflections / permutations
(:func:`random_orthogonal`, :func:`random_permutation`, :func:`rotate_permute`) and the one
equivariance check of the networks (:func:`assert_equivariant`: random O(3) including
reflections, permutations).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import special_ortho_group

from s2s.environment import Environment


def random_orthogonal(seed: int, reflect: bool = False) -> np.ndarray:
    """(3, 3) random rotation (Haar-uniform on SO(3)), times a reflection when ``reflect`` (det -1)."""
    q = special_ortho_group.rvs(3, random_state=seed)
    return q @ np.diag([1.0, 1.0, -1.0]) if reflect else q


def random_permutation(n: int, rng: np.random.Generator | int) -> np.ndarray:
    """(n,) random permutation of the atoms 1..n-1; atom 0 (the excited O) stays first."""
    rng = np.random.default_rng(rng) if isinstance(rng, (int, np.integer)) else rng
    return np.r_[0, 1 + rng.permutation(n - 1)].astype(np.int64)


def rotate_permute(
    env: Environment,
    rotation: np.ndarray | None = None,
    perm: np.ndarray | None = None,
    scale: float = 1.0,
) -> Environment:
    """``env`` with coordinates (Å, about the origin) scaled, then mapped by ``rotation`` (3, 3),
    then its atoms reordered by ``perm`` (new atom j = old atom perm[j]); shells follow."""
    r = np.eye(3) if rotation is None else np.asarray(rotation)
    p = np.arange(env.n_atoms) if perm is None else np.asarray(perm)
    return Environment(env.species[p], (scale * env.coords @ r.T)[p], env.shell[p])


def assert_equivariant(
    fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    h: torch.Tensor,
    n_real: int,
    seed: int = 0,
    atol: float = 1e-8,
    x_out_invariant: bool = False,
) -> None:
    """Check fn(x, h) -> (vector (B,N,3), scalar (B,N,K)) under O(3) about the origin and permutations.

    For a random orthogonal Q (rotation and rotation-reflection) fn(x Q^T, h) must equal
    (v Q^T, s) (or (v, s) when ``x_out_invariant``); for a random permutation P of the atoms
    1..n_real-1 of the first graph (atom 0, the excited O, stays), fn(P x, P h) = (P v, P s).
    Also checks that the outputs are not trivially zero.
    """
    v, s = fn(x, h)
    assert v.abs().max() > 1e-6 and s.abs().max() > 1e-6, "outputs are (near) zero: the check would be vacuous"
    for reflect in (False, True):
        q = torch.as_tensor(random_orthogonal(seed, reflect), dtype=x.dtype)
        v_r, s_r = fn(x @ q.T, h)
        assert torch.allclose(v_r, v if x_out_invariant else v @ q.T, atol=atol), f"vector output (reflect={reflect})"
        assert torch.allclose(s_r, s, atol=atol), f"scalar output not invariant (reflect={reflect})"
    rng = np.random.default_rng(seed)
    perm = torch.as_tensor(np.r_[0, 1 + rng.permutation(n_real - 1)])
    x2, h2 = x.clone(), h.clone()
    x2[0, :n_real], h2[0, :n_real] = x[0, perm], h[0, perm]
    v2, s2 = fn(x2, h2)
    assert torch.allclose(v2[0, :n_real], v[0, perm], atol=atol), "vector output not permutation-equivariant"
    assert torch.allclose(s2[0, :n_real], s[0, perm], atol=atol), "scalar output not permutation-equivariant"


def toy_spectrum(k: float) -> np.ndarray:
    """A smooth O K-edge-like unit-area spectrum on the grid; ``k`` moves its two peaks (the toy datasets' label)."""
    from s2s.spectrum import GRID, normalize

    y = np.exp(-0.5 * ((GRID - 2.5 - 0.4 * k) / 1.0) ** 2) + 0.6 * np.exp(-0.5 * ((GRID - 9 - k) / 2.0) ** 2)
    return normalize(y * (1 / (1 + np.exp(-(GRID + 0.3) / 0.15))))


def toy_dataset_and_model(root, **record_fields):
    """(dataset path, model.pt) under ``root``: 7 strained alpha-quartz copies (one site each, spectra
    :func:`toy_spectrum`), split 0.15 / seed 0, and the tiny preset trained 3 steps through the CLI.
    ``record_fields``: extra :class:`s2s.dataset.SiteRecord` fields (default ``source="t"``)."""
    from s2s.cli import main
    from s2s.dataset import Dataset, SiteRecord
    from s2s.environment import environments_from_structure
    from s2s.splits import make_split
    from tests.conftest import make_alpha_quartz

    fields = {"source": "t", **record_fields}
    q = make_alpha_quartz()
    recs, structs = [], {}
    for k, scale in enumerate([1.0, 1.02, 0.98, 1.04, 0.96, 1.01, 0.99]):
        s = q.copy()
        s.scale_lattice(s.volume * scale**3)
        sid = f"quartz-{k}"
        env = environments_from_structure(s, structure_id=sid).environments[0]
        recs.append(SiteRecord(toy_spectrum(k), env, sid, env.meta["site_index"], formula="SiO2", **fields))
        structs[sid] = s
    data = root / "toy.h5"
    make_split(Dataset.from_records(recs, structs), test_fraction=0.15, seed=0).save(data)
    run = root / "run"
    argv = ["train", "--data", str(data), "--out", str(run), "--preset", "tiny", "--max-steps", "3", "--quiet"]
    assert main(argv) == 0
    return data, run / "model.pt"


def random_batch(b: int = 3, n: int = 7, seed: int = 0):
    """``b`` graphs of n, n - 2 and 3 atoms (float64 GraphBatch), noisy species channels h, random spectra."""
    from s2s.model.graph import collate

    rng = np.random.default_rng(seed)
    counts = [n, n - 2, 3][:b]
    envs, spectra = [], []
    for k in counts:
        x = rng.normal(scale=2.0, size=(k, 3))
        x[0] = 0.0
        sp = rng.integers(0, 2, size=k)
        sp[0] = 1
        envs.append(Environment(sp, x, np.r_[0, np.ones(k - 1, int)]))
        spectra.append(rng.random(200))
    batch = collate(envs, np.array(spectra), dtype=torch.float64)
    h = batch.h + torch.as_tensor(rng.normal(scale=0.3, size=batch.h.shape)) * batch.node_mask[..., None]
    return batch, h
