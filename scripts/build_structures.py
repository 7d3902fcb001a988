#!/usr/bin/env python
"""Build the structure set of the open Si-O dataset (data/structures/).

  python scripts/build_structures.py fixed            # prototypes, literature, frameworks
  python scripts/build_structures.py generate --n 500 # random SiOx cells relaxed with CHGNet (long, resumable)
  python scripts/build_structures.py index            # rebuild index.csv and print counts
  python scripts/build_structures.py stats            # attempts, pass rate, CHGNet time per relaxation

The generation step is resumable: every attempt (seed, composition, space group, outcome,
timings) is appended to data/structures/generated/attempts.jsonl and every relaxed cell is
kept under data/structures/generated/relaxed/; accepted crystals are written as
data/structures/gen-*.json.  Run it in the background:

  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 nohup nice -n 15 python scripts/build_structures.py generate --n 600 &> gen.log &
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.structures import DEFAULT_DIR, fixed_records  # noqa: E402
from s2s.structures.index import generation_stats, summary, write_index  # noqa: E402


def cmd_fixed(args) -> None:
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    recs, dropped = fixed_records(max_layers=args.max_layers)
    for r in recs:
        r.save(folder)
    for d, k in sorted(dropped.items()):
        print(f"duplicate: {d} == {k}")
    rows = write_index(folder)
    print(f"wrote {len(recs)} fixed records ({len(dropped)} duplicates dropped)")
    print(summary(rows))


def cmd_index(args) -> None:
    print(summary(write_index(Path(args.out))))


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"--shard: expected I/N (e.g. 0/2), got {text!r}") from None
    if not 0 <= i < n:
        raise SystemExit(f"--shard: expected 0 <= I < N, got {text!r}")
    return i, n


def cmd_generate(args) -> None:
    from s2s.structures.generate import parse_weights, run_generation

    run_generation(
        Path(args.out),
        n_attempts=args.n,
        seed=args.seed,
        fmax=args.fmax,
        steps=args.steps,
        hull_window=args.hull_window,
        weights=parse_weights(args.weights),
        shard=_shard(args.shard),
    )
    print(summary(write_index(Path(args.out))))


def cmd_stats(args) -> None:
    """Attempts per strategy and outcome, CHGNet time per relaxation, filter pass rate."""
    for line in generation_stats(Path(args.out)):
        print(line)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / DEFAULT_DIR), help="output folder (default data/structures)")
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixed", help="prototypes, literature polymorphs and frameworks")
    f.add_argument("--max-layers", type=int, default=8, help="largest diamond polytype (layers)")
    f.set_defaults(func=cmd_fixed)
    g = sub.add_parser("generate", help="random SiOx cells relaxed with CHGNet (resumable)")
    g.add_argument("--n", type=int, default=500, help="number of attempts (counting earlier ones)")
    g.add_argument("--seed", type=int, default=20240601, help="base seed; attempt k uses seed + k")
    g.add_argument("--fmax", type=float, default=0.05, help="CHGNet force tolerance (eV/Å)")
    g.add_argument("--steps", type=int, default=800, help="max FIRE steps per relaxation")
    g.add_argument("--hull-window", type=float, default=0.2, help="max energy above hull (eV/atom)")
    g.add_argument(
        "--weights",
        default=None,
        help="strategy mix, e.g. random_sio2=0.5,rattled=0.2,oxidised=0.2,peroxide=0.1 "
        "(default: random 0.25, rattled 0.2, oxidised 0.4, peroxide 0.15)",
    )
    g.add_argument("--shard", default="0/1", help="I/N: run only attempts k with k %% N == I")
    g.set_defaults(func=cmd_generate)
    i = sub.add_parser("index", help="rebuild index.csv and print counts")
    i.set_defaults(func=cmd_index)
    s = sub.add_parser("stats", help="generation statistics from generated/attempts.jsonl")
    s.set_defaults(func=cmd_stats)
    args = p.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
