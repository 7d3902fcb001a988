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
from scipy.ndimage import gaussian_filter1d

from s2s.environment import Environment
from s2s.geometry.metrics import evaluate_pair, summarize
from s2s.predict.foreign import load_input_spectrum, reference_environment
from s2s.retrieval.neighbours import nearest_by_mse
from s2s.retrieval.template import template_match
from s2s.simulate.build import load_site
from s2s.simulate.xtb import XtbSettings
from s2s.spectrum import GRID, GRID_STEP, normalize


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
    """``{"n", "xtb": {...}, "gpaw": {...}}`` with rmsd_shell1, rmsd_all (Å), species_accuracy, validity and
    the first shell on its own (rmsd_shell1_radial, rmsd_shell1_local in Å, angle_shell1_error_deg;
    :func:`s2s.geometry.metrics.first_shell_errors`) per input.

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
            **{k: s[k] for k in ("rmsd_shell1_radial", "rmsd_shell1_local", "angle_shell1_error_deg")},
        }
    return out


def in_training(sites: Sequence[TransferSite], train_spectra: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """(n,) bool: the site's xTB spectrum equals a training spectrum (MSE < ``tol``), i.e. the same
    site of the same structure is in the training data under another id (an AFLOW or literature copy).

    On such a site generation from the xTB spectrum can be recall rather than inference; the GPAW
    spectrum of it is still new to the model.
    """
    if not sites:
        return np.zeros(0, bool)
    _, mse = nearest_by_mse(np.stack([s.xtb for s in sites]), np.asarray(train_spectra, float), k=1)
    return np.asarray(mse).reshape(len(sites)) < tol


def template_environments(
    sites: Sequence[TransferSite], train_spectra: np.ndarray, train_envs: Sequence[Environment], kind: str
) -> list[Environment]:
    """The paper's template matching from each site's ``kind`` ("xtb" or "gpaw") spectrum: the
    training environment whose spectrum has the smallest MSE (no exclusion: the sites are foreign)."""
    spec = np.stack([getattr(s, kind) for s in sites])
    return template_match(spec, None, train_spectra, None, train_envs).environments


def _match_shift_broadening(
    source: np.ndarray,
    target: np.ndarray,
    shifts_eV: np.ndarray,
    sigmas_eV: Sequence[float],
) -> tuple[float, float, float]:
    """(rms, shift (eV), sigma (eV)) of the shifted, Gaussian-broadened, re-normalised ``source``
    closest (RMS over the grid) to ``target``; both (200,) unit-area spectra on :data:`GRID`."""
    best = (np.inf, 0.0, 0.0)
    for sh in shifts_eV:
        y0 = np.interp(GRID - sh, GRID, source, left=0.0, right=0.0)
        for sig in sigmas_eV:
            y = gaussian_filter1d(y0, sig / GRID_STEP, mode="constant") if sig > 0 else y0
            if not np.any(y > 0):
                continue
            rms = float(np.sqrt(np.mean((normalize(y) - target) ** 2)))
            if rms < best[0]:
                best = (rms, float(sh), float(sig))
    return best


def spectral_gap(
    sites: Sequence[TransferSite],
    shifts_eV: np.ndarray | None = None,
    sigmas_eV: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5),
) -> dict:
    """How far the GPAW spectrum of a site is from its xTB spectrum, against how far sites are apart.

    Per site (unit-area spectra on the grid, RMS over the 200 points, eV^-1):
    ``rms_xtb_gpaw`` between the two methods; ``rms_nearest_other`` from the site's xTB spectrum to
    the nearest xTB spectrum of another site of the set (how different sites look to the model);
    ``rms_after_shift_broadening`` after the best rigid shift (``shifts_eV``, default -3..3 eV in
    0.1 eV) and Gaussian broadening (``sigmas_eV``) of the xTB spectrum, the part of the gap that
    shift/broadening augmentation could cover. Returned as medians, with ``gpaw_retrieves_own_xtb``:
    the share of sites whose GPAW spectrum is nearest (MSE) to its own xTB spectrum among the set's.
    """
    if len(sites) < 2:
        raise ValueError(f"spectral_gap: need at least 2 sites, got {len(sites)}")
    shifts = np.round(np.arange(-3.0, 3.0001, 0.1), 10) if shifts_eV is None else np.asarray(shifts_eV, float)
    X = np.stack([s.xtb for s in sites])
    G = np.stack([s.gpaw for s in sites])
    rms_xg = np.sqrt(np.mean((X - G) ** 2, axis=1))
    dxx = np.sqrt(np.mean((X[:, None] - X[None]) ** 2, axis=-1))
    np.fill_diagonal(dxx, np.inf)
    fits = [_match_shift_broadening(x, g, shifts, sigmas_eV) for x, g in zip(X, G)]
    dgx = np.mean((G[:, None] - X[None]) ** 2, axis=-1)
    return {
        "n": len(sites),
        "rms_xtb_gpaw": float(np.median(rms_xg)),
        "rms_nearest_other": float(np.median(dxx.min(axis=1))),
        "rms_after_shift_broadening": float(np.median([f[0] for f in fits])),
        "best_shift_eV": float(np.median([f[1] for f in fits])),
        "best_sigma_eV": float(np.median([f[2] for f in fits])),
        "gpaw_retrieves_own_xtb": float(np.mean(dgx.argmin(axis=1) == np.arange(len(sites)))),
    }


def transfer_report(
    sites: Sequence[TransferSite],
    generated: dict[str, Sequence[Environment]],
    templates: dict[str, Sequence[Environment]],
    seen: np.ndarray,
) -> dict:
    """``transfer_metrics`` of the model (keys ``xtb``, ``gpaw``), of template matching
    (``template``), both again on the sites not in the training data (``unseen``), and
    ``n_in_training`` (``seen``: :func:`in_training`)."""
    seen = np.asarray(seen, bool)
    if seen.shape != (len(sites),):
        raise ValueError(f"transfer_report: seen has shape {seen.shape}, expected ({len(sites)},)")
    out = transfer_metrics(sites, generated)
    out["n_in_training"] = int(seen.sum())
    out["template"] = {k: v for k, v in transfer_metrics(sites, templates).items() if k != "n"}
    keep = np.where(~seen)[0]
    if len(keep):
        sub = [sites[i] for i in keep]
        unseen = transfer_metrics(sub, {k: [v[i] for i in keep] for k, v in generated.items()})
        unseen["template"] = {
            k: v
            for k, v in transfer_metrics(sub, {k: [v[i] for i in keep] for k, v in templates.items()}).items()
            if k != "n"
        }
        out["unseen"] = unseen
    return out


__all__ = [
    "TransferSite",
    "transfer_sites",
    "transfer_metrics",
    "in_training",
    "template_environments",
    "spectral_gap",
    "transfer_report",
]
