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
    (:func:`s2s.simulate.reference_sites.dataset_of_fidelity`); a missing file or store, or a store without
    any site of this dataset, exits with one line naming it."""
    from s2s.dataset import Dataset
    from s2s.resources import resolve
    from s2s.simulate.reference_sites import ReferenceStore, dataset_of_fidelity

    if not Path(path).exists():
        raise SystemExit(f"s2s: {path}: dataset file not found")
    ds = Dataset.load(path)
    store = None
    if fidelity != "xtb":
        root = resolve("reference_sites", reference_store, must_exist=False)
        if not Path(root).is_dir():
            raise SystemExit(f"s2s: --fidelity {fidelity}: reference store {root} is not a folder")
        store = ReferenceStore(root)
    try:
        return dataset_of_fidelity(ds, fidelity, store)
    except ValueError as err:
        raise SystemExit(f"s2s: {path}: {err}") from None
