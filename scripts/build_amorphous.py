#!/usr/bin/env python
"""Build the amorphous SiO_x test set: MD cells, glass checks, O K-edge spectra.

Steps (each resumable; ``all`` runs them in order)::

    python scripts/build_amorphous.py md       # melt-quench cells -> data/amorphous/n72/cells + manifest
    python scripts/build_amorphous.py checks   # numbers -> data/amorphous/n72/checks.json,
                                               # figures -> figures/amorphous_checks_n72.png, amorphous_md_n72.png
    python scripts/build_amorphous.py spectra  # Z+1 xTB (the training simulator) of the selected O sites,
                                               # cache data/amorphous/cache/xtb -> data/amorphous/amorphous.h5,
                                               # spectra.json, figures/results.json key "amorphous"
    python scripts/build_amorphous.py spectra --no-compute   # only re-collect what is cached
    python scripts/build_amorphous.py all
    python scripts/build_amorphous.py network --x 0.5 1.0 2.0 --n-cells 3   # network family cells
                                               # -> data/amorphous/network/n72 (pass rate in its manifest)
    python scripts/build_amorphous.py checks --family network
    python scripts/build_amorphous.py spectra --family network --max-sites 4 --x 0.5

``--atoms N`` (default 72) sets the cell size (``0``: the paper's ~200-240-atom cells in
data/amorphous/cells).  Long steps: run under ``nice -n 15`` with OMP_NUM_THREADS=1 (one
process).  The protocol is :class:`s2s.amorphous.md.MeltQuench`; its fields can be set on
the command line (``--melt-ps 20 --quench-ps 100 ...``) and are stored with every cell, so
a changed protocol never silently mixes with stored cells.  See docs/amorphous.md.

The tables of docs/amorphous.md (its ``<!-- NAME:begin/end -->`` blocks) are printed by the
``network``, ``checks`` and ``spectra`` steps; ``--table-dir runs/amorphous_tables`` also writes each
to ``NAME.md``.  No script edits the docs.  The library behind the spectra step (stores per x, the
probe-gated selection rounds, the deadline, spectra.json and results entries) is
:mod:`s2s.amorphous.testset`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.amorphous import testset as ts  # noqa: E402
from s2s.amorphous.md import (  # noqa: E402
    COMPOSITIONS,
    PAPER_N_SITES,
    MeltQuench,
    cells_needed,
    compositions_for_size,
)
from s2s.amorphous.spectra import SOURCE  # noqa: E402
from s2s.amorphous.store import atomic_write_text, load_cells, read_manifest  # noqa: E402

DEFAULT_OUT = ROOT / "data" / "amorphous"
DEFAULT_FIGURE = ROOT / "figures" / "amorphous_checks.png"
DEFAULT_CACHE = ROOT / "data" / "amorphous" / "cache" / "xtb"
DEFAULT_RESULTS = ROOT / "figures" / "results.json"
DATASET_NAME = "amorphous.h5"
NETWORK_OUT = ROOT / "data" / "amorphous" / "network"


def network_paths(args: argparse.Namespace) -> dict:
    """Defaults of ``--family network``: store <out>/network/n<atoms> with cell tag net<atoms>, its own
    xTB cache and results file (never figures/results.json).  Sets them on ``args``; returns them."""
    if getattr(args, "family", "tersoff") != "network":
        return {"out": args.out, "cache": args.cache, "results": args.results}
    if args.out == DEFAULT_OUT:
        args.out = NETWORK_OUT
    # random mixture / dispersed random bonding: their own stores and cell names (the spectra cache is keyed by name)
    short = {"uniform": "", "clustered": "mix", "dispersed": "disp"}[getattr(args, "rule", "uniform")]
    if not args.store_name:
        args.store_name = f"n{args.atoms}" + (f"_{short}" if short else "")
    if not args.tag:
        args.tag = f"net{short}{args.atoms}"
    if args.cache == DEFAULT_CACHE:
        args.cache = args.out / "cache" / "xtb"
    if args.results == DEFAULT_RESULTS:
        args.results = args.out / "results.json"
    if args.figure == DEFAULT_FIGURE:
        args.figure = args.out / f"checks_{args.store_name}.png"
    return {"out": args.out, "cache": args.cache, "results": args.results}


def spectra_settings(args: argparse.Namespace):
    """Simulator settings of the spectra step: ``XtbSettings()`` (the training set's) unless ``--settings``."""
    from s2s.simulate.xtb import XtbSettings

    if args.settings:
        return XtbSettings.from_dict(json.loads(Path(args.settings).read_text()))
    if getattr(args, "family", "tersoff") == "network":
        from s2s.amorphous.network import spectra_settings as network_settings

        return network_settings()
    return XtbSettings()


def _protocol_args(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(MeltQuench):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(f.default),
            default=f.default,
            help=f"MeltQuench.{f.name} (default {f.default})",
        )


def _protocol(args: argparse.Namespace) -> MeltQuench:
    return MeltQuench(**{f.name: getattr(args, f.name) for f in dataclasses.fields(MeltQuench)})


def store_dir(args: argparse.Namespace) -> Path:
    """Cell store: ``<out>/<store-name>``, default ``<out>/n<atoms>`` (``<out>`` itself for the paper's sizes)."""
    if getattr(args, "store_name", None):
        return args.out / args.store_name
    return args.out / f"n{args.atoms}" if args.atoms else args.out


def cell_tag(args: argparse.Namespace) -> str:
    """Tag in the cell names: ``--tag``, default ``n<atoms>`` (none for the paper's sizes)."""
    if getattr(args, "tag", None):
        return args.tag
    return f"n{args.atoms}" if args.atoms else ""


def stores_by_x(args: argparse.Namespace, xs) -> dict[Path, list[float]]:
    """Which store serves which composition: ``--store-for X=NAME`` (relative to --out), else :func:`store_dir`."""
    chosen: dict[float, Path] = {}
    for item in args.store_for or []:
        try:
            x, name = item.split("=", 1)
            chosen[float(x)] = args.out / name
        except ValueError as err:
            raise SystemExit(f"--store-for: expected X=STORE (e.g. 0.5=n72_melt3500), got {item!r}") from err
    out: dict[Path, list[float]] = {}
    for x in xs:
        out.setdefault(chosen.get(float(x), store_dir(args)), []).append(float(x))
    return out


def cell_plan(args: argparse.Namespace) -> tuple[dict[float, tuple[int, int]], dict[float, int]]:
    """(n_Si, n_O) and number of cells per composition for ``--atoms`` / ``--n-cells``.

    Default number of cells: enough for the paper's spectrum count at that x,
    plus ``--spare-cells``.
    """
    xs = args.x or list(COMPOSITIONS)
    counts = compositions_for_size(args.atoms, xs)
    if args.n_cells is not None:
        n_cells = {x: args.n_cells for x in xs}
    else:
        n_cells = {x: cells_needed(counts[x][1], PAPER_N_SITES[x]) + args.spare_cells for x in xs}
    return counts, n_cells


def step_md(args: argparse.Namespace) -> None:
    from s2s.amorphous.build import build_cells

    counts, n_cells = cell_plan(args)
    t0 = time.perf_counter()
    manifest = build_cells(
        store_dir(args),
        _protocol(args),
        xs=list(counts),
        n_cells=n_cells,
        base_seed=args.base_seed,
        counts=counts,
        force=args.force,
        progress=not args.quiet,
        tag=cell_tag(args),
        n_atoms=args.atoms or None,
    )
    walls = [c["md_wall_s"] for c in manifest["cells"] if c.get("md_wall_s")]
    print(
        f"md: {len(manifest['cells'])} cells in {store_dir(args)} ({time.perf_counter() - t0:.0f} s this run; "
        f"MD wall per cell {min(walls):.0f}-{max(walls):.0f} s)"
    )
    print("O sites per x:", manifest["n_o_sites"])


def step_network(args: argparse.Namespace) -> None:
    """Network-family cells: SW a-Si parent, O into Si-Si bonds, CHGNet relaxation, checks (resumable)."""
    from s2s.amorphous import network as nw

    xs = args.x or list(COMPOSITIONS)
    counts = compositions_for_size(args.atoms or 72, xs)
    protocol = nw.NetworkProtocol(
        **{f.name: getattr(args, "net_" + f.name) for f in dataclasses.fields(nw.NetworkProtocol)}
    )
    passing, usable = None, None
    if args.probe_cells:  # only cells whose SCF probe converges count towards --until-paper
        from s2s.amorphous.probe import run_probes

        settings = spectra_settings(args)

        def usable(name, structure) -> bool:
            rec = run_probes(
                {name: structure},
                store_dir(args) / "probes.json",
                settings,
                mode=args.probe_mode,
                max_iter=args.probe_max_iter,
                names=[name],
                log=print,
            )[name]
            return bool(rec["ok"])

    if args.until_paper:  # passing cells for the paper's count at each x (+ --spare-cells); --n-cells caps the tries
        passing = {x: cells_needed(counts[x][1], PAPER_N_SITES[x]) + args.spare_cells for x in xs}
    t0 = time.perf_counter()
    man = nw.build_network_store(
        store_dir(args),
        xs,
        args.n_cells or (12 if args.until_paper else 2),
        counts,
        protocol,
        rule=args.rule,
        base_seed=args.network_seed,
        tag=cell_tag(args),
        progress=not args.quiet,
        passing=passing,
        usable=usable,
        first_cell=args.first_cell,
    )
    print(
        f"network: {len(man['cells'])} cells pass, {len(man['dropped'])} dropped, in {store_dir(args)} "
        f"({time.perf_counter() - t0:.0f} s this run)"
    )
    for x, r in man["pass_rate"].items():
        print(
            f"x={x}: {r['passed']}/{r['built']} pass ({r['pass_rate']:.2f}), {r['cpu_s_per_cell']:.0f} s CPU per cell"
        )
    for d in man["dropped"]:
        print(f"dropped {d['name']}: {d['reason']}")
    retried = [e for e in man["cells"] if e.get("insert_try")]
    if retried:
        print("passed on a later insertion: " + ", ".join(f"{e['name']} (try {e['insert_try']})" for e in retried))
    _emit_table(args, f"network_cells_{store_dir(args).name}", nw.cells_markdown(man))


def step_checks(args: argparse.Namespace) -> None:
    from s2s.amorphous.checks import checks_markdown, checks_table
    from s2s.plots.amorphous import plot_checks, plot_md_traces

    store = store_dir(args)
    figure = args.figure
    if args.family == "network":
        pass
    elif figure == DEFAULT_FIGURE and args.store_name:
        figure = figure.with_name(f"amorphous_checks_{args.store_name}.png")
    elif figure == DEFAULT_FIGURE and args.atoms:
        figure = figure.with_name(f"amorphous_checks_n{args.atoms}.png")
    cells = load_cells(store)
    table = checks_table(cells)
    atomic_write_text(store / "checks.json", json.dumps(table, indent=1) + "\n")
    plot_checks(cells, figure, table, family=args.family)
    traces = None
    if not args.store_name and args.family != "network":  # traces of variant stores: only in their cell files
        traces = figure.with_name(figure.stem.replace("checks", "md") + figure.suffix)
        plot_md_traces(cells, traces)
    print(f"checks: {store / 'checks.json'}, figures {figure}, {traces}")
    for key, v in table.items():
        print(
            f"x={key}: {v['n_cells']} cells, rho {v['density_mean']:.3f}+-{v['density_std']:.3f} g/cm3, "
            f"Si-O {v['si_o_mean']:.3f} A, Si CN4 {v['si_cn_hist'].get(4, 0):.2f}, "
            f"Si-O-Si mode {v['si_o_si_mode']:.0f} mean {v['si_o_si_mean']:.1f}, "
            f"O-Si-O {v['o_si_o_mean']:.1f}, Si-Si frac {v['si_si_bond_fraction']:.3f} "
            f"(RBM {v['si_si_bond_fraction_rbm']:.3f})"
        )
    block = f"checks_network_{store.name}" if args.family == "network" else f"checks_{store.name}"
    _emit_table(args, block, checks_markdown(table))
    if args.family == "network" and (store / "probes.json").is_file():  # probe verdict against Si(Si4) units
        from s2s.amorphous.probe import probe_by_si0, probe_by_si0_markdown, read_probes

        entries = read_manifest(store)["cells"]
        by_si0 = probe_by_si0(
            read_probes(store / "probes.json"),
            {e["name"]: c for e, c in zip(entries, cells)},
            {e["name"]: e["x"] for e in entries},
        )
        print("probe passed/probed by Si(Si4) units per cell:")
        _emit_table(args, f"probe_si0_{store.name}", probe_by_si0_markdown(by_si0))


def _deadline(stop_at: str | None, now=None) -> float | None:
    """--stop-at as epoch seconds (:func:`s2s.amorphous.testset.deadline_utc`); a bad value stops the script."""
    try:
        return ts.deadline_utc(stop_at, now)
    except ValueError as err:
        raise SystemExit(f"--stop-at: {err}") from None


def _emit_table(args: argparse.Namespace, name: str, text: str) -> None:
    """Print the table of the docs' block ``name`` (and write DIR/<name>.md with --table-dir); edit no doc."""
    print(f"\n<!-- {name} --> table:\n{text}\n")
    if args.table_dir:
        path = Path(args.table_dir) / f"{name}.md"
        atomic_write_text(path, text + "\n")
        print(f"{name} table -> {path}")
    if args.doc:
        print(f"--doc {args.doc}: not edited (no script edits docs); the {name} table is printed above")


def _spectra_options(args: argparse.Namespace) -> ts.SpectraOptions:
    return ts.SpectraOptions(
        probe_mode=args.probe_mode,
        probe_max_iter=args.probe_max_iter,
        probe_all=args.probe_all,
        keep_small_gap=not args.drop_small_gap,
        rounds=args.rounds,
        retry_failed=args.retry_failed,
        probe=args.probe,
        extra_cells=args.extra_cells,
        compute=not args.no_compute,
        deadline=_deadline(args.stop_at),
        progress=not args.quiet,
    )


def step_spectra(args: argparse.Namespace) -> None:
    """Z+1 spectra of the selected O sites (round-robin, cached, resumable) -> amorphous.h5 + results."""
    try:
        from s2s.simulate.xtb import XtbSettings  # noqa: F401 (checks the simulator is installed)
    except ImportError as err:
        raise SystemExit(f"spectra: the simulator (s2s.simulate) is not available: {err}") from err
    from s2s.amorphous import spectra as sp
    from s2s.dataset import Dataset
    from s2s.studies.results import update_results

    # exactly the training simulator unless a settings file says otherwise (tests)
    settings = spectra_settings(args)
    if args.min_gap is not None:  # applied on load only (not part of the cache key)
        settings = settings.with_(min_gap=args.min_gap)
    store = store_dir(args)
    manifest = read_manifest(store)
    targets = ts.spectra_targets(manifest, args.x, args.max_sites)
    opts = _spectra_options(args)
    try:  # one store (one MD protocol) per composition; cells of different stores never share an x
        groups = ts.store_groups(stores_by_x(args, list(targets)), store, manifest, targets)
        sel = ts.select_and_compute(groups, settings, args.cache, opts, log=print)
    except ValueError as err:
        raise SystemExit(f"spectra: {err}") from None
    by_name = {e["name"]: e for g in groups for e in g.entries}
    structures = {e["name"]: c for g in groups for e, c in zip(g.entries, g.cells)}
    protocol_by_x = {
        f"{x:.2f}": {"store": g.path.name, "protocol": g.manifest["protocol"]} for g in groups for x in g.targets
    }
    x_of = {n: by_name[n]["x"] for n in sel.selected}
    order = sp.round_robin(sel.selected, x_of, {n: by_name[n]["cell_id"] for n in sel.selected})
    simulator = f"xtb-{settings.method.lower()}-{settings.variant}"
    source = SOURCE
    if args.family == "network":
        from s2s.amorphous.network import SOURCE as source
    records, summary = sp.collect(
        order,
        structures,
        by_name,
        settings,
        args.cache,
        simulator,
        keep_small_gap=opts.keep_small_gap,
        extra_cells=sorted(sel.extra),
        compositions=sorted(targets),
        source=source,
    )
    run = ts.SpectraRun(sel, summary, by_name, settings, simulator, manifest, protocol_by_x, opts)
    used = {r.structure_id for r in records}
    shown = str(store.relative_to(ROOT) if store.is_relative_to(ROOT) else store)
    ds = Dataset.from_records(
        records,
        structures={n: structures[n] for n in sorted(used)},
        meta=run.dataset_meta(shown),
    )
    path = ds.save(args.out / DATASET_NAME)
    full = run.spectra_json(args.out / DATASET_NAME, store)
    atomic_write_text(args.out / "spectra.json", json.dumps(full, indent=1) + "\n")
    _emit_table(args, *ts.status_block(full, args.family, args.atoms, args.store_for or ()))
    if args.results is not None:
        update_results(
            "amorphous_network" if args.family == "network" else "amorphous", run.results_entry(), args.results
        )
    print(
        f"spectra: {len(records)} records -> {path}; per x {summary['n_sites']}; "
        f"pending {summary['n_pending']}; failed {summary['n_failed']}"
    )


def _flag(text: str) -> bool:
    """true/false (also yes/no, 1/0) for the boolean protocol fields; anything else is an error."""
    v = str(text).strip().lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _cell_args(parser: argparse.ArgumentParser) -> None:
    """The step, the glass family and where its cells are (store, composition, size, seeds)."""
    parser.add_argument("step", choices=("md", "checks", "spectra", "all", "network"))
    parser.add_argument(
        "--family",
        choices=("tersoff", "network"),
        default="tersoff",
        help="glass family: 'tersoff' (melt-quench SiO_x, the paper's) or 'network' (O in the "
        "bonds of an a-Si network, CHGNet-relaxed; store data/amorphous/network/n<atoms>, "
        "own cache and results.json). The step 'network' builds its cells",
    )
    parser.add_argument(
        "--rule",
        choices=("uniform", "clustered", "dispersed"),
        default="uniform",
        help="network: O insertion rule, uniform = random bonding, clustered = random mixture, dispersed = "
        "random bonding without Si(Si4) units (store n<atoms>_disp)",
    )
    parser.add_argument("--network-seed", type=int, default=20270101, help="network: base seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="store directory (default data/amorphous)")
    parser.add_argument("--figure", type=Path, default=DEFAULT_FIGURE)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="xTB per-site cache (default cache/xtb)")
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help="JSON of XtbSettings (default: XtbSettings(), exactly the crystal build's simulator)",
    )
    parser.add_argument("--x", type=float, nargs="*", help=f"compositions (default {list(COMPOSITIONS)})")
    parser.add_argument(
        "--atoms",
        type=int,
        default=72,
        help="atoms per cell (about; n_O/n_Si = x exactly); 0 = the paper's ~200-240-atom "
        "cells. Cells go to <out>/n<atoms> (<out> itself for 0). Default 72",
    )
    parser.add_argument(
        "--n-cells",
        type=int,
        default=None,
        help="independent cells per composition (default: enough for the paper's spectrum "
        "count at each x, plus --spare-cells)",
    )
    parser.add_argument(
        "--spare-cells", type=int, default=1, help="extra cells per composition beyond the paper's count (default 1)"
    )
    parser.add_argument(
        "--until-paper",
        action="store_true",
        help="network: build cells at each x until enough of them pass for the paper's spectrum count "
        "(plus --spare-cells passing cells); --n-cells is then the cap on cells tried per x (default 12)",
    )
    parser.add_argument(
        "--first-cell",
        type=int,
        default=0,
        metavar="K",
        help="network: start at cell id K (a second builder on the same x, further along the seed order)",
    )
    parser.add_argument(
        "--probe-cells",
        action="store_true",
        help="network --until-paper: probe each passing cell's SCF (the spectra step's probe, --probe-mode, "
        "--probe-max-iter; recorded in the store's probes.json) and count only the cells that converge",
    )
    parser.add_argument("--base-seed", type=int, default=20260101)


