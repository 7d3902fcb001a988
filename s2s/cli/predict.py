"""The ``s2s predict`` subcommand (registered by :mod:`s2s.cli`); the work is in :mod:`s2s.predict`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from s2s.model.diffusion import SAMPLERS
from s2s.predict import (
    DEFAULT_DATA,
    DEFAULT_FORWARD,
    DEFAULT_FORWARD_REFERENCE,
    DEFAULT_MODEL,
    DEFAULT_MODEL_XTB,
    DEFAULT_N_SAMPLES,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
)

DESCRIPTION = (
    "Candidate local structures for O K-edge spectra. Reads two-column text/CSV (eV), EELS .msa, CASTEP, GPAW JSON, "
    "DigitalMicrograph .dm3/.dm4 and HyperSpy .hspy (spectra, line scans, spectrum images; needs s2s[eels]), "
    "s2s dataset .h5 (every entry), .npy arrays on the model grid ((200,), (n, 200) or a spectrum image (ny, nx, 200)) "
    "or .npz with 'energy' and 'spectra'; files and folders may be mixed. Per spectrum it writes OUT/NAME/ with "
    "candidates.xyz (excited O first, per-atom shell; first the consensus candidate, the medoid of the K of "
    "the most frequent composition, "
    "then the others ranked by the forward model's spectrum MSE to the input), summary.json and overview.png, "
    "atomically; finished outputs are "
    "skipped on a re-run, and an existing OUT/NAME that s2s did not write is left alone. See docs/predict.md."
)


def _add_input_and_model_options(p: argparse.ArgumentParser) -> None:
    """Spectrum files, the output folder, the model, its training data and the forward model that ranks."""
    p.add_argument("spectra", nargs="+", type=Path, help="spectrum files and/or folders of them")
    p.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default ./predictions)")
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help=f"model file (default {DEFAULT_MODEL}; with --fidelity xtb, the xTB-trained {DEFAULT_MODEL_XTB})",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="training dataset (template matching, OOD reference, onset convention; default the shipped one)",
    )
    p.add_argument(
        "--forward-model",
        type=Path,
        default=None,
        help="forward model that ranks the candidates by the MSE of their predicted spectrum to the input "
        f"(default: the one of the input's fidelity: with --fidelity xtb {DEFAULT_FORWARD}, else the "
        f"first-principles {DEFAULT_FORWARD_REFERENCE}; docs/forward_model.md)",
    )
    p.add_argument("--no-rank", action="store_true", help="do not rank the candidates (no forward model)")
    p.add_argument(
        "--fidelity",
        default=None,
        choices=["xtb", "reference", "both"],
        help="which training spectra are the reference of template matching, the OOD score and the onset "
        "convention: xtb, reference (the first-principles spectra of --reference-store) or both; default: what "
        "the --model was trained on (its run.json; docs/fidelity.md). Without --model, xtb also picks the "
        "xTB-trained generator. A model "
        "trained with --fidelity-input is also told the input's fidelity: 0 (xTB) for xtb, 1 (first principles) "
        "for reference and both",
    )
    p.add_argument(
        "--reference-store",
        type=Path,
        default=None,
        help="folder of the reference spectra (default: the shipped data/reference_sites)",
    )
    p.add_argument(
        "--input-map",
        type=Path,
        default=None,
        help="a fidelity map (.npz; the shipped one: models/fidelity_map_v1/map.npz) that every input goes "
        "through first: a first-principles spectrum made xTB-like for the xTB-trained model, which it then "
        "picks unless --model or --fidelity say otherwise (docs/fidelity.md); "
        "inputs unlike the spectra it was fitted on are flagged",
    )


def _add_candidate_options(p: argparse.ArgumentParser) -> None:
    """How many candidates, of how many atoms, drawn with which sampler, steps, guidance and seed."""
    p.add_argument(
        "--n-samples",
        type=int,
        default=DEFAULT_N_SAMPLES,
        help=f"candidates per spectrum (default {DEFAULT_N_SAMPLES})",
    )
    p.add_argument(
        "--n-atoms", type=int, default=None, help="fixed atom count (default: drawn from the model's p(N | spectrum))"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"sampling steps (default {DEFAULT_STEPS}, chosen from benchmarks/bench_steps.py)",
    )
    p.add_argument(
        "--sampler",
        default=DEFAULT_SAMPLER,
        choices=list(SAMPLERS),
        help=f"reverse-diffusion sampler (default {DEFAULT_SAMPLER})",
    )
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise level: 0 deterministic (default), 1 = ancestral")
    p.add_argument(
        "--guidance",
        type=float,
        default=0.0,
        help="classifier-free guidance weight w (default 0; w > 0 trades validity for geometry, docs/model.md)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _add_preparation_options(p: argparse.ArgumentParser) -> None:
    """How a spectrum is prepared (:func:`s2s.predict.prepare.prepare`): alignment, background, smoothing, units."""
    p.add_argument(
        "--shift",
        default="auto",
        help="energy alignment: 'auto' (default: onset alignment for absolute energies >= 100 eV, none for "
        "energies already relative to the onset), 'onset' (always align the detected onset to the training "
        "onset) or a shift in eV",
    )
    p.add_argument("--background", action="store_true", help="subtract a power-law pre-edge background (measured EELS)")
    p.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="EV",
        help="Gaussian smoothing, standard deviation in eV (default 0: none)",
    )
    p.add_argument(
        "--energy-axis",
        type=Path,
        default=None,
        help=".npy or text file with the energies (eV) of .npy spectra not on the model grid",
    )
    p.add_argument(
        "--energy-unit",
        default="eV",
        choices=["eV", "keV"],
        help="unit of the energies in two-column text/CSV files, .npz 'energy' arrays and --energy-axis "
        "(default eV; EMSA files state theirs in #XUNITS)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="skip the O K-edge plausibility checks (edge window 515-560 eV, flat or noise-like spectra)",
    )


def _add_image_and_output_options(p: argparse.ArgumentParser) -> None:
    """Which pixels of a spectrum image, and what is (re)written."""
    sel = p.add_mutually_exclusive_group()
    sel.add_argument(
        "--pixel",
        default=None,
        metavar="X,Y",
        help="spectrum images (.dm3/.dm4/.hspy, .npy/.npz (ny, nx, L)): only pixel X,Y (column, row from 0); "
        "default every pixel, each its own output (resumable) and maps.npz",
    )
    sel.add_argument(
        "--roi",
        default=None,
        metavar="X0:X1,Y0:Y1",
        help="spectrum images: the sum of columns X0..X1-1 and rows Y0..Y1-1, predicted as one spectrum",
    )
    p.add_argument("--no-resume", action="store_true", help="redo outputs that already exist")
    p.add_argument(
        "--html",
        action="store_true",
        help="also write overview.html: input vs forward-model spectra and every candidate rotatable in 3D "
        "(consensus first, coloured by shell); self-contained, works offline",
    )
    p.add_argument("--no-png", action="store_true", help="skip the PNG overview (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_predict_parser(sub) -> argparse.ArgumentParser:
    """``s2s predict``: candidate structures for spectrum files (:mod:`s2s.predict`)."""
    p = sub.add_parser(
        "predict", help="candidate structures, uncertainty and OOD warning for spectrum files", description=DESCRIPTION
    )
    _add_input_and_model_options(p)
    _add_candidate_options(p)
    _add_preparation_options(p)
    _add_image_and_output_options(p)
    return p


def cmd_predict(a) -> int:
    import torch

    from s2s.predict import PredictContext, choose_model, collect_inputs, run_batch
    from s2s.predict.context import AUTO
    from s2s.predict.inputs import parse_pixel, parse_roi
    from s2s.predict.report import check_out_dir

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    if a.n_samples < 1:
        raise ValueError("--n-samples must be >= 1")
    if a.steps is not None and a.steps < 1:
        raise ValueError("--steps must be >= 1")
    shift = a.shift
    if shift not in ("auto", "onset"):
        try:
            shift = float(shift)
        except ValueError:
            raise ValueError(f"--shift must be auto, onset or a number (eV), got {a.shift!r}") from None
    energy = None
    if a.energy_axis is not None:
        try:
            energy = np.load(a.energy_axis) if a.energy_axis.suffix == ".npy" else np.loadtxt(a.energy_axis)
            energy = np.asarray(energy, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--energy-axis {a.energy_axis}: not a list of numbers ({exc})") from None
    pixel = None if a.pixel is None else parse_pixel(a.pixel)
    roi = None if a.roi is None else parse_roi(a.roi)
    inputs, errors = collect_inputs(a.spectra, energy, a.energy_unit, pixel=pixel, roi=roi)
    ctx = rep = None
    if inputs:
        # checks before any work: the output folder, then the model and the forward model
        check_out_dir(a.out)
        fidelity = a.fidelity
        if fidelity is None and a.model is None and a.input_map is not None:
            from s2s.forward.fidelity_map import FidelityMap

            fidelity = FidelityMap.from_file(a.input_map).target  # its output is what that fidelity's model reads
        model, fidelity = choose_model(a.model, fidelity)
        ctx = PredictContext.load(
            model,
            a.data,
            None if a.no_rank else (a.forward_model or AUTO),
            fidelity,
            a.reference_store,
            a.input_map,
        )
        if a.guidance and not ctx.model.cfg.diffusion.cond_drop:
            raise ValueError(
                f"--guidance {a.guidance:g}: {model} was trained without spectrum dropout (cond_drop = 0), "
                "so it has no unconditional score to guide with; drop --guidance"
            )
        rep = run_batch(
            ctx,
            inputs,
            a.out,
            shift=shift,
            background=a.background,
            smooth_eV=a.smooth,
            force=a.force,
            resume=not a.no_resume,
            progress=not a.quiet,
            png=not a.no_png,
            html=a.html,
            n_samples=a.n_samples,
            steps=a.steps,
            sampler=a.sampler,
            eta=a.eta,
            guidance=a.guidance,
            seed=a.seed,
            n_atoms=a.n_atoms,
        )
    errors = errors + (rep.errors if rep else [])
    refused = rep.refused if rep else []
    busy = rep.busy if rep else []
    for e in errors:
        print(f"s2s predict: error: {e.message}", file=sys.stderr)
    for e in refused:
        print(f"s2s predict: {e.message}", file=sys.stderr)
    if busy:
        print(
            f"s2s predict: {len(busy)} output(s) left to another s2s predict running on {a.out} "
            f"(being written or just written by it): {', '.join(busy[:5])}{' ...' if len(busy) > 5 else ''}",
            file=sys.stderr,
        )
    if rep and rep.cleaned:
        print(f"s2s predict: removed {len(rep.cleaned)} leftover(s) of killed runs in {a.out}", file=sys.stderr)
    sys.stderr.flush()
    print(
        f"s2s predict: {len(rep.done) if rep else 0} written, {len(rep.skipped) if rep else 0} already done "
        f"(skipped), {len(busy)} left to another run, {len(refused)} left alone (OUT/NAME not written by s2s), "
        f"{len(errors)} failed; output in {a.out}"
    )
    return 2 if errors or refused else 0
