"""How the subcommands read a dataset file: one loader, with the spectrum fidelity (``--fidelity``)."""

from __future__ import annotations

import argparse
from pathlib import Path

FIDELITY_HELP = (
    "which spectra of the dataset: xtb (default), reference (the first-principles GPAW spectra of "
    "--reference-store, for the sites that have one), both (two records per such site) or translated (the "
    "reference spectrum where one exists, the file's translated spectrum elsewhere; s2s.forward.translate) or all "
    "(both, and the translated spectrum of every site without a reference one)"
)


#: ``--fidelity``'s choices: :data:`s2s.simulate.reference_sites.FIDELITY_CHOICES` (not imported here: that
#: module pulls in the simulators, and every subcommand's parser is built at start-up; a test keeps them equal)
FIDELITIES = ["xtb", "reference", "both", "translated", "all"]


def add_fidelity_options(p: argparse.ArgumentParser) -> None:
    """``--fidelity`` (:data:`FIDELITIES`) and ``--reference-store DIR``."""
    p.add_argument("--fidelity", default="xtb", choices=FIDELITIES, help=FIDELITY_HELP)
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


SPLITS_HELP = (
    "'train', 'test', 'all', 'fit' (train minus the validation structures), 'val' (those; "
    "s2s.splits.validation_split), 'fit0' / 'fit1' (the halves of 'fit' by structure, s2s.splits.fit_halves)"
)


def split_of(ds, split: str):
    """The records of ``split`` (:data:`SPLITS_HELP`) of the dataset ``ds``, as a Dataset; an unknown name exits
    with one line listing the known ones."""
    if split in ("fit", "val"):
        from s2s.splits import validation_split

        return validation_split(ds)[0 if split == "fit" else 1]
    if split in ("fit0", "fit1"):
        from s2s.splits import fit_halves

        return fit_halves(ds)[int(split[-1])]
    if split == "all":
        return ds
    if split in ("train", "test"):
        return ds.split(split)
    raise SystemExit(f"s2s: unknown split {split!r}; known: {SPLITS_HELP}")


def library_for(ds, queries):
    """The training records a template library may search for ``queries``: the train split without the queries'
    structures (for the test split, all of train; for validation sites, the fit split), as a Dataset."""
    held_out = {r.structure_id for r in queries}
    library = ds.train.filter(lambda r: r.structure_id not in held_out)
    if len(library) == 0:
        raise SystemExit(
            "s2s: no training structure is left for the template library once the queried structures are held out; "
            "evaluate the test or val split"
        )
    return library
