"""Argument checks shared by the dataset loaders."""

from __future__ import annotations

from typing import Sequence

__all__ = ["check_choice"]


def check_choice(argument: str, value: object, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``.

    Args:
        argument: the argument's name, used in the message.
        value: the value received.
        choices: the accepted values.

    Raises:
        ValueError: naming the argument, the accepted values and the value received.
    """
    if value not in choices:
        expected = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{argument} must be one of {expected}; got {value!r}")
