"""Candidates for prepared spectra: ``s2s predict``'s generate -> rank -> summarise, one spectrum or a batch.

For each prepared spectrum (:mod:`s2s.predict.prepare`, (200,) on :data:`s2s.spectrum.GRID`):

   With a fidelity map (``ctx.input_map``, ``s2s predict --input-map``) the spectrum first goes through it
   (:func:`map_input`: a first-principles spectrum made xTB-like for the xTB-trained generator); everything
   below reads the mapped spectrum, and the OOD record is also flagged when the raw input lies outside the
   map's domain (:func:`flag_outside_map`).
3. **Generate** K candidates (:func:`s2s.model.sample.generate`, graphs batched by atom count):
   atom counts drawn from the model's p(N | spectrum) (or a fixed ``n_atoms``), the few-step DDIM
   sampler by default.  A model with ``ModelConfig.fidelity_input`` is told the input's fidelity from the
   context's ``fidelity`` (:func:`input_fidelity_flag`: xtb 0, reference and both 1).
4. **Rank** (:func:`rank_candidates`, :func:`s2s.forward.selfconsistent.score_candidates`): the
   forward model (:mod:`s2s.forward.model`) predicts each candidate's spectrum; the MSE to the input
   spectrum (the template-matching metric) scores it, and the candidates are ranked best first
   (written in that order).  A candidate that cannot be scored (no atom besides the excited O, a
   non-finite coordinate) is reported by name in the warnings and left out; the others go on.
5. **Summarise** (:func:`s2s.ensembles.describe.summarize_ensemble`): distinct candidates clustered
   by shell composition with frequencies, CN per shell mean/std, Si-O distances (Å) and angles
   (degrees) mean/std, ensemble spread; the nearest training environments (template matching,
   :func:`s2s.retrieval.neighbours.nearest_by_mse`); the OOD score (:mod:`s2s.retrieval.ood`).

:func:`run_batch` does 2-6 for many inputs (step 6, the writing, is :mod:`s2s.predict.report`):
bad inputs are reported and the others go on; finished outputs are skipped (resume).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2s.ensembles.describe import (
    MIRROR_MARGIN,
    closer_as_mirror_images,
    pairwise_rmsd,
    shells,
    signature,
    summarize_ensemble,
)
from s2s.ensembles.pick import composition_key, composition_medoid_index
from s2s.environment import Environment
from s2s.files import FileLock, clean_stale
from s2s.forward.selfconsistent import score_candidates
from s2s.geometry.align import align
from s2s.geometry.shells import coordination_numbers
from s2s.model import sample
from s2s.predict.context import DEFAULT_N_SAMPLES, DEFAULT_SAMPLER, DEFAULT_STEPS, PredictContext, Prediction
from s2s.predict.inputs import InputError, InputSpectrum, with_file
from s2s.predict.prepare import prepare
from s2s.predict.report import OutputConflict, check_out_dir, output_state, write_maps, write_prediction
from s2s.retrieval.neighbours import nearest_by_mse
from s2s.spectrum import GRID, GRID_STEP, N_GRID, SpectrumError

# ----------------------------------------------------------------------------- one spectrum


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def nearest_training(ctx: PredictContext, spectrum: np.ndarray, representative: Environment, k: int = 3) -> list[dict]:
    """The ``k`` training sites with the closest spectra (MSE), what template matching answers,
    with their first-shell label, CN and the aligned RMSD (Å) of ``representative`` to them."""
    k = min(k, len(ctx.train_spectra))
    idx, mse = nearest_by_mse(spectrum[None, :], ctx.train_spectra, k=k)
    idx, mse = np.atleast_1d(np.asarray(idx).reshape(-1)), np.atleast_1d(np.asarray(mse).reshape(-1))
    out = []
    for i, m in zip(idx, mse):
        env = ctx.train_envs[int(i)]
        out.append(
            {
                **ctx.train_meta[int(i)],
                "train_index": int(i),
                "spectrum_mse": float(m),
                "spectrum_rms": float(np.sqrt(m)),
                "signature": signature(env),
                "cn": coordination_numbers(shells(env)).tolist(),
                "n_atoms": env.n_atoms,
                "rmsd_to_top_candidate": float(align(env, representative, method="paper").rmsd),
            }
        )
    return out


def input_fidelity_flag(ctx: PredictContext) -> float | None:
    """The fidelity flag the generator is given for an input spectrum, for a model with
    ``ModelConfig.fidelity_input`` (None for a model without it, which is called as before): 0.0 (xTB) for
    ``ctx.fidelity`` 'xtb', 1.0 (first principles) for 'reference' and 'both' (a measured spectrum is what
    first-principles spectra approximate, and 'both' puts them in the reference library)."""
    cfg = getattr(getattr(ctx.model, "cfg", None), "model", None)
    if not getattr(cfg, "fidelity_input", False):
        return None
    return 0.0 if ctx.fidelity == "xtb" else 1.0


def map_input(ctx: PredictContext, spectrum: np.ndarray) -> tuple[np.ndarray, dict | None]:
    """The spectrum the generator reads: ``ctx.input_map`` of ``spectrum`` (200,), or ``spectrum`` itself
    without a map; and what summary.json records of the map (None without one): its file, sha256, source
    and target fidelity, and the input's domain error against the map's threshold (eV^-1)."""
    fmap = ctx.input_map
    if fmap is None:
        return spectrum, None
    err = float(fmap.domain_error(spectrum))
    info = {
        "file": str(ctx.input_map_path),
        "sha256": ctx.input_map_sha256,
        "source": fmap.source,
        "target": fmap.target,
        "domain_error": err,
        "domain_threshold": float(fmap.domain_threshold),
        "in_domain": bool(err <= fmap.domain_threshold),
    }
    return fmap(spectrum), info


def flag_outside_map(ood: dict, mapping: dict | None) -> dict:
    """The OOD record of a mapped input, flagged also when the *raw* input lies outside the map's domain: a
    linear map turns noise or a flat line into something in distribution, so the score of the mapped spectrum
    alone would miss bad input (docs/fidelity.md)."""
    if mapping is None or mapping["in_domain"]:
        return ood
    note = (
        f"outside the fidelity map's domain: the input is unlike the {mapping['source']} spectra the map was "
        f"fitted on (residual {mapping['domain_error']:.4f} /eV > {mapping['domain_threshold']:.4f} /eV), so its "
        f"{mapping['target']}-like version means little; treat the candidates with caution"
    )
    warning = note if not ood.get("warning") else f"{ood['warning']}; {note}"
    return {**ood, "flag": True, "outside_map_domain": True, "warning": warning}


def predict_one(
    ctx: PredictContext,
    name: str,
    spectrum: np.ndarray,
    *,
    n_samples: int = DEFAULT_N_SAMPLES,
    steps: int | None = DEFAULT_STEPS,
    sampler: str = DEFAULT_SAMPLER,
    eta: float = 0.0,
    guidance: float = 0.0,
    seed: int = 0,
    n_atoms: int | None = None,
    prep_info: dict | None = None,
    source: str = "",
) -> Prediction:
    """K candidates and their summary for one grid spectrum (200,).

    ``guidance``: classifier-free guidance weight w (0: the conditional model alone, the default; on
    validation w = 1 gives 0.03 Å closer first shells and +0.03 species accuracy but 4.5 % fewer
    chemically valid environments, docs/model.md)."""
    import torch

    spec, mapping = map_input(ctx, np.asarray(spectrum, dtype=np.float64))
    counts = None if n_atoms is None else [int(n_atoms)]
    flag = input_fidelity_flag(ctx)

    envs = sample.generate(
        ctx.model,
        spec[None, :],
        counts,
        n_samples=n_samples,
        seed=seed,
        n_steps=steps,
        sampler=sampler,
        eta=eta,
        guidance=guidance,
        buckets=True,
        **({} if flag is None else {"fidelity": flag}),
    )[0]
    envs, ranking, predicted = rank_candidates(ctx, name, spec, envs)
    envs, ranking, predicted, consensus = consensus_first(envs, ranking, predicted)
    ens = summarize_ensemble(envs)
    top = ens["clusters"][0]
    rep = envs[0]
    # rotate every candidate onto the consensus candidate, so the XYZ frames overlay
    aligned = [Environment(rep.species, rep.coords, rep.shell, dict(rep.meta))]
    for e in envs[1:]:
        a = align(rep, e, method="paper")
        aligned.append(Environment(e.species, a.generated_rotated, e.shell, dict(e.meta)))
    probs = ctx.model.natoms.probabilities(torch.as_tensor(spec[None, :], dtype=torch.float32))[0].numpy()
    top_n = np.argsort(probs)[::-1][:3]
    ood = flag_outside_map(ctx.ood.describe(spec), mapping)
    if ranking is not None:
        for c in ens["clusters"]:
            best = min(c["members"], key=lambda i: (ranking["candidates"][i]["spectrum_mse"], i))
            c["best_member"], c["spectrum_mse_best"] = int(best), ranking["candidates"][best]["spectrum_mse"]
        for i, c in enumerate(ranking["candidates"]):
            c["signature"] = ens["signatures"][i]
            c["cluster"] = next(cl["label"] for cl in ens["clusters"] if i in cl["members"])
    summary = {
        "name": name,
        "source": source,
        "preprocessing": prep_info or {},
        "sampling": {
            "model": str(ctx.model_path),
            "model_sha256": ctx.model_sha256,
            "reference_fidelity": ctx.fidelity,
            "sampler": sampler,
            "eta": eta,
            "guidance": guidance,
            "steps": steps,
            "seed": seed,
            "n_samples": n_samples,
            "n_atoms": "p(N | spectrum)" if n_atoms is None else int(n_atoms),
            "p_n_atoms_top3": {str(int(i) + 1): float(probs[i]) for i in top_n},
            **({} if flag is None else {"fidelity_flag": flag}),
            **({} if mapping is None else {"input_map": mapping}),
        },
        "ood": ood,
        "consensus": consensus,
        "candidates": {k: v for k, v in ens.items() if k not in ("pairwise_rmsd",)},
        "nearest_training": nearest_training(ctx, spec, rep),
        "spectrum_grid_eV": [float(GRID[0]), float(GRID_STEP), N_GRID],
        "ranking": ranking,
        "handedness": {
            "note": HANDEDNESS_NOTE,
            "mirror_of_consensus": [i + 1 for i in closer_as_mirror_images(rep, envs[1:])],
            "margin_A": MIRROR_MARGIN,
        },
    }
    warnings = [w for w in [ood["warning"]] if w]
    if ranking is not None:
        warnings += [e["message"] for e in ranking["errors"]]
    if top["frequency"] < 0.5:
        warnings.append(
            f"no dominant candidate: the most frequent one ({top['label']}) has only "
            f"{top['frequency']:.0%} of the samples"
        )
    summary["warnings"] = warnings
    return Prediction(name, spec, aligned, _jsonable(summary), predicted)


#: What ``summary.json`` ``handedness`` says (docs/model.md, "Mirror images").
HANDEDNESS_NOTE = (
    "the spectrum does not fix handedness: an environment and its mirror image have the same spectrum, "
    "and the model draws both hands equally often; mirror_of_consensus lists the candidates that are "
    "closer to the consensus (candidate 0) as mirror images than as they are (by more than margin_A)"
)

#: How the consensus candidate (written first) is chosen; docs/model.md "Choosing among K samples".
CONSENSUS_METHOD = (
    "the medoid of the candidates of the most frequent composition (O fraction): the smallest mean aligned "
    "RMSD (best alignment) to the others of that composition; on the validation split (s2s_open_v6, 223 "
    "sites, K = 8, two sampling seeds) it keeps the medoid's first shell (0.56-0.59 Å) with 0.02-0.04 "
    "higher species accuracy (0.90-0.91)"
)


def consensus_first(
    envs: list[Environment], ranking: dict | None, predicted: np.ndarray | None
) -> tuple[list[Environment], dict | None, np.ndarray | None, dict]:
    """Put the consensus candidate first: the medoid of the candidates that share the most frequent
    composition (:func:`s2s.ensembles.pick.composition_medoid_index`, best alignment; K(K - 1)/2
    alignments, ~50 ms each), the pick closest to the truth on validation.  The others keep their
    order (forward-model rank).  Ranking entries get ``rank`` = written position and keep the forward
    model's order as ``forward_rank``; returns (candidates, ranking, predicted spectra, consensus dict
    for summary.json).
    """
    d = pairwise_rmsd(envs, method="best")
    m = composition_medoid_index(envs, d)
    same = [i for i, e in enumerate(envs) if composition_key(e) == composition_key(envs[m])]
    others = [i for i in range(len(envs)) if i != m]
    spread = float(np.mean(np.where(np.isfinite(d[m, others]), d[m, others], 1e3))) if others else 0.0
    order = [m] + [i for i in range(len(envs)) if i != m]
    if ranking is not None:
        cands = ranking["candidates"]
        for r, c in enumerate(cands):
            c["forward_rank"] = r
        ranking = {**ranking, "candidates": [{**cands[i], "rank": r, "consensus": r == 0} for r, i in enumerate(order)]}
    consensus = {
        "candidate": 0,
        "draw": int(envs[m].meta.get("draw", m)),
        "method": CONSENSUS_METHOD,
        "composition_share": len(same) / len(envs),
        "mean_rmsd_to_others": spread,
        "forward_rank": m if ranking is not None else None,
    }
    return [envs[i] for i in order], ranking, None if predicted is None else predicted[order], consensus


def rank_candidates(
    ctx: PredictContext, name: str, spectrum: np.ndarray, envs: list[Environment]
) -> tuple[list[Environment], dict | None, np.ndarray | None]:
    """Rank generated candidates by the forward model (module docstring, step 4).

    Returns the candidates to keep, best first (each ``meta["draw"]`` = its index in the
    generation order), the ``ranking`` dict for summary.json (None without a forward model:
    the candidates are returned as drawn) and their predicted spectra (K_kept, 200).  Candidates
    that cannot be scored are left out and listed under ``ranking["errors"]`` with a message
    naming them (``<name>: candidate <draw>``).
    """
    for i, e in enumerate(envs):
        e.meta["draw"] = i
    if ctx.forward is None:
        return envs, None, None
    sc = score_candidates(ctx.forward, spectrum, envs, [f"{name}: candidate {i}" for i in range(len(envs))])
    keep = [int(i) for i in sc.order if int(i) not in sc.errors]
    if not keep:
        raise ValueError(
            f"{name}: none of the {len(envs)} candidates could be scored: " + "; ".join(sc.errors.values())
        )
    ranking = {
        "metric": "MSE of the forward model's spectrum of the candidate to the input spectrum over the 200-point grid "
        "(unit-area intensity^2; the template-matching metric); lower is better; candidates failing the "
        "geometric check (s2s.forward.selfconsistent.physical_problems) come after the plausible ones; "
        "written best first",
        "forward_model": str(ctx.forward_path),
        "forward_model_sha256": ctx.forward_sha256,
        "candidates": [
            {
                "rank": r,
                "draw": i,
                "spectrum_mse": float(sc.scores[i]),
                "plausible": not sc.problems[i],
                "problems": sc.problems[i],
            }
            for r, i in enumerate(keep)
        ],
        "errors": [{"draw": int(i), "message": msg} for i, msg in sorted(sc.errors.items())],
    }
    return [envs[i] for i in keep], ranking, sc.predicted[keep]


# ----------------------------------------------------------------------------- batch
@dataclass
class BatchReport:
    """What :func:`run_batch` did, by output name.

    done : written by this run.  skipped : finished outputs left as they are (resume).
    busy : being written by another ``s2s predict`` on the same folder at that moment, or finished by
        it meanwhile (left to it).  refused : ``OUT/NAME`` exists and is not an s2s output (left alone),
        one :class:`InputError` each.  errors : inputs that failed.  cleaned : leftovers of killed
        runs removed at the start (:func:`s2s.files.clean_stale`).
    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    refused: list[InputError] = field(default_factory=list)
    cleaned: list[Path] = field(default_factory=list)


