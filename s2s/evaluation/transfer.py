"""Transfer to another method: generation from GPAW spectra vs xTB spectra of the same sites.

The model is trained on GFN1-xTB Z+1 spectra; a measured spectrum, or one from another code, meets
a shifted distribution.  The reference set (``data/reference/gpaw``: 32 O sites of SiO2 polymorphs
and suboxides, PBE half core hole) also has xTB spectra of the very same sites with the training
settings (the build cache).  Generating from both and scoring against the same target environment
measures the gap a spectrum from another method meets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from s2s.environment import Environment
from s2s.evaluation.metrics import evaluate_pair, summarize


@dataclass(frozen=True)
class TransferSite:
    """One reference site: its target environment (Å) and its two spectra (200 points, unit area)."""

    structure_id: str
    site_index: int
    target: Environment
    xtb: np.ndarray
    gpaw: np.ndarray


def transfer_sites(reference_dir: str | os.PathLike, cache_dir: str | os.PathLike, settings=None) -> list[TransferSite]:
    """Every GPAW reference site whose xTB spectrum (training settings by default) is in the build cache.

    ``reference_dir``: the folder holding ``gpaw/*.json`` and the structures; ``cache_dir``: the xTB
    build cache (``data/cache/xtb``).  Sites without a cached xTB spectrum are skipped.
    """
    from s2s.predict.foreign import load_input_spectrum, reference_environment
    from s2s.simulate.build import load_site
    from s2s.simulate.xtb import XtbSettings

    settings = settings or XtbSettings()
    ref = Path(reference_dir)
    files = sorted((ref / "gpaw").glob("*__site*.json"))
    if not files:
        raise FileNotFoundError(f"{ref / 'gpaw'}: no GPAW reference records (*__site*.json)")
    out = []
    for f in files:
        sid, site = f.stem.rsplit("__site", 1)
        res = load_site(cache_dir, settings, sid, int(site))
        if res is None or not res.ok:
            continue
        env, _ = reference_environment(ref, sid, int(site))
        gpaw = load_input_spectrum(f).spectrum
        out.append(TransferSite(sid, int(site), env, np.asarray(res.spectrum, float), np.asarray(gpaw, float)))
    return out


def transfer_metrics(sites: Sequence[TransferSite], generated: dict[str, Sequence[Environment]]) -> dict:
    """``{"n", "xtb": {...}, "gpaw": {...}}`` with rmsd_shell1 (Å), species_accuracy and validity per input.

    ``generated[kind][i]``: the environment generated from ``sites[i]``'s spectrum of that kind.
    """
    out: dict = {"n": len(sites)}
    for kind, envs in generated.items():
        if len(envs) != len(sites):
            raise ValueError(f"transfer_metrics: {len(envs)} generated for {kind!r}, {len(sites)} sites")
        s = summarize(evaluate_pair(site.target, g) for site, g in zip(sites, envs))
        out[kind] = {
            "rmsd_shell1": s["rmsd_shell1"],
            "rmsd_all": s["rmsd_all"],
            "species_accuracy": s["species_accuracy"],
            "validity": s["validity"],
        }
    return out


__all__ = ["TransferSite", "transfer_sites", "transfer_metrics"]
