"""Open O K-edge spectrum simulation (GFN-xTB through tblite) and the cached build.

* :mod:`s2s.simulate.xtb` - the per-site / per-structure simulator (pure functions).
* :mod:`s2s.simulate.build` - cached, resumable, parallel build over many structures.
"""

from s2s.simulate.xtb import (
    GRID,
    SiteResult,
    XtbSettings,
    broaden,
    finalize,
    grid_spectrum,
    simulate_site,
    simulate_structure_ground_state,
    supercell_multiples,
)

__all__ = [
    "GRID",
    "SiteResult",
    "XtbSettings",
    "broaden",
    "finalize",
    "grid_spectrum",
    "simulate_site",
    "simulate_structure_ground_state",
    "supercell_multiples",
]
