"""The ``s2s`` command line: ``train``, ``sample``, ``evaluate`` (:mod:`~s2s.cli.main`), ``predict``
(:mod:`~s2s.cli.predict`) and ``train-forward`` (:mod:`~s2s.cli.forward`).  Thin: parse, then call the library."""

from s2s.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
