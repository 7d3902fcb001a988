"""Alignment benchmark: time per target/generated pair, and recovery under noise.

Prints, for N = 9, 15 and 30 atoms, the mean wall time (ms) of one alignment with
the paper's procedure (``align_paper``) and the never-worse one (``align_best``),
over random pairs of two kinds:

* unrelated: two independent random environments (atoms in a ball at silica's
  density, >= 1.5 Å apart) - the worst case for the ICP refinement;
* noisy copy: the target rotated, permuted and perturbed by ``--sigma`` Å.

It then reports, on the alpha-quartz O environment (15 atoms) with Gaussian noise,
how often each method recovers the true pairing and the mean RMSD.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_align.py [--pairs 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial.transform import Rotation

from s2s.environment import SI, Environment, O
from s2s.geometry.align import align_best, align_paper

DENSITY = 0.066  # atoms / Å^3, roughly amorphous/quartz SiO2


def random_environment(rng: np.random.Generator, n: int, min_dist: float = 1.5) -> Environment:
    radius = (3 * n / (4 * np.pi * DENSITY)) ** (1 / 3)
    pts = [np.zeros(3)]
    while len(pts) < n:
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) <= radius and min(np.linalg.norm(p - q) for q in pts) >= min_dist:
            pts.append(p)
    species = rng.choice([SI, O], size=n, p=[1 / 3, 2 / 3])
    species[0] = O
    return Environment(species, np.array(pts), np.minimum(np.arange(n), 3))


def noisy_copy(env: Environment, rng: np.random.Generator, sigma: float):
    n = env.n_atoms
    r = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix()
    p = np.concatenate([[0], 1 + rng.permutation(n - 1)])
    c = env.coords[p] @ r.T
    c[1:] += rng.normal(scale=sigma, size=(n - 1, 3))
    return Environment(env.species[p], c, env.shell[p]), p


def time_pairs(fn, pairs) -> tuple[float, float]:
    """Mean ms per pair and mean RMSD (Å)."""
    fn(*pairs[0])  # warm caches (permutation tables)
    t0 = time.perf_counter()
    rmsd = [fn(t, g).rmsd for t, g in pairs]
    return (time.perf_counter() - t0) / len(pairs) * 1e3, float(np.mean(rmsd))


def alpha_quartz_environment() -> Environment:
    from pymatgen.core import Lattice, Structure

    from s2s.environment import environment_from_structure

    # Levien, Prewitt & Weidner (1980); same data as tests/conftest.py
    ox, oy, oz = 0.4135, 0.2669, 0.1191
    s = Structure.from_spacegroup(
        152,
        Lattice.hexagonal(4.9137, 5.4047),
        ["Si", "O"],
        [[0.4697, 0.0, 1.0 / 3.0], [1.0 - ox, 1.0 - ox + oy, oz]],
    )
    return environment_from_structure(s, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10, help="random pairs per size and kind (default 10)")
    ap.add_argument("--sigma", type=float, default=0.05, help="noise (Å per coordinate) for the noisy copies")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    print(f"alignment time per pair, mean over {args.pairs} random pairs (ms); mean RMSD (Å) in brackets")
    print(f"{'N':>3} {'kind':<10} {'paper':>18} {'best':>18}")
    for n in (9, 15, 30):
        unrelated = [(random_environment(rng, n), random_environment(rng, n)) for _ in range(args.pairs)]
        copies = []
        for _ in range(args.pairs):
            t = random_environment(rng, n)
            copies.append((t, noisy_copy(t, rng, args.sigma)[0]))
        for kind, pairs in (("unrelated", unrelated), ("noisy", copies)):
            tp, rp = time_pairs(align_paper, pairs)
            tb, rb = time_pairs(align_best, pairs)
            print(f"{n:>3} {kind:<10} {tp:9.1f} ({rp:5.3f}) {tb:9.1f} ({rb:5.3f})")

    env = alpha_quartz_environment()
    print(f"\nalpha-quartz O environment ({env.n_atoms} atoms), noisy copies, {4 * args.pairs} per sigma:")
    print(f"{'sigma':>6} {'paper: recovered, RMSD':>24} {'best: recovered, RMSD':>24}")
    for sigma in (0.0, 0.01, 0.05, 0.1):
        res = {"paper": [0, []], "best": [0, []]}
        for _ in range(4 * args.pairs):
            g, p = noisy_copy(env, rng, sigma)
            for name, fn in (("paper", align_paper), ("best", align_best)):
                a = fn(env, g)
                res[name][0] += bool(np.all(p[a.perm] == np.arange(env.n_atoms)))
                res[name][1].append(a.rmsd)
        m = 4 * args.pairs
        print(
            f"{sigma:6.2f} {res['paper'][0]:>9d}/{m}, {np.mean(res['paper'][1]):7.4f} Å"
            f" {res['best'][0]:>9d}/{m}, {np.mean(res['best'][1]):7.4f} Å"
        )


if __name__ == "__main__":
    main()
