"""What ``s2s predict`` holds while it runs: the defaults, :class:`PredictContext` (everything loaded
once: the generator, the training reference, the forward model) and :class:`Prediction` (one
spectrum's candidates and summary), shared by :mod:`~s2s.predict.run`, :mod:`~s2s.predict.report`,
:mod:`~s2s.predict.html` and :mod:`~s2s.predict.signal`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2s.environment import Environment
from s2s.files import file_sha256
from s2s.forward.model import ForwardModel
from s2s.model.train import load_model
from s2s.predict.prepare import training_onset
from s2s.resources import default_path, resolve
from s2s.retrieval.ood import OODScorer, PerFidelityOODScorer, fit_ood
from s2s.simulate.reference_sites import load_fidelity

DEFAULT_MODEL = default_path("model")


#: The generator trained on xTB spectra only, what ``s2s predict --fidelity xtb`` reads with (docs/fidelity.md).
DEFAULT_MODEL_XTB = default_path("model_xtb")


FIDELITIES = ("xtb", "reference", "both")
#: Training fidelities with translated spectra, and the fidelity whose real spectra stand for them at prediction
#: (template library, OOD score): translations are a model's guesses, never a reference a user is compared with.
READ_AS = {"translated": "reference", "all": "both"}


def trained_fidelity(model_path: str | os.PathLike) -> str:
    """The fidelity of the spectra the model at ``model_path`` was trained on: ``fidelity`` of the
    ``run.json`` beside it (``s2s train --fidelity``; 'translated' reads as 'reference' and 'all' as 'both',
    :data:`READ_AS`), or 'xtb' when it has none (models from before the key, trained on xTB spectra only)."""
    run = Path(model_path).parent / "run.json"
    if not run.is_file():
        return "xtb"
    try:
        fid = json.loads(run.read_text()).get("fidelity", "xtb")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(f"{run}: not a run record of s2s train ({exc})") from None
    fid = READ_AS.get(fid, fid)
    if fid not in FIDELITIES:
        raise ValueError(f"{run}: fidelity {fid!r}, expected one of {', '.join(FIDELITIES + tuple(READ_AS))}")
    return fid


def choose_model(model: str | os.PathLike | None = None, fidelity: str | None = None) -> tuple[Path, str]:
    """(model file, fidelity of the training reference) for ``s2s predict``'s ``--model`` and ``--fidelity``.

    - ``model`` given: that model; ``fidelity`` as given, else the one it was trained on
      (:func:`trained_fidelity`).
    - no ``model`` and ``fidelity`` 'xtb': the xTB-trained generator (``model_xtb`` resource).
    - no ``model`` otherwise: the shipped default (``model`` resource), with ``fidelity`` as given, else the
      one it was trained on.
    """
    if fidelity is not None and fidelity not in FIDELITIES:
        raise ValueError(f"fidelity {fidelity!r}: expected one of {', '.join(FIDELITIES)}")
    if model is None:
        model = resolve("model_xtb" if fidelity == "xtb" else "model")
    model = Path(model)
    return model, fidelity or trained_fidelity(model)


DEFAULT_DATA = default_path("data")


#: The forward model (environment -> spectrum) that ranks the candidates of xTB input (docs/forward_model.md).
DEFAULT_FORWARD = default_path("forward")


#: The forward model that predicts first-principles spectra: ranks the candidates of every other input.
DEFAULT_FORWARD_REFERENCE = default_path("forward_reference")


#: ``forward_path="auto"``: the forward model of the input's fidelity (:func:`choose_forward`).
AUTO = "auto"


def choose_forward(forward: str | os.PathLike | None, fidelity: str) -> Path | None:
    """The forward model that ranks the candidates: ``forward`` when it is a path, None (no ranking) when None;
    for ``"auto"`` the one that predicts spectra of the input's kind, so that a candidate's predicted spectrum
    and the input compare like with like: the xTB forward model (``forward`` resource) for ``fidelity`` 'xtb',
    the first-principles one (``forward_reference``) for 'reference' and 'both' (whose inputs are measured or
    first-principles spectra; docs/forward_model.md)."""
    if forward is None:
        return None
    if str(forward) != AUTO:
        return Path(forward)
    return resolve("forward" if fidelity == "xtb" else "forward_reference", must_exist=False)  # load() checks it


#: Sampler and step count for predict, chosen from benchmarks/bench_steps.py (docs/predict.md).
DEFAULT_SAMPLER = "ddim"


DEFAULT_STEPS = 100


DEFAULT_N_SAMPLES = 16


@dataclass
class PredictContext:
    """Everything loaded once: the model and the training reference (template matching, OOD, onset)."""

    model: Any
    model_path: Path
    model_sha256: str
    train_spectra: np.ndarray
    train_envs: list[Environment]
    train_meta: list[dict]
    ood: OODScorer | PerFidelityOODScorer  # s2s.retrieval.ood.fit_ood: per fidelity with --fidelity both
    train_onset: float
    forward: Any = None  # s2s.forward.model.ForwardModel ranking the candidates, or None (no ranking)
    forward_path: Path | None = None
    forward_sha256: str | None = None
    fidelity: str = "xtb"  # the spectra of the training reference (s2s.simulate.reference_sites.FIDELITY_CHOICES)
    input_map: Any = None  # s2s.forward.fidelity_map.FidelityMap applied to every input first, or None
    input_map_path: Path | None = None
    input_map_sha256: str | None = None

    @classmethod
    def load(
        cls,
        model_path: str | os.PathLike = DEFAULT_MODEL,
        data_path: str | os.PathLike = DEFAULT_DATA,
        forward_path: str | os.PathLike | None = AUTO,
        fidelity: str | None = None,
        reference_store: str | os.PathLike | None = None,
        input_map: str | os.PathLike | None = None,
    ) -> "PredictContext":
        """Load the generator, the training reference and (unless ``forward_path`` is None) the
        forward model that ranks the candidates (``"auto"``: the one of ``fidelity``, :func:`choose_forward`);
        a missing forward model file is an error naming it.
        ``fidelity``: which training spectra are the reference of template matching, the OOD score and the
        onset convention ('xtb', 'reference' = the first-principles spectra of ``reference_store``, default
        data/reference_sites, or 'both', whose onset convention is the first-principles spectra's); None: what
        the model was trained on (:func:`trained_fidelity`).
        ``input_map``: a fidelity map (:class:`s2s.forward.fidelity_map.FidelityMap` file) that every input
        goes through before anything else; it must map into ``fidelity``, and the onset convention becomes
        that of the map's source spectra (``meta['source_onset_eV']``)."""
        model_path, data_path = Path(model_path), Path(data_path)
        model = load_model(model_path)
        fidelity = fidelity or trained_fidelity(model_path)
        if not data_path.exists():
            raise FileNotFoundError(
                f"{data_path}: training dataset not found (needed for template matching, the OOD "
                "score and the onset convention); pass --data"
            )
        train = load_fidelity(data_path, fidelity, reference_store).train
        if len(train) == 0:
            raise ValueError(f"{data_path}: no training records (fidelity {fidelity})")
        spectra = train.spectra()
        groups = [r.structure_id for r in train]
        fmap = None
        # the onset a measured spectrum is aligned to: the training spectra's; with both fidelities, the
        # first-principles ones' (a measured spectrum is physics, not our simulator; their median onsets differ
        # by ~0.7 eV, docs/fidelity.md)
        first_principles = [r.spectrum for r in train if r.fidelity == "reference"]
        onset = training_onset(np.stack(first_principles) if fidelity == "both" and first_principles else spectra)
        if input_map is not None:
            from s2s.forward.fidelity_map import FidelityMap

            input_map = Path(input_map)
            fmap = FidelityMap.from_file(input_map)
            if fmap.target != fidelity:
                raise ValueError(
                    f"{input_map}: maps {fmap.source} spectra to {fmap.target}, but the training reference is "
                    f"{fidelity} (--fidelity); give --fidelity {fmap.target}"
                )
            if fmap.basis is None or "source_onset_eV" not in fmap.meta:
                raise ValueError(f"{input_map}: the map has no domain basis or no source_onset_eV in its meta")
            onset = float(fmap.meta["source_onset_eV"])
        forward = None
        forward_path = choose_forward(forward_path, fidelity)
        if forward_path is not None:
            if not forward_path.exists():
                raise FileNotFoundError(
                    f"{forward_path}: forward model not found (ranks the candidates); train one "
                    "with 's2s train-forward' or pass --no-rank"
                )
            forward = ForwardModel.load(forward_path)
        return cls(
            model=model,
            model_path=model_path,
            model_sha256=file_sha256(model_path),
            train_spectra=spectra,
            train_envs=train.environments(),
            train_meta=[
                {"structure_id": r.structure_id, "site_index": r.site_index, "formula": r.formula} for r in train
            ],
            ood=fit_ood(spectra, groups, [r.fidelity for r in train]),  # per fidelity when both
            train_onset=onset,
            forward=forward,
            forward_path=forward_path,
            forward_sha256=None if forward is None else file_sha256(forward_path),
            fidelity=fidelity,
            input_map=fmap,
            input_map_path=input_map,
            input_map_sha256=None if fmap is None else file_sha256(input_map),
        )


@dataclass
class Prediction:
    name: str
    spectrum: np.ndarray
    candidates: list[Environment]
    summary: dict
    predicted: np.ndarray | None = None  # (K, 200) forward-model spectra of the candidates (ranked order), or None
