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
import collections
import csv
import io
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.structures import DEFAULT_DIR, fixed_records, load_records, unique_o_sites  # noqa: E402
from s2s.files import atomic_write_text  # noqa: E402

INDEX_FIELDS = [
    "id", "source", "name", "formula", "x", "n_atoms", "spacegroup", "spacegroup_number",
    "n_unique_o", "relaxation", "energy_per_atom", "filter_pass", "citation",
]


def write_index(folder: Path) -> list[dict]:
    """index.csv with one row per record; returns the rows."""
    rows = []
    for r in load_records(folder):
        rows.append({
            "id": r.id, "source": r.source, "name": r.name, "formula": r.formula,
            "x": f"{r.x:.4f}", "n_atoms": r.n_atoms, "spacegroup": r.spacegroup,
            "spacegroup_number": r.spacegroup_number,
            "n_unique_o": unique_o_sites(r.structure),
            "relaxation": r.relaxation.method,
            "energy_per_atom": "" if r.relaxation.energy_per_atom is None else f"{r.relaxation.energy_per_atom:.5f}",
            "filter_pass": int(not r.notes.get("filter")),
            "citation": r.citation,
        })
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=INDEX_FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(folder / "index.csv", buf.getvalue())
    return rows


def summary(rows: list[dict]) -> str:
    n_o = sum(int(r["n_unique_o"]) for r in rows)
    by_src = collections.Counter(r["source"] for r in rows)
    hist = collections.Counter()
    for r in rows:
        x = float(r["x"])
        b = "<1" if x < 1 else "1-1.5" if x < 1.5 else "1.5-<2" if x < 1.999 else "2" if x < 2.001 else "2-3" if x < 3 else ">=3"
        hist[b] += 1
    return (
        f"structures: {len(rows)}  unique O sites: {n_o}\n"
        f"by source: {dict(by_src)}\n"
        f"x = O/Si histogram: {dict(sorted(hist.items()))}"
    )


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
        Path(args.out), n_attempts=args.n, seed=args.seed, fmax=args.fmax, steps=args.steps,
        hull_window=args.hull_window, weights=parse_weights(args.weights), shard=_shard(args.shard),
    )
    print(summary(write_index(Path(args.out))))


def cmd_stats(args) -> None:
    """Attempts per strategy and outcome, CHGNet time per relaxation, filter pass rate."""
    import json

    import numpy as np

    log = Path(args.out) / "generated" / "attempts.jsonl"
    if not log.exists():
        print(f"{log}: no attempts yet")
        return
    att = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    relaxed = [a for a in att if "relax_seconds" in a]
    print(f"attempts: {len(att)}, relaxed: {len(relaxed)}, outcomes: "
          f"{dict(collections.Counter(a['status'] for a in att))}")
    for strat in sorted({a.get("strategy", "?") for a in att}):
        rs = [a for a in relaxed if a.get("strategy") == strat]
        if not rs:
            continue
        sec = np.array([a["relax_seconds"] for a in rs])
        steps = np.array([a["relax_steps"] for a in rs])
        n_atoms = np.array([a["n_atoms"] for a in rs])
        passed = sum(a["status"] in ("accepted", "duplicate") for a in rs)
        print(f"  {strat:9s} n={len(rs):4d}  pass filter {passed / len(rs):5.1%}  accepted "
              f"{sum(a['status'] == 'accepted' for a in rs):4d}  CHGNet s/relaxation median "
              f"{np.median(sec):6.1f} mean {sec.mean():6.1f}  steps median {np.median(steps):5.0f}  "
              f"atoms median {np.median(n_atoms):4.0f}")
    sec = np.array([a["relax_seconds"] for a in relaxed])
    passed = sum(a["status"] in ("accepted", "duplicate") for a in relaxed)
    print(f"  all       n={len(relaxed):4d}  pass filter {passed / max(len(relaxed), 1):5.1%}  "
          f"CHGNet s/relaxation median {np.median(sec):.1f} mean {sec.mean():.1f} total {sec.sum() / 3600:.2f} h")
    reasons = collections.Counter()
    for a in att:
        for r in a.get("reason", "").split("; "):
            if r:
                reasons[r.split(" ")[0] + " " + " ".join(r.split(" ")[1:4])] += 1
    print("  most common rejection reasons:", reasons.most_common(6))


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
    g.add_argument("--weights", default=None,
                   help="strategy mix, e.g. random_sio2=0.5,rattled=0.2,oxidised=0.2,peroxide=0.1 "
                        "(default: random 0.25, rattled 0.2, oxidised 0.4, peroxide 0.15)")
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
