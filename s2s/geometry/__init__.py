"""How two O-centred environments compare (paper, Methods: "Evaluation").

- :mod:`~s2s.geometry.align`: the paper's alignment (Hungarian + Kabsch) of a sample onto its target.
- :mod:`~s2s.geometry.shells`: shells by bond hops from the excited O, coordination numbers, bond angles.
- :mod:`~s2s.geometry.metrics`: shell RMSD, coordination-number error, species accuracy, validity, and
  the first shell's own geometry (radial, aligned on itself, Si-O-Si angle).
"""
