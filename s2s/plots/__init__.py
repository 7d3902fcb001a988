"""Figures of the paper, by family, in one consistent style (matplotlib; headless-safe).

Every ``plot_*`` function takes plain arrays / :class:`~s2s.environment.Environment` objects,
draws one figure (or into a given ``ax``) and returns the ``Figure``; the notebooks only compute
numbers, call these and :func:`save_figure`.  Distances are in Å, energies in eV relative to the
edge onset.  Figures are created with ``pyplot`` (which falls back to the Agg backend without a
display), so they show inline in notebooks; close them with ``plt.close(fig)`` or
``save_figure(..., close=True)``.

Modules (one figure family each):
  :mod:`~s2s.plots.style`         colours (Si blue, O red), rcParams, :func:`composition_color`, :func:`save_figure`
  :mod:`~s2s.plots.environments`  3-D environments and overlays, :func:`align_for_plot`
  :mod:`~s2s.plots.metrics`       RMSD and species-accuracy figures
  :mod:`~s2s.plots.manifold`      similarity gap (model vs template) and UMAP
  :mod:`~s2s.plots.spectra`       spectra and radial distributions
  :mod:`~s2s.plots.dataset`       composition histogram
  :mod:`~s2s.plots.training`      loss curves
  :mod:`~s2s.plots.predict`       the overview figure of one ``s2s predict`` output
  :mod:`~s2s.plots.viewer3d`      rotatable 3-D views that work offline (notebooks, ``s2s predict --html``):
                                  :func:`view_environments`, :func:`view_candidates`

Paper figure -> function:
  Fig. 2a, 5a, Supp. 3a  :func:`plot_rmsd_sorted`
  Fig. 2b, 5b, 7c, Supp. 3b  :func:`plot_overlay_panel`, :func:`plot_overlay_grid`,
                          :func:`plot_environment_overlay` (after :func:`align_for_plot`)
  Fig. 3, Supp. 2        :func:`plot_oxygen_fraction`, :func:`plot_species_accuracy_by_composition`
  Fig. 4, 6b-c           :func:`plot_similarity_gap`
  Fig. 5 (summary)       :func:`plot_rmsd_by_composition`
  Fig. 6a                :func:`plot_umap` (takes a precomputed 2-D embedding)
  Fig. 7a, 7b            :func:`plot_spectra`, :func:`plot_rdf` (with :mod:`s2s.descriptors.rdf`)
  Supp. Fig. 1           :func:`plot_composition_histogram`
"""

from s2s.plots.dataset import plot_composition_histogram
from s2s.plots.environments import (
    align_for_plot,
    plot_environment,
    plot_environment_overlay,
    plot_overlay_grid,
    plot_overlay_panel,
)
from s2s.plots.manifold import plot_similarity_gap, plot_umap
from s2s.plots.metrics import (
    plot_families_by_composition,
    plot_oxygen_fraction,
    plot_rmsd_by_composition,
    plot_rmsd_sorted,
    plot_species_accuracy_by_composition,
)
from s2s.plots.spectra import plot_rdf, plot_spectra
from s2s.plots.style import (
    BALL_RADIUS,
    BOND_CUTOFF,
    COLORS,
    CYCLE,
    STYLE,
    X_RANGE,
    composition_color,
    save_figure,
    style,
)
from s2s.plots.training import plot_loss_curve, plot_validation_curve, read_loss_csv
from s2s.plots.viewer3d import view_candidates, view_environments

__all__ = [
    "plot_families_by_composition",
    "BALL_RADIUS",
    "BOND_CUTOFF",
    "COLORS",
    "CYCLE",
    "STYLE",
    "X_RANGE",
    "align_for_plot",
    "composition_color",
    "plot_composition_histogram",
    "plot_environment",
    "plot_environment_overlay",
    "plot_loss_curve",
    "plot_validation_curve",
    "plot_overlay_grid",
    "plot_overlay_panel",
    "plot_oxygen_fraction",
    "plot_rdf",
    "plot_rmsd_by_composition",
    "plot_rmsd_sorted",
    "plot_similarity_gap",
    "plot_species_accuracy_by_composition",
    "plot_spectra",
    "plot_umap",
    "read_loss_csv",
    "save_figure",
    "style",
    "view_candidates",
    "view_environments",
]
