#!/usr/bin/env python
"""Build the GPAW O K-edge reference set (data/reference/), resumably.

Step 1 (``structures``): write every reference structure as data/reference/structures/<id>.cif
(sorted sites; the site indices of the records refer to this CIF).  Published / AFLOW structures
are written as given; the built ones (suboxides, the peroxy O-rich cell) are relaxed with CHGNet
once and then read back from their CIF on every later run.
Step 2 (``run``): for every chosen O site without a record, run GPAW (``s2s.simulate.gpaw_ref``)
and write data/reference/gpaw/<id>__site<k>.json atomically.  Existing records are skipped;
failures go to <id>__site<k>.failed.json (retried with --retry-failed).

    nice -n 15 python scripts/build_reference.py structures
    nohup nice -n 15 python scripts/build_reference.py run > ref.log 2>&1 &
    python scripts/build_reference.py list          # the site plan and what is done

The logic lives in :mod:`s2s.simulate.reference` (structures: :mod:`s2s.structures.reference`).
"""

from __future__ import annotations

import argparse
import sys

from s2s.resources import home, resolve
from s2s.simulate.gpaw_ref import GPAWSettings
from s2s.simulate.reference import (
    compare_pw,
    make_plan,
    reference_structures,
    regrid,
    run_sites,
    site_state,
    sites_to_run,
    summary_table,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["structures", "run", "list", "summary", "regrid", "compare-pw"])
    ap.add_argument("--only", default="", help="comma-separated structure ids (default: all, in order)")
    ap.add_argument("--max-sites", type=int, default=0, help="stop after N new sites (0 = no limit)")
    ap.add_argument(
        "--sites", default="", help="run only these, e.g. keatite:12,seifertite:4 (structure id:site index; order kept)"
    )
    ap.add_argument("--retry-failed", action="store_true")
    ap.add_argument("--mpi-procs", type=int, default=2)
    ap.add_argument("--workdir", default=None, help="scratch folder for GPAW files (default: /tmp)")
    ap.add_argument(
        "--fwhm", type=float, default=GPAWSettings().fwhm, help="regrid: Gaussian FWHM (eV) for grid_spectrum"
    )
    ap.add_argument(
        "--mode",
        choices=["lcao", "pw"],
        default="lcao",
        help="pw: plane-wave check (ecut --ecut, complex wave functions, automatic band "
        "count); records go to data/reference/gpaw_pw unless --out-subdir is given",
    )
    ap.add_argument("--ecut", type=float, default=400.0, help="pw cutoff (eV)")
    ap.add_argument("--out-subdir", default="", help="records folder under data/reference")
    args = ap.parse_args(argv)
    ref = resolve("reference", must_exist=False)
    gpaw_dir = ref / (args.out_subdir or ("gpaw" if args.mode == "lcao" else "gpaw_pw"))
    structures = reference_structures()

    ids = [x for x in args.only.split(",") if x] or list(structures)
    unknown = [x for x in ids if x not in structures]
    if unknown:
        ap.error(f"unknown structure id(s) {unknown}; known: {list(structures)}")
    if args.mode == "pw":
        settings = GPAWSettings(
            mode="pw",
            ecut=args.ecut,
            nbands="auto",
            converge_bands="auto",
            force_complex_dtype=True,
            mpi_procs=args.mpi_procs,
        )
    else:
        settings = GPAWSettings(mpi_procs=args.mpi_procs)

    plan = make_plan(ids, ref, structures)
    if args.sites:
        want = [(x.split(":")[0], int(x.split(":")[1])) for x in args.sites.split(",") if x]
        by_key = {(sid, k): (sid, s, k, mult) for sid, s, k, mult in plan}
        missing = [w for w in want if w not in by_key]
        if missing:
            ap.error(f"--sites: not in the plan: {missing}")
        plan = [by_key[w] for w in want]
    if args.step == "structures":
        for sid in ids:
            path, h = ref / "structures" / f"{sid}.cif", home()
            print(sid, path.relative_to(h) if h is not None and path.is_relative_to(h) else path)
        print(f"{len(plan)} O sites planned")
        return 0
    if args.step == "list":
        done = 0
        for sid, s, k, mult in plan:
            state = site_state(gpaw_dir, sid, k)
            done += state == "done"
            print(f"{sid:24s} site {k:3d} x{mult:<3d} {s.composition.reduced_formula:8s} {state}")
        print(f"{done}/{len(plan)} sites done")
        return 0

    if args.step == "summary":
        print(summary_table(plan, gpaw_dir))
        return 0
    if args.step == "compare-pw":
        print(compare_pw(plan, ref))
        return 0
    if args.step == "regrid":
        n = regrid(plan, gpaw_dir, args.fwhm)
        print(f"re-broadened {n} records (Gaussian FWHM {args.fwhm} eV)")
        return 0

    todo = sites_to_run(plan, gpaw_dir, args.retry_failed, args.max_sites)
    print(f"{len(plan)} sites planned, {len(todo)} to run", flush=True)
    run_sites(todo, gpaw_dir, settings, workdir=args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
