"""Plant known one-line bugs, one at a time, in a copy of the package and check that the tests guarding
against them fail (issue 34).  The working tree is never edited.

    python scripts/plant_bugs.py            # every bug: the clean copy must pass, each planted copy must fail
    python scripts/plant_bugs.py pairing    # only these bugs (names below)
    python scripts/plant_bugs.py --list

For each bug: ``s2s/`` is copied to a temporary folder beside links to the rest of the checkout, the bug's
text replacements are applied to the copy, and the bug's tests run there (one thread); the bug is caught
when every one of those tests fails.
A bug whose replacement no longer matches the source is reported as ``stale`` (update the entry).
Exit status 0 when the clean copy passes and every planted bug is caught.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    name: str
    path: str  # file in the checkout
    edits: tuple[tuple[str, str], ...]  # (exact text, which must occur once; its replacement)
    tests: tuple[str, ...]  # pytest node ids that must fail
    what: str


BUGS = (
    Bug(
        "pairing",
        "s2s/studies/evaluate.py",
        (
            (
                "spectra = np.stack([np.asarray(r.spectrum, dtype=np.float64) for r in records])",
                "spectra = np.stack([np.asarray(r.spectrum, dtype=np.float64) for r in records[1:] + records[:1]])",
            ),
        ),
        (
            "tests/test_missed_bugs.py::test_generation_inputs_pair_each_spectrum_with_its_own_sites_atom_count",
            "tests/test_science_smoke.py::test_the_shipped_models_land_inside_the_bounds",
        ),
        "each test spectrum paired with the next site's target (generation_inputs)",
    ),
    Bug(
        "interval-90",
        "s2s/studies/bootstrap.py",
        (("a = (1.0 - settings.level) / 2.0", "a = 1.0 - settings.level"),),
        (
            "tests/test_missed_bugs.py::test_interval_level_is_exact_on_a_uniform_distribution",
            "tests/test_missed_bugs.py::test_default_interval_holds_the_labelled_share_of_the_resampled_means",
            "tests/test_bootstrap.py::test_cluster_interval_covers_where_a_site_level_one_does_not",
        ),
        "a 90 % interval labelled 95 % (the quantiles' tail)",
    ),
    Bug(
        "default-level-90",
        "s2s/studies/bootstrap.py",
        (
            ("level: float = 0.95", "level: float = 0.90"),
            ('f"{settings.level:.0%} percentile interval', 'f"95% percentile interval'),
        ),
        ("tests/test_missed_bugs.py::test_default_interval_holds_the_labelled_share_of_the_resampled_means",),
        "the default level 0.90, described as 95 %",
    ),
    Bug(
        "steepest-is-max",
        "s2s/predict/prepare.py",
        (("return float(e[int(np.argmax(np.gradient(y, e)))])", "return float(e[int(np.argmax(y))])"),),
        ("tests/test_missed_bugs.py::test_steepest_rise_finds_the_edge_not_a_bigger_peak_after_it",),
        "steepest_rise returns the intensity maximum, not the steepest slope",
    ),
    Bug(
        "descending-axis",
        "s2s/predict/prepare.py",
        (("e, y = e[::-1].copy(), y[::-1].copy()", "e = e[::-1].copy()"),),
        ("tests/test_missed_bugs.py::test_a_descending_energy_axis_equals_its_ascending_twin",),
        "a descending energy axis whose intensities are not reversed (prepare)",
    ),
    Bug(
        "no-optimiser-step",
        "s2s/forward/train.py",
        (("    opt.step()\n    run.step += 1", "    run.step += 1"),),
        ("tests/test_missed_bugs.py::test_forward_training_cuts_the_validation_error_well_below_its_first_evaluation",),
        "the forward model's optimiser step removed",
    ),
    Bug(
        "ddim-noise-level",
        "s2s/model/diffusion.py",
        (("d = torch.sqrt((sg_s**2 - c**2).clamp(min=0.0))", "d = torch.sqrt((sg_t**2 - c**2).clamp(min=0.0))"),),
        ("tests/test_science_smoke.py::test_the_shipped_models_land_inside_the_bounds",),
        "the DDIM step keeps the noise level of t instead of s (a broken sampler)",
    ),
    Bug(
        "ddim-skips-last-steps",
        "s2s/model/diffusion.py",
        (("    return [int(v) for v in grid]", "    return [int(v) for v in grid][: len(grid) // 2 + 1]"),),
        ("tests/test_science_smoke.py::test_the_shipped_models_land_inside_the_bounds",),
        "the strided time grid stops halfway (a broken sampler)",
    ),
    Bug(
        "budget-logged-early",
        "s2s/model/train.py",
        (('history[-1]["cpu_seconds"] = round(cpu_check, 3)', "pass"),),
        ("tests/test_recipe.py::test_a_cpu_budget_stop_logs_the_cpu_time_it_was_judged_at",),
        "the CPU-budget stop keeps the row logged before the check (the flaky 0.299 < 0.3)",
    ),
    Bug(
        "self-condition-ignored",
        "s2s/model/egnn.py",
        (("sc_x, sc_h = self_cond if self_cond is not None else", "sc_x, sc_h = self_cond if False else"),),
        ("tests/test_recipe.py::test_encoder_and_self_conditioning_keep_the_network_equivariant",),
        "the self-conditioning estimate ignored (the idle 'assert sc_x is not None')",
    ),
    Bug(
        "keating-skipped",
        "s2s/amorphous/network.py",
        (('if p.prerelax == "keating":', "if False:"),),
        ("tests/test_amorphous_network.py::test_store_build_resumes_and_reports_the_pass_rate",),
        "the Keating pre-relaxation skipped (the idle 'cpu_s_per_cell >= 0')",
    ),
)


def shadow_checkout(tmp: Path) -> Path:
    """``tmp`` with a copy of s2s/ (no bytecode) and links to every other entry of the checkout."""
    for entry in ROOT.iterdir():
        if entry.name in ("s2s", ".git", ".venv"):
            continue
        (tmp / entry.name).symlink_to(entry)
    shutil.copytree(ROOT / "s2s", tmp / "s2s", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp


def run_tests(where: Path, tests: tuple[str, ...], stop_first: bool) -> tuple[bool, list[str], str]:
    """(passed, the ``FAILED`` lines, last lines of output) of ``pytest tests`` run in ``where``."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "S2S_HOME": str(where),
        "MPLBACKEND": "Agg",
    }
    env.pop("PYTHONPATH", None)
    p = subprocess.run(
        [sys.executable, "-m", "pytest", *(["-x"] if stop_first else []), "-q", "-rf", "-p", "no:cacheprovider"]
        + list(tests),
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
    )
    out = (p.stdout + p.stderr).strip().splitlines()
    return p.returncode == 0, [ln for ln in out if ln.startswith("FAILED")], "\n".join(out[-3:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="bugs to plant (default: all)")
    ap.add_argument("--list", action="store_true", help="list the bugs and exit")
    a = ap.parse_args(argv)
    if a.list:
        for b in BUGS:
            print(f"{b.name:24s} {b.path}: {b.what}")
        return 0
    bugs = [b for b in BUGS if not a.names or b.name in a.names]
    unknown = set(a.names) - {b.name for b in BUGS}
    if unknown:
        print(f"unknown bug(s): {', '.join(sorted(unknown))}; --list names them", file=sys.stderr)
        return 2
    ok = True
    with tempfile.TemporaryDirectory(prefix="s2s-plant-") as tmp:
        where = shadow_checkout(Path(tmp))
        all_tests = tuple(dict.fromkeys(t for b in bugs for t in b.tests))
        t0 = time.perf_counter()
        passed, _, tail = run_tests(where, all_tests, stop_first=True)
        print(f"{'clean copy':24s} {'passes' if passed else 'FAILS'} ({time.perf_counter() - t0:.0f} s)")
        if not passed:
            print(tail)
            return 1
        for b in bugs:
            target = where / b.path
            original = target.read_text()
            planted = original
            stale = [old for old, _ in b.edits if original.count(old) != 1]
            if stale:
                print(f"{b.name:24s} stale: {stale[0]!r} does not occur exactly once in {b.path}")
                ok = False
                continue
            for old, new in b.edits:
                planted = planted.replace(old, new)
            target.write_text(planted)
            try:
                t0 = time.perf_counter()
                passed, failed, tail = run_tests(where, b.tests, stop_first=False)
            finally:
                target.write_text(original)
            # every guarding test fails (a parametrised id counts once however many of its cases fail)
            caught = not passed and all(any(f"FAILED {t}" in ln for ln in failed) for t in b.tests)
            ok &= caught
            print(f"{b.name:24s} {'caught' if caught else 'NOT CAUGHT'} ({time.perf_counter() - t0:.0f} s): {b.what}")
            for ln in failed:
                print(f"    {ln[:150]}")
            if not caught:
                print("  " + tail.replace("\n", "\n  "))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
