"""Checks shared by the families that take ``model.options`` (one-line ``ValueError`` messages)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def reject_unknown_options(family: str, unknown: Mapping[str, object], allowed: Sequence[str]) -> None:
    """Raises if ``unknown`` (the options a trunk builder did not take) is not empty."""
    if unknown:
        names = ", ".join(repr(name) for name in sorted(unknown))
        raise ValueError(f"{family}: unknown option {names}; allowed: {', '.join(sorted(allowed))}")


def image_shape(family: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``input_shape`` as ``(channels, height, width)``, or a ``ValueError``."""
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"the {family} family needs image inputs [C, H, W], got shape {input_shape}")
    channels, height, width = input_shape
    return channels, height, width
