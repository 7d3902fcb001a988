"""Judging generated environments (paper, Methods: "Evaluation").

- :mod:`~s2s.evaluation.align`: the paper's alignment (Hungarian + Kabsch) of a sample onto its target.
- :mod:`~s2s.evaluation.metrics`: shell RMSD, coordination-number error, species accuracy, validity, and
  the first shell's own geometry (radial, aligned on itself, Si-O-Si angle).
- :mod:`~s2s.evaluation.evaluate`: generation over a split (cached) and summary tables.
- :mod:`~s2s.evaluation.template`: the template-matching baseline (nearest training spectrum, and the
  consensus of the nearest few).
- :mod:`~s2s.evaluation.bootstrap`: how sure a split's means are (95 % intervals resampling whole structures,
  and paired intervals of one method minus another on the same sites).
- :mod:`~s2s.evaluation.identifiability`: how far a spectrum determines its environment (spectral twins,
  the retrieval oracle, whether a forward model tells twins apart); no model involved.
- :mod:`~s2s.evaluation.neighbours`: the one k-NN distance to the training set, used by
  :mod:`~s2s.evaluation.ood` (out-of-distribution score) and :mod:`~s2s.evaluation.manifold` (UMAP).
- :mod:`~s2s.evaluation.rdf`: radial distribution functions around the excited O.
- :mod:`~s2s.evaluation.ensemble`, :mod:`~s2s.evaluation.best_of_k`, :mod:`~s2s.evaluation.transfer`,
  :mod:`~s2s.evaluation.results`: candidate ensembles, best-of-k, GPAW->xTB transfer, ``results.json``.
"""
