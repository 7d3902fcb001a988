"""File formats only: spectrum readers (:mod:`~s2s.io.readers`) and extended XYZ (:mod:`~s2s.io.extxyz`)."""

from s2s.io.extxyz import environments_to_extxyz, read_extxyz, write_extxyz

__all__ = ["environments_to_extxyz", "read_extxyz", "write_extxyz"]
