"""Descriptors of an O-centred environment.

- :mod:`~s2s.descriptors.soap`: SOAP vectors (dscribe) and their cosine similarity; the forward
  model's input and the template-matching comparison.
- :mod:`~s2s.descriptors.rdf`: radial distribution functions around the excited O.
"""
