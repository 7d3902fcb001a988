"""Local environments: the excited O at the origin and its neighbour shells.

An :class:`Environment` is the data type that flows through the pipeline:
a crystal structure becomes an environment, an environment a graph, a graph a
sample.  Coordinates are Cartesian, in Å, with the excited O at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: One-hot order of the species channel (paper: A in {0,1}^{N x 2}).
SPECIES: tuple[str, ...] = ("Si", "O")
SI, O = 0, 1


@dataclass(frozen=True)
class Environment:
    """A local environment of N atoms.

    Attributes
    ----------
    species : (N,) int array, index into :data:`SPECIES`; ``species[0]`` is the excited O.
    coords : (N, 3) float array, Å, excited O at the origin (``coords[0] == 0``).
    shell : (N,) int array, 0 for the excited atom, 1, 2, 3 for the neighbour shells.
    meta : free-form provenance (structure id, site index, ...).
    """

    species: np.ndarray
    coords: np.ndarray
    shell: np.ndarray
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        species = np.asarray(self.species, dtype=np.int64)
        coords = np.asarray(self.coords, dtype=np.float64)
        shell = np.asarray(self.shell, dtype=np.int64)
        n = species.shape[0]
        if species.ndim != 1 or coords.shape != (n, 3) or shell.shape != (n,):
            raise ValueError(
                f"Environment: expected species (N,), coords (N, 3), shell (N,); got "
                f"{species.shape}, {coords.shape}, {shell.shape}"
            )
        if n == 0:
            raise ValueError("Environment: empty (no atoms)")
        if not np.all((species >= 0) & (species < len(SPECIES))):
            raise ValueError(f"Environment: species indices must be in 0..{len(SPECIES) - 1}")
        object.__setattr__(self, "species", species)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "shell", shell)

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])

    def one_hot(self) -> np.ndarray:
        """(N, 2) one-hot species, order :data:`SPECIES`."""
        return np.eye(len(SPECIES))[self.species]

    def oxygen_fraction(self) -> float:
        """Fraction of O atoms (the quantity behind the paper's species accuracy)."""
        return float(np.mean(self.species == O))

    def symbols(self) -> list[str]:
        return [SPECIES[s] for s in self.species]
