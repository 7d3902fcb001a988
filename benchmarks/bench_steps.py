"""Accuracy vs number of sampling steps, ancestral (strided) and DDIM samplers, on the test split.

    python benchmarks/bench_steps.py                                  # the shipped model, full test split
    python benchmarks/bench_steps.py --limit 8 --n-samples 2          # quick look
    python benchmarks/bench_steps.py --write-results                  # + figures/results.json predict.steps_curve

For every (sampler, steps) point: ``--n-samples`` environments per test spectrum with the
target's atom count (the paper's protocol), the same seed for every point; metrics from
:func:`s2s.geometry.metrics.evaluate_pair` (``--method`` alignment, default the paper's) averaged by
:func:`s2s.geometry.metrics.summarize` over all generated environments: 1st/2nd-shell RMSD (Å),
CN error (%), species accuracy; and the wall time of generation per structure (s, batched
``--batch-size`` graphs of similar atom count at a time (:func:`s2s.model.sample.generate`, ``buckets=True``),
``torch.set_num_threads(--threads)``).

Writes (with ``--write-results``) ``predict.steps_curve`` = {steps: metrics of the default
sampler}, ``predict.steps_curve_by_sampler`` = {sampler: {steps: metrics}} and the chosen
``predict.default_sampler`` / ``default_steps``; other ``predict`` keys are kept.
The choice rule (:func:`s2s.studies.sampling_steps.choose_default`): the cheapest point whose 1st-shell RMSD is
within
``--rmsd-tol`` (relative) of the best point's, whose species accuracy is within ``--acc-tol``
and whose 1st-shell CN error is within ``--cn-tol`` percentage points of the best.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from s2s.model.diffusion import SAMPLERS
from s2s.resources import default_path
from s2s.studies.sampling_steps import choose_default, default_rule, format_curve, predict_entry, steps_curve

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=default_path("model_xtb"))
    ap.add_argument("--data", type=Path, default=default_path("data"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None, help="first LIMIT records of the split (default all)")
    ap.add_argument(
        "--stride",
        type=int,
        default=1,
        help="every STRIDE-th record of the split (a subset spread over all structures; default 1)",
    )
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 250, 100, 50, 20])
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    ap.add_argument("--n-samples", type=int, default=4, help="environments per test spectrum (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", default="paper", choices=["paper", "best"], help="alignment for the RMSDs")
    ap.add_argument("--rmsd-tol", type=float, default=0.10)
    ap.add_argument("--acc-tol", type=float, default=0.03)
    ap.add_argument("--cn-tol", type=float, default=5.0, help="CN1 error tolerance, percentage points")
    ap.add_argument(
        "--min-steps", type=int, default=50, help="smallest step count the default may have (see choose_default)"
    )
    ap.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="re-use the curve of an earlier run's --json file instead of sampling",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the full curve to this JSON file")
    ap.add_argument("--write-results", action="store_true", help="merge into figures/results.json under 'predict'")
    ap.add_argument("--results", type=Path, default=ROOT / "figures/results.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from s2s.dataset import Dataset
    from s2s.files import file_sha256
    from s2s.model.train import load_model

    if a.from_json is not None:
        saved = json.loads(a.from_json.read_text())
        info = saved["info"]
        curve = {s: {int(n): m for n, m in c.items()} for s, c in saved["curve"].items()}
        print(
            f"curve from {a.from_json} ({info['model']}, {info['n_spectra']} {info['split']} spectra x "
            f"{info['n_samples']})"
        )
    else:
        model = load_model(a.model)
        ds = Dataset.load(a.data)
        recs = list(ds.split(a.split))[:: a.stride][: a.limit]
        print(
            f"model {a.model} (T = {model.cfg.diffusion.T}), {len(recs)} {a.split} spectra x {a.n_samples} samples, "
            f"alignment {a.method}, threads {a.threads}"
        )
        curve = steps_curve(model, recs, a.samplers, a.steps, a.n_samples, a.seed, a.batch_size, a.method)
        info = {
            "model": str(a.model.relative_to(ROOT) if a.model.is_relative_to(ROOT) else a.model),
            "model_sha256": file_sha256(a.model),
            "data": str(a.data.relative_to(ROOT) if a.data.is_relative_to(ROOT) else a.data),
            "split": a.split,
            "stride": a.stride,
            "limit": a.limit,
            "n_spectra": len(recs),
            "n_samples": a.n_samples,
            "seed": a.seed,
            "alignment": a.method,
            "batch_size": a.batch_size,
            "threads": a.threads,
            "natoms": "target",
        }
    for line in format_curve(curve):
        print(line, flush=True)
    sampler, steps = choose_default(curve, a.rmsd_tol, a.acc_tol, a.cn_tol, a.min_steps)
    print(
        f"chosen default: {sampler}, {steps} steps (cheapest point with >= {a.min_steps} steps whose RMSD1 is within "
        f"{a.rmsd_tol:.0%}, species accuracy within {a.acc_tol} and CN1 error within {a.cn_tol} points of the paper's "
        f"protocol, ancestral at the most steps)"
    )
    by_sampler = {s: {str(n): m for n, m in c.items()} for s, c in curve.items()}
    if a.json:
        from s2s.files import write_json

        write_json(a.json, {"info": info, "curve": by_sampler, "default": [sampler, steps]})
    if a.write_results:
        from s2s.studies.results import read_results, update_results

        rule = default_rule(a.min_steps, a.rmsd_tol, a.acc_tol, a.cn_tol)
        pred = predict_entry(read_results(a.results).get("predict", {}), curve, sampler, steps, info, rule)
        update_results("predict", pred, a.results)
        print(f"wrote predict.steps_curve to {a.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
