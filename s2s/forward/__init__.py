"""The forward model: structure -> spectrum, used to check and rank candidates against the input spectrum.

- :mod:`~s2s.forward.model`: SOAP features + MLP (and the distance-network alternative), loading, prediction.
- :mod:`~s2s.forward.train`: training with a validation split, resumable.
- :mod:`~s2s.forward.baselines`: nearest-SOAP and training-mean baselines, scores.
- :mod:`~s2s.forward.selfconsistent`: the self-consistency score of a candidate against the input spectrum.
- :mod:`~s2s.forward.translate`: the translator, xTB spectrum + environment -> reference-fidelity spectrum.
- :mod:`~s2s.forward.fidelity_map`: the fidelity map, a reference (first-principles) spectrum -> an xTB-like one,
  with its domain check (``s2s predict --input-map``).
"""
