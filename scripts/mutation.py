"""Mutation testing of the core science modules: how many small code changes do the fast tests catch?

    nice -n 19 python scripts/mutation.py                    # every module below, one at a time
    nice -n 19 python scripts/mutation.py bootstrap align    # only these
    python scripts/mutation.py --list                        # modules, their functions and tests
    python scripts/mutation.py bootstrap --show 'line 118'   # print the mutants whose description matches
    nice -n 8 python scripts/mutation.py alignment --resume           # go on where a stopped run ended
    nice -n 8 python scripts/mutation.py alignment --only-survivors   # after new tests: re-run the survivors
    nice -n 8 python scripts/mutation.py alignment --only-survivors --match 'line 169'   # ... only these

Every mutant's outcome is kept in runs/mutation/<module>.json (``outcomes``, in mutant order, with a hash of
the module's source).  ``--resume`` runs only the mutants without a recorded outcome; ``--only-survivors``
also re-runs the recorded survivors (a killed mutant stays killed: tests are only added).  Both need the
module's source unchanged since the recorded run (else the mutants differ and the run starts afresh).
``--match TEXT ...`` limits a run to the mutants whose description contains one of the TEXTs; the others keep their
recorded outcome (or count as not run).
``--recorded-only`` (with ``--only-survivors``) skips the mutants never run.  ``--tests T ...`` replaces the
module's test selection for this run: with ``--only-survivors --recorded-only`` and T the new test files, a
re-check is exact (a recorded survivor passed all the old tests, so it is killed by the full selection iff it
is killed by T) and costs only T.

A small AST mutator (the same operators as mutmut's core ones): arithmetic (+ -, * /, // /, ** *, % /),
comparisons (< <=, > >=, == !=, in / not in, is / is not), and/or, ``not x`` -> ``x``, ``-x`` -> ``x``,
numbers n -> n + 1, True <-> False, augmented assignments (+= -=, *= /=).  Strings (messages, docstrings) are
not mutated; with ``functions`` set, only the code of those functions (and methods of those classes) is.

Each mutant is the module's source (``ast.unparse`` of the mutated tree) written into a private copy of
the package; the module's tests run against it in a forked child of a process that has already imported
the heavy dependencies (numpy, scipy, torch, pymatgen, pytest), with ``-x``: a mutant is *killed* when a
test fails or errors or runs past the time limit, *survived* when all pass.  The unmutated source runs
first and must pass.  Per module: killed / total (the score), and every survivor by line and change, in
runs/mutation/<module>.json.  Not a CI step (CPU heavy); the figures go to docs/testing.md.

Why not mutmut: mutmut 3 runs a project's whole test suite to map tests to functions before the first
mutant and mutates via trampolines in a copied tree; selecting a few fast test files per module, which is
what keeps this affordable on two cores, is simpler to state here.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()  # empty: the whole module
    priority: bool = False  # the >= 90 % group of issue 34


TARGETS = (
    Target("alignment", "s2s/geometry/align.py", ("tests/test_align_edges.py", "tests/test_align.py"), priority=True),
    Target(
        "metrics",
        "s2s/geometry/metrics.py",
        # the tests in test_evaluate.py / test_recipe.py that also reach metrics.py import the model stack
        # (each forked child imports s2s afresh): too slow per mutant on a shared 2-core machine
        ("tests/test_metrics_edges.py", "tests/test_metrics.py"),
        priority=True,
    ),
    # the shells were part of the metrics module until the evaluation split: same tests, same group
    Target("shells", "s2s/geometry/shells.py", ("tests/test_metrics_edges.py", "tests/test_metrics.py"), priority=True),
    Target(
        "bootstrap",
        "s2s/studies/bootstrap.py",
        (
            "tests/test_missed_bugs.py::test_interval_level_is_exact_on_a_uniform_distribution",
            "tests/test_missed_bugs.py::test_default_interval_holds_the_labelled_share_of_the_resampled_means",
            "tests/test_bootstrap.py",
        ),
        priority=True,
    ),
    Target(
        "preparation",
        "s2s/predict/prepare.py",
        (
            "tests/test_prepare_edges.py",
            "tests/test_missed_bugs.py::test_steepest_rise_finds_the_edge_not_a_bigger_peak_after_it",
            "tests/test_missed_bugs.py::test_a_descending_energy_axis_equals_its_ascending_twin",
            "tests/test_predict.py::test_onset_alignment_recovers_the_grid_spectrum",
            "tests/test_predict.py::test_prepare_renormalize_false_keeps_a_recorded_grid_spectrum",
            "tests/test_predict.py::test_prepare_refuses_bad_spectra",
            # the tests of test_manifold_and_foreign_spectra.py that reach prepare.py (its UMAP test takes 90 s)
            "tests/test_manifold_and_foreign_spectra.py::test_measured_text_spectrum_is_onset_aligned",
            "tests/test_manifold_and_foreign_spectra.py::test_training_onset_tracks_a_shift",
            "tests/test_manifold_and_foreign_spectra.py::test_broaden_keeps_area_and_widens",
        ),
        functions=(
            "training_onset",
            "subtract_background",
            "smooth",
            "steepest_rise",
            "broaden",
            "check_shape",
            "prepare",
            "_checked_axis",
            "_clean",
            "_checked_onset",
            "_energy_shift",
            "_on_grid",
        ),
        priority=True,
    ),
    Target(
        "onset",
        "s2s/spectrum.py",
        (
            "tests/test_onset_edges.py",
            "tests/test_spectrum.py",
            "tests/test_missed_bugs.py::test_a_descending_energy_axis_equals_its_ascending_twin",
        ),
        functions=("onset_shift", "normalize", "spectrum_on_grid"),
        priority=True,
    ),
    Target(
        "samplers",
        "s2s/model/diffusion.py",
        ("tests/test_sampler_contract.py", "tests/test_fast_sampler.py", "tests/test_model.py"),
        functions=(
            "timesteps",
            "sample_ddim",
            "sample",
            "_decode_z0",
            "transition_variance",
            "clip_x0",
            "clip_h0",
            "_batch",
            "_start_state",
            "_steps",
            "_times",
            "_estimate_x0",
        ),
    ),
    Target(
        "evaluation_inputs",
        "s2s/studies/evaluate.py",
        (
            "tests/test_evaluate_edges.py",
            "tests/test_missed_bugs.py::test_generation_inputs_pair_each_spectrum_with_its_own_sites_atom_count",
            "tests/test_evaluate.py",
        ),
    ),
    Target(
        "forward_training",
        "s2s/forward/train.py",
        (
            "tests/test_forward_train_contract.py",
            "tests/test_missed_bugs.py::test_forward_training_cuts_the_validation_error_well_below_its_first_evaluation",
            "tests/test_forward.py",
        ),
    ),
)

_BIN = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Pow: ast.Mult,
    ast.Mod: ast.FloorDiv,
}
_CMP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SYM = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Pow: "**",
    ast.Mod: "%",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.And: "and",
    ast.Or: "or",
}


def _skip_ranges(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings, __all__."""
    skip: set[int] = set()

    def mark(n: ast.AST | None) -> None:
        if n is not None:
            skip.update(id(x) for x in ast.walk(n))

    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                mark(body[0])
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            mark(n.returns)
            for a in n.args.args + n.args.kwonlyargs + n.args.posonlyargs:
                mark(a.annotation)
        if isinstance(n, ast.AnnAssign):
            mark(n.annotation)
        if isinstance(n, ast.JoinedStr):
            mark(n)
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets):
            mark(n)
    return skip


