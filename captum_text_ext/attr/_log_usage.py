"""Captum's ``log_usage`` decorator, typed.

Captum decorates every ``attribute`` with ``captum.log.log_usage``, and :class:`captum.attr.NoiseTunnel` calls
``attribute.__wrapped__`` (to skip the logging of the inner calls), so our ``attribute`` methods wear it too. Captum's
decorator has no return annotation, which would make every method it decorates untyped; this one keeps the method's
signature.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar, cast

from captum.log import log_usage as _captum_log_usage

__all__ = ["log_usage"]

Method = TypeVar("Method", bound=Callable[..., Any])


def log_usage(method: Method) -> Method:
    """Decorate ``method`` as Captum decorates its ``attribute`` methods (``log_usage(part_of_slo=True)``)."""
    return cast(Method, _captum_log_usage(part_of_slo=True)(method))