def _spectra_args(parser: argparse.ArgumentParser) -> None:
    """The spectra step: site selection, the probe gate, the simulator run and where results and tables go."""
    parser.add_argument(
        "--min-gap",
        type=float,
        default=None,
        help="eV; sites whose HOMO-LUMO gap is smaller get meta gap_ok=False (or are left out "
        "with --drop-small-gap); default: XtbSettings().min_gap, the crystals' threshold",
    )
    parser.add_argument(
        "--drop-small-gap",
        action="store_true",
        help="spectra: leave sites with gap < min-gap out of amorphous.h5, as the crystal build "
        "does (default: keep them, flagged)",
    )
    parser.add_argument(
        "--max-sites",
        type=int,
        default=None,
        help="spectra: at most this many sites per composition (default: the paper's counts)",
    )
    parser.add_argument(
        "--probe",
        type=int,
        default=1,
        help="spectra: a cell whose SCF failed on >= 2/3 of >= PROBE of its sites is postponed "
        "until every other site is done (default 1)",
    )
    parser.add_argument(
        "--extra-cells",
        type=int,
        default=1,
        help="spectra: for compositions whose selected sites have SCF failures, also every O of "
        "the next N (spare) cells; flagged meta extra_cell (default 1; 0 = paper selection only)",
    )
    parser.add_argument(
        "--store-name",
        default=None,
        help="cell store directory under --out (default n<atoms>); one store holds one protocol",
    )
    parser.add_argument(
        "--tag",
        default=None,
        help="md: tag in the cell names (default n<atoms>); give variant-protocol stores their own "
        "tag so cell names (and cache folders) stay unique",
    )
    parser.add_argument(
        "--store-for",
        action="append",
        default=None,
        metavar="X=STORE",
        help="spectra: take composition X from store STORE (under --out) instead of the default "
        "store; repeatable. Each composition comes from exactly one store (one protocol)",
    )
    parser.add_argument(
        "--probe-mode",
        choices=("z+1", "ground", "none"),
        default="z+1",
        help="spectra: per-cell SCF probe that decides whether a cell is used: the Z+1 SCF of "
        "its first O ('z+1', default) or the ground-state SCF ('ground') with at most "
        "--probe-max-iter cycles; 'none' = old selection (paper cells + --extra-cells)",
    )
    parser.add_argument("--probe-max-iter", type=int, default=60, help="spectra: SCF cycles of the probe (default 60)")
    parser.add_argument(
        "--probe-all",
        action="store_true",
        help="spectra: probe every cell of the requested compositions (default: only as many "
        "as the target needs, in cell-id order)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="spectra: select-compute rounds (failed sites are replaced in the next round)",
    )
    parser.add_argument("--stop-at", default=None, help="spectra: start no new site after the next HH:MM UTC")
    parser.add_argument("--retry-failed", action="store_true", help="spectra: recompute cached failures")
    parser.add_argument(
        "--table-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="network / checks / spectra: also write each printed markdown table (the docs' <!-- NAME --> "
        "blocks) to DIR/NAME.md, e.g. runs/amorphous_tables; no doc is edited",
    )
    parser.add_argument(
        "--doc",
        default=None,
        help="kept for old command lines: no doc is edited any more; the tables are printed (see --table-dir)",
    )
    parser.add_argument(
        "--no-compute",
        action="store_true",
        help="spectra: only collect what is in the cache (the rest is reported as pending)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="results JSON that gets the key 'amorphous' (default figures/results.json)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _cell_args(parser)
    _spectra_args(parser)
    parser.add_argument("--force", action="store_true", help="recompute cells stored with another protocol")
    parser.add_argument("--quiet", action="store_true")
    _protocol_args(parser)
    from s2s.amorphous.network import NetworkProtocol

    for f in dataclasses.fields(NetworkProtocol):
        parser.add_argument(
            f"--net-{f.name.replace('_', '-')}",
            type=_flag if isinstance(f.default, bool) else type(f.default),
            default=f.default,
            help=f"network: NetworkProtocol.{f.name} (default {f.default})",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.step == "network":
        args.family = "network"
    network_paths(args)
    steps = ("md", "checks", "spectra") if args.step == "all" else (args.step,)
    for step in steps:
        {"md": step_md, "checks": step_checks, "spectra": step_spectra, "network": step_network}[step](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