_INDEX = re.compile(r"\[[^\[\]]*\]$")


def _source_file(item: InputSpectrum) -> Path:
    """The file an input came from (its ``source`` without the ``[index]`` of arrays and datasets)."""
    return Path(_INDEX.sub("", item.source))


def _holds_input(folder: Path, item: InputSpectrum) -> bool:
    """Whether ``folder`` is, or contains, the file the input came from."""
    try:
        return _source_file(item).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):
        return False


def run_batch(
    ctx: PredictContext,
    inputs: Sequence[InputSpectrum],
    out_dir: Path,
    *,
    shift: str | float = "auto",
    background: bool = False,
    smooth_eV: float = 0.0,
    force: bool = False,
    resume: bool = True,
    progress: bool = True,
    png: bool = True,
    html: bool = False,
    **predict_kwargs,
) -> BatchReport:
    """Predict for every input with a progress bar; bad inputs are reported (nothing written
    for them) and the others go on; finished outputs are skipped when ``resume`` (else replaced).

    Safe on a shared ``out_dir``: leftovers of killed runs are removed first
    (:func:`s2s.files.clean_stale`); each name is written under an exclusive lock
    (``.NAME.s2s-lock``), so concurrent runs never write the same output and report the names the other
    run holds as ``busy``; an existing ``OUT/NAME`` that s2s did not write (or that holds an input
    file) is never touched (``refused``)."""
    from tqdm.auto import tqdm

    out_dir = check_out_dir(out_dir)
    rep = BatchReport()
    parents = {out_dir} | {(out_dir / it.name).parent for it in inputs}
    for folder in sorted(parents):
        rep.cleaned += clean_stale(folder)
    for item in tqdm(inputs, desc="predict", unit="spectrum", disable=not progress):
        final = out_dir / item.name
        state = output_state(out_dir, item.name)
        if state == "done" and resume:
            rep.skipped.append(item.name)
            continue
        if state == "foreign" or (state == "done" and _holds_input(final, item)):
            what = "holds the input file" if _holds_input(final, item) else "was not written by s2s predict"
            rep.refused.append(
                InputError(
                    item.name,
                    item.source,
                    f"{item.source}: skipped: {final} exists and {what}; left alone (move it away or choose "
                    "another --out)",
                )
            )
            continue
        new_parent = not final.parent.exists()  # OUT/STEM/ of arrays and datasets: removed again if left empty
        try:
            for attempt in range(3):  # another run may remove an empty OUT/STEM/ between mkdir and lock
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    lock = FileLock.acquire(final.parent / f".{final.name}.s2s-lock")
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
        except OSError as exc:
            rep.errors.append(InputError(item.name, item.source, f"{item.source}: cannot write {final}: {exc}"))
            continue
        if lock is None:
            rep.busy.append(item.name)
            continue
        try:
            again = output_state(out_dir, item.name)
            if again != state and again == "done":  # another run finished it while we looked
                rep.busy.append(item.name)
                continue
            prep = prepare(item, ctx.train_onset, shift=shift, background=background, smooth_eV=smooth_eV, force=force)
            meta = {k: v for k, v in item.meta.items() if isinstance(v, (str, int, float, bool, list)) or v is None}
            pred = predict_one(
                ctx, item.name, prep.spectrum, prep_info={**prep.info, **meta}, source=item.source, **predict_kwargs
            )
            write_prediction(out_dir, pred, ctx, png=png, overwrite=not resume, html=html)
            rep.done.append(item.name)
        except OutputConflict as exc:
            rep.refused.append(InputError(item.name, item.source, f"{item.source}: skipped: {exc}"))
        except (SpectrumError, ValueError) as exc:
            rep.errors.append(InputError(item.name, item.source, with_file(str(exc), item.source)))
        except OSError as exc:  # this output cannot be written (e.g. OUT/NAME's parent is a file); the others go on
            rep.errors.append(InputError(item.name, item.source, f"{item.source}: cannot write {final}: {exc}"))
        finally:
            lock.release()
            if new_parent:
                try:
                    final.parent.rmdir()  # only if nothing was written into it
                except OSError:
                    pass
    write_maps(out_dir, inputs)
    return rep


__all__ = [
    "BatchReport",
    "input_fidelity_flag",
    "map_input",
    "flag_outside_map",
    "nearest_training",
    "predict_one",
    "rank_candidates",
    "run_batch",
]
