"""The shipped model given the first-principles spectrum of a test site instead of its xTB spectrum.

For every test-split site of ``data/reference_sites`` computed with the build settings (XAS bands on a k-mesh,
FWHM 1.0 eV; docs/reference.md), one DDIM sample per seed from each input, scored against the site's own
environment with :func:`s2s.studies.transfer.transfer_metrics` (paper alignment; means over sites and seeds).
An early look while the reference build runs; notebook 03 will report the full test split.

    python benchmarks/reference_input.py [--seeds 0,1,2] [--steps 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from s2s.dataset import Dataset
from s2s.model.sample import generate
from s2s.model.train import load_model
from s2s.resources import default_path, resolve
from s2s.simulate.reference_sites import ReferenceStore, reference_records
from s2s.studies.transfer import TransferSite, transfer_metrics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(default_path("model")))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--store", default=None, help="another reference store (default: data/reference_sites)")
    ap.add_argument("--any-settings", action="store_true", help="take the store's spectra whatever their settings")
    ap.add_argument("--sites-of", default=None, help="only the sites that this other store holds (like-for-like)")
    ap.add_argument(
        "--gamma-records",
        type=float,
        default=0.0,
        metavar="FWHM",
        help="instead: the reference set's 32 Gamma-only records (data/reference/gpaw, the `transfer` sites), their "
        "sticks broadened at FWHM eV (0.5 is what `transfer` used)",
    )
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.gamma_records:
        from s2s.simulate.gpaw_ref import broaden_to_grid, load_record, record_path
        from s2s.studies.transfer import transfer_sites

        sites = []
        for s in transfer_sites(resolve("reference"), resolve("xtb_cache")):
            rec = load_record(record_path(resolve("reference") / "gpaw", s.structure_id, s.site_index))
            g = broaden_to_grid(np.asarray(rec["energies_eV"]), np.asarray(rec["intensity"]), a.gamma_records)
            sites.append(TransferSite(s.structure_id, s.site_index, s.target, s.xtb, g))
    else:
        ds = Dataset.load(resolve("data"))
        store = ReferenceStore(a.store or resolve("reference_sites"))
        kw = {"calc_key": None} if a.any_settings else {}
        ref = [r for r in reference_records(ds, store, **kw) if r.split == "test"]
        if a.sites_of:
            keep = set(ReferenceStore(a.sites_of).sites())
            ref = [r for r in ref if r.key in keep]
        if not ref:
            print("no test site with a reference spectrum of the build settings yet")
            return 1
        by_key = {r.key: r for r in ds.records}
        sites = [
            TransferSite(r.structure_id, r.site_index, r.environment, by_key[r.key].spectrum, r.spectrum) for r in ref
        ]
    model = load_model(a.model)
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        gen = {}
        for kind in ("xtb", "gpaw"):
            spec = np.stack([getattr(s, kind) for s in sites])
            out = generate(model, spec, [s.target.n_atoms for s in sites], sampler="ddim", n_steps=a.steps, seed=seed)
            gen[kind] = [o[0] for o in out]
        rows.append(transfer_metrics(sites, gen))
    keys = ("rmsd_shell1", "rmsd_all", "species_accuracy", "validity", "rmsd_shell1_radial", "angle_shell1_error_deg")
    print(
        f"{len(sites)} test sites ({len({s.structure_id for s in sites})} structures), DDIM-{a.steps}, "
        f"seeds {a.seeds}; mean over seeds (min-max)"
    )
    print("| input | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    summary = {}
    for kind in ("xtb", "gpaw"):
        vals = {k: [r[kind][k] for r in rows] for k in keys}
        summary[kind] = {k: float(np.mean(v)) for k, v in vals.items()}
        print(
            f"| {kind} | " + " | ".join(f"{np.mean(v):.3f} ({min(v):.3f}-{max(v):.3f})" for v in vals.values()) + " |"
        )
    if a.json:
        a.json.write_text(json.dumps({"n_sites": len(sites), "seeds": a.seeds, "steps": a.steps, **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
