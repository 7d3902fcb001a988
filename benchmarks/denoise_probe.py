"""Does the network read the spectrum?  x_0 RMSE against t with the true and with shuffled spectra.

    python benchmarks/denoise_probe.py [--model MODEL (default: the shipped model)] [--split val] [--n 128]

Noises each target environment to step t, asks the network for the clean coordinates with the
site's own spectrum and with another site's (:mod:`s2s.model.probe`), and prints the RMSE (Å) of both
and their gap.  A gap near zero at the noise levels where the structure is decided (t ~ 200-500)
means the network ignores the spectrum there.  ``--split val`` (default) uses the validation carve
of the training structures (:func:`s2s.splits.validation_split`); ``test`` the test split.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from s2s.dataset import Dataset
from s2s.model.probe import probe_table
from s2s.model.train import load_model
from s2s.resources import default_path
from s2s.splits import validation_split


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_path("model_xtb"))
    ap.add_argument("--data", default=str(default_path("data")))
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--n", type=int, default=128, help="sites (seeded choice; default 128)")
    ap.add_argument("--t", type=int, nargs="+", default=[50, 200, 300, 500, 800])
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = load_model(a.model)
    ds = Dataset.load(a.data)
    part = validation_split(ds)[1] if a.split == "val" else ds.test
    sel = np.random.default_rng(0).choice(len(part), size=min(a.n, len(part)), replace=False)
    recs = [part[int(i)] for i in sorted(sel)]
    rows = probe_table(model, [r.environment for r in recs], np.stack([r.spectrum for r in recs]), ts=a.t)
    print(f"{a.model} on {len(recs)} {a.split} sites")
    print(f"{'t':>5s} {'x0 RMSE true (Å)':>17s} {'shuffled (Å)':>13s} {'gap (Å)':>8s}")
    for r in rows:
        print(f"{r['t']:5d} {r['rmse_true']:17.3f} {r['rmse_shuffled']:13.3f} {r['gap']:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
