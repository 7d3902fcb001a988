"""Self-consistent ranking on one test site, with deliberately unphysical candidates mixed in.

    python benchmarks/ranking_case.py                  # the case in docs/forward_model.md
    python benchmarks/ranking_case.py --site 40 --k 8

For a test spectrum the generator draws K candidates (the target's atom count, DDIM 50 steps);
three more are added by hand: the true environment (a sanity check: it should rank near the
top), the true environment with its first shell pulled in to 1.0 Å from the excited O, and the
true environment expanded by 35 % (no atom within 2.0 Å of the O: an empty first shell).  Every
candidate is scored by the forward model (MSE of its predicted spectrum to the input) and the
table lists them best first, with the geometric check of :func:`s2s.forward.selfconsistent.physical_problems`.
Nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from s2s.dataset import Dataset  # noqa: E402
from s2s.ensembles.describe import signature  # noqa: E402
from s2s.environment import Environment  # noqa: E402
from s2s.forward.model import ForwardModel  # noqa: E402
from s2s.forward.selfconsistent import physical_problems, score_candidates  # noqa: E402
from s2s.resources import default_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=default_path("data"))
    ap.add_argument("--model", type=Path, default=default_path("model_xtb"))
    ap.add_argument("--forward-model", type=Path, default=ROOT / "models" / "forward_v1" / "model.pt")
    ap.add_argument("--site", type=int, default=0, help="index into the test split (default 0)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)

    import torch

    from s2s.model.sample import generate
    from s2s.model.train import load_model

    torch.set_num_threads(1)
    rec = Dataset.load(a.data).test[a.site]
    t = rec.environment
    gen = generate(
        load_model(a.model), rec.spectrum[None, :], [t.n_atoms], n_samples=a.k, seed=a.seed, n_steps=50, sampler="ddim"
    )[0]
    x = t.coords.copy()
    first = t.shell == 1
    x[first] = x[first] / np.linalg.norm(x[first], axis=1, keepdims=True) * 1.0
    cands = list(gen) + [
        Environment(t.species, t.coords, t.shell),
        Environment(t.species, x, t.shell),
        Environment(t.species, t.coords * 1.35, t.shell),
    ]
    names = [f"generated {i}" for i in range(len(gen))] + [
        "true environment",
        "first shell at 1.0 Å (unphysical)",
        "expanded 35 %: empty first shell (unphysical)",
    ]
    sc = score_candidates(ForwardModel.load(a.forward_model), rec.spectrum, cands, names)
    print(
        f"test site {a.site}: {rec.structure_id} site {rec.site_index} ({rec.formula}), {t.n_atoms} atoms; "
        f"{a.k} generated candidates (DDIM 50, seed {a.seed}) + 3 by hand"
    )
    print("| rank | candidate | shells 1/2/3 | spectrum MSE | geometric check |")
    print("|---:|---|---|---:|---|")
    for r, i in enumerate(sc.order):
        probs = physical_problems(cands[i])
        print(f"| {r + 1} | {names[i]} | {signature(cands[i])} | {sc.scores[i]:.2e} | {'; '.join(probs) or 'ok'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
