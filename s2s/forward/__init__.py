"""The forward model: structure -> spectrum, used to check and rank candidates against the input spectrum.

- :mod:`~s2s.forward.model`: SOAP features + MLP (and the distance-network alternative), training, loading.
- :mod:`~s2s.forward.selfconsistent`: the self-consistency score of a candidate against the input spectrum.
"""