def _scope_nodes(tree: ast.Module, functions: tuple[str, ...]) -> set[int] | None:
    if not functions:
        return None
    keep: set[int] = set()
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in functions:
            keep.update(id(x) for x in ast.walk(n))
    return keep


def mutants(source: str, functions: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """[(description, mutated source)] of ``source``: one change each (module docstring)."""
    tree = ast.parse(source)
    skip = _skip_ranges(tree)
    scope = _scope_nodes(tree, functions)
    nodes = [n for n in ast.walk(tree) if id(n) not in skip and (scope is None or id(n) in scope)]
    index = {id(n): i for i, n in enumerate(ast.walk(tree))}
    plans = []  # (node index in walk order, kind, detail)
    for n in nodes:
        i = index[id(n)]
        if isinstance(n, ast.BinOp) and type(n.op) in _BIN:
            plans.append((i, "bin", None))
        elif isinstance(n, ast.AugAssign) and type(n.op) in _BIN:
            plans.append((i, "aug", None))
        elif isinstance(n, ast.Compare):
            for j, op in enumerate(n.ops):
                if type(op) in _CMP:
                    plans.append((i, "cmp", j))
        elif isinstance(n, ast.BoolOp):
            plans.append((i, "bool", None))
        elif isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.Not, ast.USub)):
            plans.append((i, "unary", None))
        elif isinstance(n, ast.Constant) and type(n.value) in (int, float, bool):
            plans.append((i, "const", None))
    out = []
    for i, kind, j in plans:
        t = copy.deepcopy(tree)
        walk = list(ast.walk(t))
        n = walk[i]
        line = getattr(n, "lineno", 0)
        col = getattr(n, "col_offset", 0)
        if kind in ("bin", "aug"):
            new = _BIN[type(n.op)]
            desc = f"{_SYM[type(n.op)]} -> {_SYM[new]}"
            n.op = new()
        elif kind == "cmp":
            new = _CMP[type(n.ops[j])]
            desc = f"{_SYM[type(n.ops[j])]} -> {_SYM[new]}"
            n.ops[j] = new()
        elif kind == "bool":
            new = ast.Or if isinstance(n.op, ast.And) else ast.And
            desc = f"{_SYM[type(n.op)]} -> {_SYM[new]}"
            n.op = new()
        elif kind == "unary":
            desc = ("not x" if isinstance(n.op, ast.Not) else "-x") + " -> x"
            _replace(walk, n, n.operand)
        else:
            v = n.value
            new_v = (not v) if isinstance(v, bool) else v + 1
            desc = f"{v!r} -> {new_v!r}"
            n.value = new_v
        seg = ast.get_source_segment(source, walk_original(tree, i)) or ""
        seg = " ".join(seg.split())[:60]
        out.append((f"line {line}:{col}: {desc}   [{seg}]", ast.unparse(t)))
    return out


