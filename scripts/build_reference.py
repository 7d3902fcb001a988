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

Step 3 (``sites``): GPAW spectra of the *dataset's* sites (data/s2s_open_v1.h5) into the compact store
data/reference_sites/ (:mod:`s2s.simulate.reference_sites`): test, validation and training sites (SiO2
and suboxides first) interleaved so that they share the CPU 1:1:3 (``--order strict``: every test site,
then validation, then training); within each group the structures take turns, those with the fewest sites
computed first (``--within size``: smallest supercells first).  Resumable; failures
are recorded by name in failures.json; ``--commit-every N`` commits the store to git every N sites.  To stop
it, ``kill <pid>`` (SIGTERM): the pool workers and their GPAW runs stop with it, the sites already stored stay,
and the sites that were running are computed again by the next run.

    nohup python scripts/build_reference.py sites --hours 2.5 --commit-every 10 > logs/ref_sites.log 2>&1 &
    python scripts/build_reference.py sites --dask local --workers 8      # scale out (Dask)
    python scripts/build_reference.py coverage [--write-results]          # sites per split with a spectrum

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
    steps = ["structures", "run", "list", "summary", "regrid", "compare-pw", "sites", "coverage"]
    ap.add_argument("step", choices=steps)
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
    g = ap.add_argument_group("sites (dataset sites into data/reference_sites)")
    g.add_argument("--groups", default="test,validation,train", help="which splits, in this order")
    g.add_argument(
        "--order",
        choices=["interleaved", "strict"],
        default="interleaved",
        help="interleaved (default): test, validation and O/Si<=2 training sites share the CPU 1:1:3; "
        "strict: every test site, then validation, then training",
    )
    g.add_argument(
        "--within",
        choices=["coverage", "size"],
        default="coverage",
        help="order within a split: coverage (default): the structures take turns, those with the fewest "
        "sites computed first (one site of every structure before a second of any); size: smallest cells first",
    )
    g.add_argument("--hours", type=float, default=0.0, help="start no new site after this many hours (0 = no limit)")
    g.add_argument("--workers", type=int, default=1, help="sites in parallel (one core each); 1 = in this process")
    g.add_argument("--dask", default="", help="'local' or a scheduler address: run the sites on Dask workers")
    g.add_argument("--commit-every", type=int, default=0, help="git commit the store every N finished sites")
    c = ap.add_argument_group("coverage (how many dataset sites have a reference spectrum)")
    c.add_argument("--write-results", action="store_true", help="keep it in figures/results.json (reference_data)")
    c.add_argument("--json", action="store_true", help="print it as JSON")
    args = ap.parse_args(argv)
    if args.step == "sites":
        return run_dataset_sites(args)
    if args.step == "coverage":
        return dataset_coverage(args)
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


def dataset_coverage(args: argparse.Namespace) -> int:
    """Step ``coverage``: how many of the dataset's sites per split have a reference spectrum at the build's
    settings (:func:`s2s.simulate.reference_build.coverage`); ``--write-results`` keeps it in
    figures/results.json under ``reference_data`` (this step is that key's one writer)."""
    import json

    from s2s.dataset import Dataset
    from s2s.simulate.reference_build import coverage
    from s2s.simulate.reference_sites import ReferenceStore
    from s2s.studies.results import update_results

    cov = coverage(Dataset.load(resolve("data")), ReferenceStore(resolve("reference_sites", must_exist=False)))
    print(f"{'split':10s} {'sites':>6s} {'with ref':>9s} {'structures':>11s} {'with ref':>9s}")
    for name, row in cov["by_split"].items():
        print(
            f"{name:10s} {row['sites']:6d} {row['with_reference']:9d} {row['structures']:11d} "
            f"{row['structures_with_reference']:9d}"
        )
    print(
        f"{cov['n_reference_sites']} sites with a reference spectrum at {cov['calc_key']}, "
        f"{cov['cpu_hours']} CPU h; failures: {', '.join(cov['failures']) or 'none'}"
    )
    if args.write_results:
        update_results("reference_data", cov, resolve("results", must_exist=False))
        print("figures/results.json: reference_data written")
    elif args.json:
        print(json.dumps(cov, indent=1))
    return 0


def run_dataset_sites(args: argparse.Namespace) -> int:
    """Step ``sites``: the resumable build of the dataset's reference spectra (see the module docstring)."""
    import subprocess
    import time
    from concurrent.futures import ProcessPoolExecutor
    from contextlib import ExitStack

    from s2s.dataset import Dataset
    from s2s.simulate.build import dask_executor, stop_workers_on_sigterm
    from s2s.simulate.reference_build import build, dataset_plan
    from s2s.simulate.reference_sites import BUILD_SETTINGS, ReferenceStore

    ds = Dataset.load(resolve("data"))
    store = ReferenceStore(resolve("reference_sites", must_exist=False))
    key = BUILD_SETTINGS.calc_key()
    done = {k for k, s in store.sites().items() if s.calc_key == key}
    plan = dataset_plan(ds, [x for x in args.groups.split(",") if x], order=args.order, within=args.within, done=done)
    if args.only:  # these structures only, in the plan's order
        only = {x for x in args.only.split(",") if x}
        unknown = only - {p.structure_id for p in plan}
        if unknown:
            raise SystemExit(f"--only: not in the plan of --groups {args.groups}: {', '.join(sorted(unknown))}")
        plan = [p for p in plan if p.structure_id in only]
    deadline = time.time() + 3600 * args.hours if args.hours else None
    root = home()

    def commit(report, last: bool = False) -> None:
        due = report.computed and (last or report.computed % args.commit_every == 0)
        if args.commit_every and due and root is not None:
            subprocess.run(["git", "add", str(store.root)], cwd=root, check=False)
            subprocess.run(
                [
                    "git",
                    "commit",
                    "-q",
                    "-m",
                    f"data/reference_sites: {len(store.sites())} dataset sites with GPAW spectra ({report.summary()})",
                    "--",
                    str(store.root),
                ],
                cwd=root,
                check=False,
            )

    with ExitStack() as stack:
        stack.enter_context(stop_workers_on_sigterm())  # a stopped build leaves no GPAW run behind
        if args.dask:
            ex = stack.enter_context(dask_executor(args.dask, args.workers, nice=0))
        elif args.workers > 1:
            ex = stack.enter_context(ProcessPoolExecutor(args.workers))
        else:
            ex = None
        report = build(
            plan,
            ds.structure,
            store,
            BUILD_SETTINGS,
            executor=ex,
            max_sites=args.max_sites,
            deadline=deadline,
            retry_failed=args.retry_failed,
            workdir=args.workdir,
            on_result=commit,
        )
    print(report.summary())
    commit(report, last=True)  # the last partial batch
    return 0


if __name__ == "__main__":
    sys.exit(main())
