"""Looking a spectrum up among the training spectra.

- :mod:`~s2s.retrieval.neighbours`: nearest spectra by MSE (group exclusion), k-NN distance to the
  training set, leave one structure out.
- :mod:`~s2s.retrieval.ood`: the out-of-distribution score of ``s2s predict``.
- :mod:`~s2s.retrieval.template`: template matching, the paper's baseline, and how generation
  compares with it (SOAP similarity to the target).
"""
