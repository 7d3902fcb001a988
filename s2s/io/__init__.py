"""File formats only.

* spectra: :mod:`~s2s.io.readers` (:func:`read_spectrum`, :func:`detect_format`, the one suffix table
  :data:`SUFFIXES`), one module per format: :mod:`~s2s.io.text`, :mod:`~s2s.io.msa`,
  :mod:`~s2s.io.castep`, :mod:`~s2s.io.gpaw`, :mod:`~s2s.io.arrays` (NumPy arrays of spectra);
  :mod:`~s2s.io.raw` holds what they share (:class:`RawSpectrum`, :class:`SpectrumFileError`);
* environments: extended XYZ (:mod:`~s2s.io.extxyz`).
"""

from s2s.io.arrays import SpectrumArray, read_array
from s2s.io.extxyz import environments_to_extxyz, read_extxyz, write_extxyz
from s2s.io.raw import RawSpectrum, SpectrumFileError
from s2s.io.readers import SUFFIXES, detect_format, read_spectrum, spectrum_files

__all__ = [
    "SUFFIXES",
    "RawSpectrum",
    "SpectrumArray",
    "SpectrumFileError",
    "detect_format",
    "environments_to_extxyz",
    "read_array",
    "read_extxyz",
    "read_spectrum",
    "spectrum_files",
    "write_extxyz",
]