def walk_original(tree: ast.Module, i: int) -> ast.AST:
    return list(ast.walk(tree))[i]


def _replace(walk: list[ast.AST], old: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``old`` is in its parent."""
    for p in walk:
        for field, value in ast.iter_fields(p):
            if value is old:
                setattr(p, field, new)
                return
            if isinstance(value, list):
                for k, v in enumerate(value):
                    if v is old:
                        value[k] = new
                        return


def run_child(where: Path, module_file: Path, source: str, tests: tuple[str, ...], timeout: float) -> str:
    """'passed', 'failed' or 'timeout' of the tests with ``source`` as the module (a forked child)."""
    module_file.write_text(source)
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(where)
            sys.path.insert(0, str(where))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            signal.alarm(int(timeout))
            import pytest

            rc = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests])
            os._exit(0 if rc == 0 else 1)
        except BaseException:  # noqa: BLE001 - any error in the child is a failed run
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "timeout" if os.WTERMSIG(status) == signal.SIGALRM else "failed"
    return "passed" if os.WEXITSTATUS(status) == 0 else "failed"


def shadow(tmp: Path) -> Path:
    for entry in ROOT.iterdir():
        if entry.name in ("s2s", ".git", ".venv", "runs"):
            continue
        (tmp / entry.name).symlink_to(entry)
    shutil.copytree(ROOT / "s2s", tmp / "s2s", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp


def _legacy_key(desc: str) -> str:
    """'line 169:12: 0 -> 1   [0]' -> 'line 169: 0 -> 1   [0]' (the form of runs before columns were named)."""
    head, _, rest = desc.partition(": ")
    return head.split(":")[0] + ": " + rest


def previous_outcomes(path: Path, sha: str, ms: list[tuple[str, str]]) -> list[str | None]:
    """The recorded outcome of each mutant ('survived', 'failed', 'timeout') or None, from ``path``."""
    none: list[str | None] = [None] * len(ms)
    if not path.exists():
        return none
    rec = json.loads(path.read_text())
    if "outcomes" in rec:
        if rec.get("source_sha") != sha or [d for d, _ in rec["outcomes"]] != [d for d, _ in ms]:
            print(f"  {path.name}: recorded for another version of the module; starting afresh", flush=True)
            return none
        return [o for _, o in rec["outcomes"]]
    # a record of the older form (counts and survivors only): the first `done` mutants ran, in this order;
    # one whose description is among the survivors counts as a survivor (a duplicate description: all of them)
    if rec.get("mutants") != len(ms):
        print(f"  {path.name}: older record of another version of the module; starting afresh", flush=True)
        return none
    surv = {_legacy_key(d) if d.count(":") > 1 and d.split(":")[1].isdigit() else d for d in rec["survived"]}
    return [
        ("survived" if _legacy_key(d) in surv else "failed") if k < rec["done"] else None for k, (d, _) in enumerate(ms)
    ]


def run_target(
    t: Target,
    out_dir: Path,
    show: str | None = None,
    resume: bool = False,
    only_survivors: bool = False,
    match: list[str] | None = None,
    recorded_only: bool = False,
    tests: tuple[str, ...] | None = None,
) -> dict:
    source = (ROOT / t.path).read_text()
    sha = hashlib.sha256(source.encode()).hexdigest()[:16]
    ms = mutants(source, t.functions)
    if not ms:
        raise SystemExit(f"{t.name}: no mutants in {t.path} {list(t.functions)}")
    if show is not None:
        for desc, src in ms:
            if show in desc:
                print(desc)
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"{t.name}.json"
    outcomes: list[str | None] = [None] * len(ms)
    if resume or only_survivors or match is not None:
        outcomes = previous_outcomes(out_file, sha, ms)
    todo = [
        k
        for k, (desc, _) in enumerate(ms)
        if ((outcomes[k] is None and not recorded_only) or (only_survivors and outcomes[k] == "survived"))
        and (match is None or any(m in desc for m in match))
    ]
    if not resume and not only_survivors and match is None:
        todo = list(range(len(ms)))

    def record(seconds: float) -> dict:
        done = [o for o in outcomes if o is not None]
        killed = sum(o != "survived" for o in done)
        res = {  # written after every mutant, so that an interrupted run leaves its partial figures
            "module": t.path,
            "functions": list(t.functions),
            "tests": list(t.tests),
            "source_sha": sha,
            "mutants": len(ms),
            "done": len(done),
            "killed": killed,
            "timeouts": sum(o == "timeout" for o in done),
            "score": round(killed / max(1, len(done)), 4),
            "survived": [d for (d, _), o in zip(ms, outcomes) if o == "survived"],
            "seconds": round(seconds, 1),
            "outcomes": [[d, o] for (d, _), o in zip(ms, outcomes)],
        }
        out_file.write_text(json.dumps(res, indent=1) + "\n")
        return res

    with tempfile.TemporaryDirectory(prefix="s2s-mut-") as tmp:
        where = shadow(Path(tmp))
        module_file = where / t.path
        t0 = time.perf_counter()
        run_tests = tuple(tests) if tests else t.tests
        base = run_child(where, module_file, ast.unparse(ast.parse(source)), run_tests, timeout=900)
        base_s = time.perf_counter() - t0
        if base != "passed":
            raise SystemExit(f"{t.name}: the unmutated module does not pass its tests ({base})")
        timeout = min(max(60.0, 4 * base_s), 900.0)
        print(
            f"{t.name}: {len(ms)} mutants of {t.path}, {len(todo)} to run; tests {' '.join(run_tests)}"
            f" ({base_s:.0f} s unmutated)",
            flush=True,
        )
        res = record(time.perf_counter() - t0)
        for n, k in enumerate(todo, 1):
            desc, src = ms[k]
            r = run_child(where, module_file, src, run_tests, timeout)
            outcomes[k] = "survived" if r == "passed" else r
            print(f"  [{n}/{len(todo)}] (#{k + 1}) {outcomes[k]}: {desc}", flush=True)
            res = record(time.perf_counter() - t0)
    print(
        f"{t.name}: killed {res['killed']} of {res['done']} run ({100 * res['score']:.1f} %),"
        f" {len(ms)} mutants in all, {res['seconds']:.0f} s"
    )
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="modules to mutate (default: all)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--show", default=None, help="print the mutants whose description contains this text")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "mutation")
    ap.add_argument("--resume", action="store_true", help="run only the mutants without a recorded outcome")
    ap.add_argument("--only-survivors", action="store_true", help="re-run the recorded survivors (and unrun ones)")
    ap.add_argument(
        "--match", nargs="+", default=None, help="run only the mutants whose description contains one of these texts"
    )
    ap.add_argument("--recorded-only", action="store_true", help="with --only-survivors: skip mutants never run")
    ap.add_argument("--tests", nargs="+", default=None, help="test selection for this run (default: the module's)")
    a = ap.parse_args(argv)
    if a.list:
        for t in TARGETS:
            print(f"{t.name:18s} {t.path} {list(t.functions) or '(whole module)'}; tests: {' '.join(t.tests)}")
        return 0
    names = {t.name for t in TARGETS}
    if set(a.names) - names:
        print(f"unknown: {sorted(set(a.names) - names)}; --list names them", file=sys.stderr)
        return 2
    os.environ.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
    sys.dont_write_bytecode = True
    # the heavy imports once, in the parent; the children fork from here (s2s itself is never imported here)
    import matplotlib  # noqa: F401
    import numpy  # noqa: F401
    import pymatgen.core  # noqa: F401
    import pytest  # noqa: F401
    import scipy.interpolate  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import scipy.optimize  # noqa: F401
    import scipy.spatial  # noqa: F401
    import scipy.spatial.distance  # noqa: F401
    import scipy.special  # noqa: F401
    import scipy.stats  # noqa: F401  (tests/helpers.py: special_ortho_group; slow to import in every child)
    import torch

    torch.set_num_threads(1)
    results = []
    chosen = [next(t for t in TARGETS if t.name == n) for n in a.names] if a.names else list(TARGETS)
    for t in chosen:  # in the order given
        if a.show is None:
            os.environ["S2S_HOME"] = str(ROOT)
        results.append(run_target(t, a.out, a.show, a.resume, a.only_survivors, a.match, a.recorded_only, a.tests))
    if a.show is None:
        print(f"\n{'module':18s} {'killed':>7s} {'run':>5s} {'of':>5s} {'score':>7s}")
        for t, r in zip(chosen, results):
            print(f"{t.name:18s} {r['killed']:7d} {r['done']:5d} {r['mutants']:5d} {100 * r['score']:6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
