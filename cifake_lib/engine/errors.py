"""The engine's error types, importable without torch (the command line catches them)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A file that is not a cifake checkpoint, or one that does not fit this run."""


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be loaded; the message says how to fix it."""
