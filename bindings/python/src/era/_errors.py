"""The exceptions of the era package: one class per era_status of include/era.h.

Every class derives from ERAError, itself a ValueError, so `except ValueError` keeps working
for callers that do not care which check failed. The message starts with the library's own
text for the status (era_status_string) and goes on with the call and the values involved.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

from . import _era


class ERAError(ValueError):
    """A call into libera was refused. ``status`` is the era_status code (None for checks the
    Python layer makes itself, such as a wrong dtype), ``status_string`` the library's text
    for it."""

    status: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def status_string(self) -> Optional[str]:
        return None if self.status is None else _era.status_string(self.status)


class NullPointerError(ERAError):
    """ERA_ERR_NULL_POINTER: a required array was missing (only reachable through era._era)."""

    status = _era.STATUS["NULL_POINTER"]


class BadShapeError(ERAError):
    """ERA_ERR_BAD_SHAPE: a size is negative, too small for the math (e.g. fewer than 2
    classes for discrete ERA, an empty last axis), or arrays that must match do not."""

    status = _era.STATUS["BAD_SHAPE"]


class BadParameterError(ERAError):
    """ERA_ERR_BAD_PARAMETER: a parameter is NaN or infinite, out of its domain (tau <= e,
    residual < 0, log_std_min >= log_std_max, tol < 0, lo >= hi, a logit scale <= 0),
    unset, or an unknown mode."""

    status = _era.STATUS["BAD_PARAMETER"]


class InfeasibleTargetError(ERAError):
    """ERA_ERR_INFEASIBLE_TARGET: the target entropy cannot be met with these settings."""

    status = _era.STATUS["INFEASIBLE_TARGET"]


class NonFiniteError(ERAError):
    """ERA_ERR_NON_FINITE: an input holds NaN or an infinity (in the LLM passes -inf is a
    mask; NaN, +inf and fully masked rows are errors)."""

    status = _era.STATUS["NON_FINITE"]


class AllocationError(ERAError, MemoryError):
    """ERA_ERR_ALLOCATION: libera could not allocate its scratch memory."""

    status = _era.STATUS["ALLOCATION"]


class InternalError(ERAError):
    """ERA_ERR_INTERNAL: a bug in libera; please report it."""

    status = _era.STATUS["INTERNAL"]


class BadIndexError(ERAError, IndexError):
    """ERA_ERR_BAD_INDEX: a label or response id is out of range, or a label points at a
    masked (-inf) logit."""

    status = _era.STATUS["BAD_INDEX"]


class OverlapError(ERAError):
    """ERA_ERR_OVERLAP: an output array shares memory with an input or another output, other
    than the exact in-place use a function allows. Only reachable through era._era: the
    numpy level allocates fresh outputs."""

    status = _era.STATUS["OVERLAP"]


class DTypeError(ERAError, TypeError):
    """An array has a dtype the kernel does not take. era never casts silently: convert the
    array yourself (e.g. ``x.astype(np.float32)``) if that is what you mean."""


class PeerInputError(ERAError):
    """A collective call (era.torch with a process group) was refused because another process
    of the group refused its input: that process raised the specific error; this one computed
    nothing, and no process is left waiting in a collective."""

    prefix = "input refused on another process"


_BY_STATUS = {
    cls.status: cls
    for cls in (
        NullPointerError,
        BadShapeError,
        BadParameterError,
        InfeasibleTargetError,
        NonFiniteError,
        AllocationError,
        InternalError,
        BadIndexError,
        OverlapError,
    )
}


def error_for_status(status: int, where: str, context: str = "") -> ERAError:
    """The exception for a non-OK era_status returned by the C function behind `where`."""
    cls = _BY_STATUS.get(status, InternalError)
    message = f"{_era.status_string(status)}: {where}"
    if context:
        message += f" ({context})"
    return cls(message, status)


def check(status: int, where: str, context: Union[str, Callable[[], str]] = "") -> None:
    """Raises the exception for `status` unless it is ERA_OK. `context` may be a function
    that makes the text, called only on error (the success path of a hot call formats
    nothing)."""
    if status != 0:
        raise error_for_status(status, where, context() if callable(context) else context)


def python_error(cls: type, where: str, detail: str) -> ERAError:
    """An error found by the Python layer before the call, worded like the library's."""
    status = getattr(cls, "status", None)
    prefix = getattr(cls, "prefix", None) or (_era.status_string(status) if status is not None else "bad dtype")
    return cls(f"{prefix}: {where}: {detail}")
