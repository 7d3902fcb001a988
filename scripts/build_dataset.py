"""Build the open dataset: xTB O K-edges of every unique O site, then the HDF5 dataset file.

    python scripts/build_dataset.py simulate [--workers 2] [--only ID,ID] [--limit N]
    python scripts/build_dataset.py assemble [--out data/s2s_open_v1.h5]
    python scripts/build_dataset.py all

``simulate`` is resumable: every site's result is cached under data/cache/xtb/ (commit it as it
accrues); ``assemble`` reads the structures (data/structures/*.json) and the cache, writes the
dataset atomically and the ``data`` block of figures/results.json.  Run it niced in the
background for the full set, e.g.
``OMP_NUM_THREADS=1 nohup nice -n 15 python scripts/build_dataset.py simulate --workers 1 &> build.log &``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.resources import default_path  # noqa: E402
from s2s.simulate.assemble import assemble, data_figures, xtb_cache_source  # noqa: E402
from s2s.simulate.build import build  # noqa: E402
from s2s.simulate.xtb import XtbSettings  # noqa: E402
from s2s.structures import load_records  # noqa: E402
from s2s.studies.results import update_results  # noqa: E402

STRUCTURES = ROOT / "data" / "structures"
CACHE = ROOT / "data" / "cache" / "xtb"
DATASET = default_path("data")
SIMULATOR = "xtb-gfn1"


def records(only: str | None, limit: int | None):
    recs = load_records(STRUCTURES)
    if only:
        keep = set(only.split(","))
        recs = [r for r in recs if r.id in keep]
    # small cells first: the most sites per CPU second early on
    recs.sort(key=lambda r: (r.n_atoms, r.id))
    return recs[:limit] if limit else recs


def cmd_simulate(a) -> None:
    settings = XtbSettings()
    recs = records(a.only, a.limit)
    print(f"simulating {len(recs)} structures with {settings.variant} {settings.method} -> {CACHE}")
    rep = build([(r.id, r.structure) for r in recs], settings, CACHE, workers=a.workers)
    print(rep.summary())


def cmd_assemble(a) -> None:
    settings = XtbSettings()
    t0 = time.perf_counter()
    ds, rep = assemble(
        records(a.only, a.limit),
        xtb_cache_source(CACHE, settings),
        simulator=SIMULATOR,
        settings=settings.to_dict(),
        test_fraction=0.1,
        seed=a.seed,
        meta={"structures": str(STRUCTURES.relative_to(ROOT)), "cache": str(CACHE.relative_to(ROOT))},
    )
    ds.save(a.out)
    fig = data_figures(ds, rep)
    print(rep.summary())
    print(f"wrote {a.out} ({a.out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s: {fig}")
    if not a.no_results:
        update_results("data", fig)


def main() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["simulate", "assemble", "all"])
    ap.add_argument("--workers", type=int, default=1, help="parallel single-threaded workers for simulate")
    ap.add_argument("--only", default=None, help="comma-separated structure ids")
    ap.add_argument("--limit", type=int, default=None, help="only the first N structures (smallest first)")
    ap.add_argument("--seed", type=int, default=0, help="split seed")
    ap.add_argument("--out", type=Path, default=DATASET, help="dataset file")
    ap.add_argument("--no-results", action="store_true", help="do not touch figures/results.json")
    a = ap.parse_args()
    if a.step in ("simulate", "all"):
        cmd_simulate(a)
    if a.step in ("assemble", "all"):
        cmd_assemble(a)


if __name__ == "__main__":
    main()
