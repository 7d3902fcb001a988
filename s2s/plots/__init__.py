"""Figures, by family."""

from s2s.plots.core import *  # noqa: F401,F403
