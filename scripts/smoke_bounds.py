"""Measure the scientific smoke test's configuration over several seeds and write its bounds.

    python scripts/smoke_bounds.py                 # 10 seeds -> tests/smoke_bounds.json
    python scripts/smoke_bounds.py --seeds 5 --out /tmp/b.json

The smoke test (tests/test_science_smoke.py, :mod:`s2s.studies.smoke`) runs the shipped models on a
few sites of every test structure.  This script runs the same configuration with seeds 0..n-1 (the
test uses seed 0) and derives, for each number, two-sided bounds:

* generation (sampled; the seed stands in for any change of the random stream, e.g. another machine's
  floating point): [min(full, lowest seed) - 3 sd, max(full, highest seed) + 3 sd], sd over the seeds;
* forward model and template matching (deterministic): [min(full, smoke) - 3 se, max(full, smoke) + 3 se],
  se the standard error of the mean over the smoke sites;

where ``full`` is the measured full-size number of the comparable configuration (figures/results.json:
``test_generation.single_of_k``, DDIM 50 steps, one draw; ``template_matching``; the forward model's
test cosine of docs/forward_model.md).  Fractions are clipped to [0, 1], RMSD and errors at 0.
Rerun after a deliberate change of the model, the data or the smoke configuration, and commit the file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: The forward model's full-size test cosine (docs/forward_model.md, "Test split"; benchmarks/forward_model.py).
FORWARD_TEST_COSINE = 0.9893
FRACTIONS = {"species_accuracy", "validity", "cosine"}


def _bound(key: str, lo: float, hi: float, spread: float) -> dict:
    a, b = lo - 3 * spread, hi + 3 * spread
    a = max(a, 0.0)
    if key in FRACTIONS:
        b = min(b, 1.0)
    return {"min": round(float(a), 4), "max": round(float(b), 4)}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from s2s.dataset import Dataset
    from s2s.files import file_sha256
    from s2s.forward.model import ForwardModel, cosine
    from s2s.model.train import load_model
    from s2s.resources import resolve
    from s2s.retrieval.template import template_match
    from s2s.studies import smoke
    from s2s.studies.evaluate import evaluate_generation
    from s2s.studies.results import read_results

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..n-1 (default 10)")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "smoke_bounds.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)

    settings = smoke.SmokeSettings()
    ds = Dataset.load(resolve("data"))
    model = load_model(resolve("model_xtb"))  # the xTB path (notebook 03's xTB rows give the bounds)
    fm = ForwardModel.load(resolve("forward"))
    records = smoke.smoke_sites(ds, settings.per_structure)
    train = list(ds.train)
    results = read_results(resolve("results"))
    full_gen = results["test_generation"]["single_of_k"]
    tm_full = results["template_matching"]
    full = {
        "generation": {k: full_gen[k] for k in smoke.GENERATION_KEYS},
        "forward": {"cosine": FORWARD_TEST_COSINE},
        "template": {
            "rmsd_shell1": tm_full["template_rmsd_shell1"],
            "species_accuracy": tm_full["template_species_accuracy"],
            "validity": tm_full["template_validity"],
        },
    }

    per_seed = []
    for seed in range(a.seeds):
        g = smoke.generation_numbers(model, records, settings, seed=seed)
        per_seed.append(g)
        print(f"seed {seed}: {g}", flush=True)
    forward = smoke.forward_numbers(fm, records)
    template = smoke.template_numbers(train, records)
    # per-site values for the standard errors of the deterministic parts
    cos_sites = cosine(fm.predict([r.environment for r in records]), np.stack([r.spectrum for r in records]))
    tm = template_match(
        np.stack([r.spectrum for r in records]),
        [r.structure_id for r in records],
        np.stack([r.spectrum for r in train]),
        [r.structure_id for r in train],
        [r.environment for r in train],
    )
    rows = evaluate_generation([r.environment for r in records], tm.environments, methods=("paper",))
    site_key = {"rmsd_shell1": "rmsd_shell1", "species_accuracy": "species_match", "validity": "valid"}
    tm_sites = {k: np.array([float(r["paper"][site_key[k]]) for r in rows]) for k in smoke.TEMPLATE_KEYS}

    def se(v: np.ndarray) -> float:
        v = v[np.isfinite(v)]
        return float(np.std(v, ddof=1) / np.sqrt(v.size))

    spread = {"generation": {}, "forward": {}, "template": {}}
    bounds = {"generation": {}, "forward": {}, "template": {}}
    for k in smoke.GENERATION_KEYS:
        v = np.array([s[k] for s in per_seed])
        sd = float(np.std(v, ddof=1))
        spread["generation"][k] = {
            "mean": round(float(v.mean()), 4),
            "sd": round(sd, 4),
            "min": float(v.min()),
            "max": float(v.max()),
        }
        f = full["generation"][k]
        bounds["generation"][k] = _bound(k, min(f, v.min()), max(f, v.max()), sd)
    s = se(cos_sites)
    spread["forward"]["cosine"] = {"value": forward["cosine"], "se_over_sites": round(s, 4)}
    f = full["forward"]["cosine"]
    bounds["forward"]["cosine"] = _bound("cosine", min(f, forward["cosine"]), max(f, forward["cosine"]), s)
    for k in smoke.TEMPLATE_KEYS:
        s = se(tm_sites[k])
        spread["template"][k] = {"value": template[k], "se_over_sites": round(s, 4)}
        f = full["template"][k]
        bounds["template"][k] = _bound(k, min(f, template[k]), max(f, template[k]), s)

    doc = {
        "about": (
            "Bounds of the scientific smoke test (tests/test_science_smoke.py): the shipped models on "
            f"{len(records)} test sites (up to {settings.per_structure} of each of the "
            f"{len({r.structure_id for r in records})} test structures), DDIM {settings.n_steps} steps, seed "
            f"{settings.seed}. Written by scripts/smoke_bounds.py ({a.seeds} seeds); see its docstring for the rule."
        ),
        "rule": {
            "generation": "[min(full, lowest seed) - 3 sd, max(full, highest seed) + 3 sd], sd over the seeds",
            "forward, template": "[min(full, smoke) - 3 se, max(full, smoke) + 3 se], se over the smoke sites",
            "clipped": "fractions to [0, 1], RMSD and errors at 0",
        },
        "settings": settings.to_dict(),
        "n_sites": len(records),
        "model_sha256": file_sha256(resolve("model_xtb")),
        "forward_model_sha256": file_sha256(resolve("forward")),
        "full_size": full,
        "full_size_source": {
            "generation": "figures/results.json test_generation.single_of_k (172 test sites, DDIM 50, one draw)",
            "generation_headline": {k: results["test_generation"][k] for k in smoke.GENERATION_KEYS},
            "forward": "docs/forward_model.md, test split, forward_v1 mean cosine",
            "template": "figures/results.json template_matching (172 test sites)",
        },
        "seeds": list(range(a.seeds)),
        "per_seed": per_seed,
        "spread": spread,
        "smoke_seed0": {"generation": per_seed[0], "forward": forward, "template": template},
        "bounds": bounds,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    violations = smoke.check_bounds(doc["smoke_seed0"], bounds)
    if violations:  # cannot happen by construction; a guard against a broken rule
        raise SystemExit("seed 0 outside its own bounds: " + "; ".join(violations))
    a.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(bounds, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
