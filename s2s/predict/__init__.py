"""``s2s predict``: a measured spectrum file -> prepared spectrum -> candidates -> report.

* :mod:`~s2s.predict.inputs` - files and arrays -> :class:`InputSpectrum` (:func:`load_inputs`,
  :func:`collect_inputs`);
* :mod:`~s2s.predict.prepare` - :class:`InputSpectrum` -> :func:`prepare` -> the model's (200,) input
  (checks, background, onset alignment): with inputs, the one road for foreign spectra;
* :mod:`~s2s.predict.context` - the defaults, :class:`PredictContext` (loaded once) and :class:`Prediction`;
* :mod:`~s2s.predict.run` - :func:`predict_one` (generate, rank, summarise), :func:`run_batch`;
* :mod:`~s2s.predict.report` - the output folder (XYZ, summary.json, overview figure, maps) and
  :func:`read_prediction`;
* :mod:`~s2s.predict.signal` - :func:`predict_signal`: a HyperSpy signal or NumPy array in a notebook ->
  the same :class:`Prediction`, no files;
* :mod:`~s2s.predict.foreign` - notebook 07's helpers (reference environments, matching, ensemble stats).
"""

from s2s.predict.context import (
    DEFAULT_DATA,
    DEFAULT_FORWARD,
    DEFAULT_FORWARD_REFERENCE,
    DEFAULT_MODEL,
    DEFAULT_MODEL_XTB,
    DEFAULT_N_SAMPLES,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    PredictContext,
    Prediction,
    choose_forward,
    choose_model,
    trained_fidelity,
)
from s2s.predict.inputs import InputError, InputSpectrum, PredictInputError, collect_inputs, expand_paths, load_inputs
from s2s.predict.prepare import Prepared, broaden, check_shape, prepare, smooth, subtract_background, training_onset
from s2s.predict.report import read_prediction, write_prediction
from s2s.predict.run import BatchReport, predict_one, rank_candidates, run_batch
from s2s.predict.signal import load_context, predict_signal

__all__ = [
    "DEFAULT_DATA",
    "DEFAULT_FORWARD",
    "DEFAULT_FORWARD_REFERENCE",
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_XTB",
    "DEFAULT_N_SAMPLES",
    "DEFAULT_SAMPLER",
    "DEFAULT_STEPS",
    "BatchReport",
    "InputError",
    "InputSpectrum",
    "PredictContext",
    "PredictInputError",
    "Prediction",
    "Prepared",
    "choose_forward",
    "choose_model",
    "trained_fidelity",
    "broaden",
    "check_shape",
    "collect_inputs",
    "expand_paths",
    "load_context",
    "load_inputs",
    "predict_one",
    "predict_signal",
    "prepare",
    "rank_candidates",
    "read_prediction",
    "run_batch",
    "smooth",
    "subtract_background",
    "training_onset",
    "write_prediction",
]
