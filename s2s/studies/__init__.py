"""Studies of the model (paper, Results): what the notebooks, benchmarks and scripts measure.

- :mod:`~s2s.studies.evaluate`: generation over a split (cached) and summary tables.
- :mod:`~s2s.studies.bootstrap`: how sure a split's means are (95 % intervals resampling whole structures,
  and paired intervals of one method minus another on the same sites).
- :mod:`~s2s.studies.best_of_k`: best-of-k, the medoid picks and the learned pick against the oracle.
- :mod:`~s2s.studies.by_composition`: results per composition family (amorphous set).
- :mod:`~s2s.studies.identifiability`: how far a spectrum determines its environment (spectral twins,
  the retrieval oracle, whether a forward model tells twins apart); no model involved.
- :mod:`~s2s.studies.transfer`: GPAW -> xTB transfer (reference spectra as input).
- :mod:`~s2s.studies.calibration`: does the ensemble spread mean something.
- :mod:`~s2s.studies.manifold`: the spectral manifold (UMAP) and distance to training.
- :mod:`~s2s.studies.ablation`, :mod:`~s2s.studies.sampling_steps`, :mod:`~s2s.studies.smoke`: recipe
  ablations, the steps-vs-quality curve, the science smoke test.
- :mod:`~s2s.studies.results`: ``figures/results.json``, the numbers the paper quotes.

The tools these studies use at run time (alignment, shells, descriptors, ensembles, retrieval) live
below them: :mod:`s2s.geometry`, :mod:`s2s.descriptors`, :mod:`s2s.ensembles`, :mod:`s2s.retrieval`.
"""
