"""Amorphous SiO_x test set: melt-quench MD (:mod:`.md`) and structural checks (:mod:`.analysis`)."""
