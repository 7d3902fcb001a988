"""Template-matching benchmark: MSE search time and SOAP throughput.

* ``nearest_by_mse`` for M queries x R references (200-point spectra, random unit-area
  curves, structure-like groups of 8 sites), wall time per call, checked once against a
  chunked brute-force ``mean((q - r)**2)``.
* ``soap_vectors`` on the alpha-quartz O environment (15 atoms) and on the
  stishovite-type O environment (37 atoms): ms per environment.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_template.py [--sizes 1000x2000 3000x3000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pymatgen.core import Lattice, Structure

from s2s.descriptors.soap import soap_vectors
from s2s.environment import environment_from_structure
from s2s.retrieval.neighbours import nearest_by_mse


def random_spectra(rng: np.random.Generator, n: int) -> np.ndarray:
    """Smooth non-negative curves on the 0.1-eV grid, unit area (sum of 4 Gaussians)."""
    e = -1.0 + 0.1 * np.arange(200)
    c = rng.uniform(0, 18, (n, 4, 1))
    w = rng.uniform(0.5, 3, (n, 4, 1))
    a = rng.uniform(0.2, 1, (n, 4, 1))
    y = (a * np.exp(-0.5 * ((e - c) / w) ** 2)).sum(axis=1)
    return y / (y.sum(axis=1, keepdims=True) * 0.1)


def brute(q, r, qg, rg) -> np.ndarray:
    out = np.empty(len(q), dtype=int)
    for i in range(len(q)):
        m = np.mean((q[i] - r) ** 2, axis=1)
        m[rg == qg[i]] = np.inf
        out[i] = np.argmin(m)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["300x2000", "1000x3000", "3000x3000", "5000x5000"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    print("nearest_by_mse (k=1, group exclusion)")
    for size in args.sizes:
        m, r = (int(x) for x in size.split("x"))
        q, ref = random_spectra(rng, m), random_spectra(rng, r)
        qg, rg = rng.integers(0, r // 8, m), np.arange(r) // 8
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            idx, _ = nearest_by_mse(q, ref, qg, rg)
            times.append(time.perf_counter() - t0)
        check = min(m, 200)
        ok = np.array_equal(idx[:check], brute(q[:check], ref, qg[:check], rg))
        print(
            f"  M={m:5d} R={r:5d}: best {min(times):.3f} s, median {np.median(times):.3f} s, "
            f"agrees with brute force on {check} queries: {ok}"
        )

    quartz = Structure.from_spacegroup(
        152,
        Lattice.hexagonal(4.9137, 5.4047),
        ["Si", "O"],
        [[0.4697, 0.0, 1.0 / 3.0], [1 - 0.4135, 1 - 0.4135 + 0.2669, 0.1191]],
    )
    stish = Structure.from_spacegroup(
        136, Lattice.tetragonal(4.1773, 2.6655), ["Si", "O"], [[0, 0, 0], [0.3062, 0.3062, 0]]
    )
    print("soap_vectors (defaults)")
    for name, s in (("alpha-quartz", quartz), ("stishovite", stish)):
        o = next(i for i, x in enumerate(s) if x.specie.symbol == "O")
        env = environment_from_structure(s, o)
        soap_vectors(env)  # import + basis set-up
        n = 500
        t0 = time.perf_counter()
        soap_vectors([env] * n)
        dt = (time.perf_counter() - t0) / n * 1e3
        print(f"  {name} O ({env.n_atoms} atoms): {dt:.2f} ms per environment")


if __name__ == "__main__":
    main()
