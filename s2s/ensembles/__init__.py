"""K generated candidates for one spectrum.

- :mod:`~s2s.ensembles.describe`: what the candidates look like together (shell signatures, pairwise
  RMSD, clusters, bond lengths and angles, spread, mirror images).
- :mod:`~s2s.ensembles.pick`: one of them without the target (medoids, the composition medoid,
  consensus).
"""
