"""Forward model (environment -> spectrum) on the test split, beside two baselines.

    python benchmarks/forward_model.py                       # the table for models/forward_v1
    python benchmarks/forward_model.py --model runs/fwd/model.pt --json out.json
    python benchmarks/forward_model.py --compare --cpu-seconds 60   # the two designs at equal CPU time (validation)
    python benchmarks/forward_model.py --fidelity reference --model models/forward_ref_v1/model.pt \
        models/forward_v1/model.pt                            # first-principles (GPAW) spectra: both models

``--fidelity reference``: the first-principles spectra of the reference store (``--reference-store``, default
data/reference_sites) as truth, for the sites that have one (the baselines then search those training sites).

Table (test split, structures never seen in training): mean cosine similarity and mean MSE
(unit-area intensity^2 over the 200-point grid) of the predicted to the true spectrum, for

* the forward model (``--model``);
* the training mean spectrum (the same prediction for every site);
* the spectrum of the nearest training environment by SOAP distance (Euclidean distance of
  L2-normalised SOAP vectors, template.py's settings; i.e. the largest SOAP cosine similarity).

``--compare`` trains both designs of :mod:`s2s.forward.model` (SOAP + MLP, the distance network) from
scratch on the training structures outside the validation split, each for the same process CPU
time (``--cpu-seconds``, SOAP feature computation included for the SOAP design), and prints their
validation MSE and cosine.  No file of the repository is written (``--json`` writes where asked).
Scores and baselines: :mod:`s2s.forward.baselines`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.forward.baselines import baselines, format_table, score  # noqa: E402
from s2s.forward.model import ForwardModel, validation_mask  # noqa: E402
from s2s.forward.train import train_forward  # noqa: E402
from s2s.resources import default_path  # noqa: E402


def print_table(rows: dict[str, dict[str, float]], title: str) -> None:
    for line in format_table(rows, title):
        print(line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_path("data"))
    ap.add_argument("--model", type=Path, nargs="+", default=[ROOT / "models" / "forward_v1" / "model.pt"])
    ap.add_argument("--fidelity", default="xtb", choices=("xtb", "reference"), help="which spectra are the truth")
    ap.add_argument("--reference-store", type=Path, default=None, help="with --fidelity reference (default shipped)")
    ap.add_argument(
        "--compare", action="store_true", help="train both designs at equal CPU time and compare on validation"
    )
    ap.add_argument("--cpu-seconds", type=float, default=60.0, help="CPU budget per design for --compare (default 60)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from s2s.simulate.reference_sites import load_fidelity

    ds = load_fidelity(a.data, a.fidelity, a.reference_store)
    train, test = ds.train, ds.test
    out: dict = {}
    if a.compare:
        from s2s.cli.forward import default_config

        ids = [r.structure_id for r in train]
        val = validation_mask(ids)
        envs, spectra = train.environments(), train.spectra()
        v_envs = [e for e, m in zip(envs, val) if m]
        rows = {}
        for kind in ("soap", "distance"):
            cfg = default_config(kind)
            t0 = time.process_time()
            res = train_forward(cfg, envs, spectra, ids, None, cpu_seconds=a.cpu_seconds, progress=False)
            total = time.process_time() - t0
            pred = res.model.predict(v_envs)
            rows[f"{kind} ({res.step} steps, {total:.0f} s CPU)"] = {
                **score(pred, spectra[val]),
                "steps": res.step,
                "cpu_seconds": round(total, 1),
                "best_step": res.best_step,
            }
        tr_envs = [e for e, m in zip(envs, val) if not m]
        for name, pred in baselines(tr_envs, spectra[~val], v_envs).items():
            rows[name] = score(pred, spectra[val])
        print_table(
            rows,
            f"Validation split ({int(val.sum())} sites of {len(set(np.array(ids)[val]))} training structures), "
            f"designs at ~{a.cpu_seconds:.0f} s CPU of training each",
        )
        out["compare"] = rows
    else:
        t_envs, t_spec = test.environments(), test.spectra()
        rows = {}
        for path in a.model:
            fm = ForwardModel.load(path)
            t0 = time.process_time()
            pred = fm.predict(t_envs)
            dt = time.process_time() - t0
            rows[f"forward model ({fm.cfg.kind}, {Path(path).parent.name})"] = score(pred, t_spec)
        for name, p in baselines(train.environments(), train.spectra(), t_envs).items():
            rows[name] = score(p, t_spec)
        print_table(
            rows,
            f"Test split, {a.fidelity} spectra: {len(test)} sites of {len(test.structure_ids())} structures; "
            f"reference: {len(train)} training sites",
        )
        print(f"forward model: {dt / len(t_envs) * 1e3:.2f} ms CPU per environment (SOAP included)")
        out["test"] = rows
        out["model"] = [str(p) for p in a.model]
        out["fidelity"] = a.fidelity
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
