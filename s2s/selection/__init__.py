"""Learned confidence model that picks the best of K generated samples (issue 32)."""
