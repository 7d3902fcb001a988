"""``s2s predict``: a measured spectrum file -> prepared spectrum -> candidates -> report."""

from s2s.predict.core import (  # noqa: F401
    DEFAULT_DATA, DEFAULT_FORWARD, DEFAULT_MODEL, DEFAULT_N_SAMPLES, DEFAULT_SAMPLER, DEFAULT_STEPS, BatchReport,
    InputError, InputSpectrum, Prediction, PredictContext, PredictInputError, check_shape, collect_inputs,
    expand_paths, generate_grouped, load_inputs, overview_figure, predict_one, prepare, rank_candidates,
    read_prediction, run_batch, smooth, subtract_background, training_onset, write_prediction,
)
