"""Shared pytest fixtures for the s2s tests."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

# alpha-quartz at ambient conditions: Levien, Prewitt & Weidner, Am. Mineral. 65, 920 (1980):
# a = 4.9137 Å, c = 5.4047 Å, Si x = 0.4697, O (x, y, z) = (0.4135, 0.2669, 0.1191).
# Written in pymatgen's P3_121 (No. 152) setting, where Si 3a is (x, 0, 1/3) and the O 6c
# representative becomes (1 - x, 1 - x + y, z).  Gives Si-O = 1.604 and 1.613 Å, 2.649 g/cm^3;
# tests/test_environment.py checks it against pymatgen's bundled AFLOW prototype A2B_hP9_152_c_a.
QUARTZ_A, QUARTZ_C = 4.9137, 5.4047
QUARTZ_SI_X = 0.4697
QUARTZ_O_XYZ = (0.4135, 0.2669, 0.1191)


def make_alpha_quartz() -> Structure:
    """alpha-quartz (SiO2, P3_121, 3 Si + 6 O per cell) from published lattice/Wyckoff data."""
    ox, oy, oz = QUARTZ_O_XYZ
    return Structure.from_spacegroup(
        152,
        Lattice.hexagonal(QUARTZ_A, QUARTZ_C),
        ["Si", "O"],
        [[QUARTZ_SI_X, 0.0, 1.0 / 3.0], [1.0 - ox, 1.0 - ox + oy, oz]],
    )


@pytest.fixture(scope="session")
def _alpha_quartz_master() -> Structure:
    return make_alpha_quartz()


@pytest.fixture
def alpha_quartz(_alpha_quartz_master: Structure) -> Structure:
    """A fresh copy of alpha-quartz per test (Structure is mutable)."""
    return _alpha_quartz_master.copy()
