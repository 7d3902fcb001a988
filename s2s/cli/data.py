"""How the subcommands read a dataset file: one loader, with the spectrum fidelity (``--fidelity``)."""

from __future__ import annotations

import argparse
from pathlib import Path

FIDELITY_HELP = (
    "which spectra of the dataset: xtb (default), reference (the first-principles GPAW spectra of "
    "--reference-store, for the sites that have one), both (two records per such site) or translated (the "
    "reference spectrum where one exists, the file's translated spectrum elsewhere; s2s.forward.translate)"
)


def add_fidelity_options(p: argparse.ArgumentParser) -> None:
    """``--fidelity {xtb,reference,both}`` and ``--reference-store DIR``."""
    p.add_argument("--fidelity", default="xtb", choices=["xtb", "reference", "both", "translated"], help=FIDELITY_HELP)
    p.add_argument(
        "--reference-store",
        type=Path,
        default=None,
        help="folder of the reference spectra (default: the shipped data/reference_sites)",
    )


def load_dataset(path: Path, fidelity: str = "xtb", reference_store: Path | None = None):
    """The dataset file ``path`` as the :class:`s2s.dataset.Dataset` of ``fidelity``
    (:func:`s2s.simulate.reference_sites.load_fidelity`); a missing file or store, or a store without any
    site of this dataset, exits with one line naming it."""
    from s2s.simulate.reference_sites import load_fidelity

    try:
        return load_fidelity(path, fidelity, reference_store)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"s2s: {err}") from None
