"""The forward model: structure -> spectrum, used to check and rank candidates against the input spectrum.

- :mod:`~s2s.forward.model`: SOAP features + MLP (and the distance-network alternative), loading, prediction.
- :mod:`~s2s.forward.train`: training with a validation split, resumable.
- :mod:`~s2s.forward.baselines`: nearest-SOAP and training-mean baselines, scores.
- :mod:`~s2s.forward.selfconsistent`: the self-consistency score of a candidate against the input spectrum.
"""
