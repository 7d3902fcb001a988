"""Amorphous SiO_x test set, never for training.

Tersoff family: melt-quench MD (:mod:`.md`), the resumable cell build (:mod:`.build`), the cell
files (:mod:`.store`) and structural checks (:mod:`.analysis`, :mod:`.checks`).  Network family
(:mod:`.network`, which re-exports its parts): :mod:`.protocol`, :mod:`.parent`, :mod:`.rules`,
:mod:`.insertion`, :mod:`.relaxation`.  Spectra of both: site selection (:mod:`.sites`), the SCF
probe (:mod:`.probe`), simulation and collection (:mod:`.spectra`) and the spectra step as a whole
(:mod:`.testset`, behind ``scripts/build_amorphous.py``).  Figures: :mod:`s2s.plots.amorphous`.
"""
