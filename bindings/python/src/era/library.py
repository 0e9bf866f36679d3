"""libera's thread setting and versions."""

from __future__ import annotations

from . import _era
from ._errors import check

__all__ = ["set_num_threads", "get_num_threads", "version", "abi_version"]


def set_num_threads(n: int) -> None:
    """Sets how many threads one libera call may use to split its rows (the calling thread
    is one of them): n >= 1 sets it, 0 restores the default (the number of online
    processors). Results are bit-for-bit identical whatever the setting.

    Raises:
        BadParameterError if n < 0 or n > 1024.
    """
    n = int(n)
    if not -(2**31) <= n < 2**31:
        check(_era.STATUS["BAD_PARAMETER"], "era.set_num_threads", f"n={n}")
    check(_era.set_num_threads(n), "era.set_num_threads", f"n={n}; allowed: 0 (default) to 1024")


def get_num_threads() -> int:
    """The current thread setting (>= 1)."""
    return int(_era.get_num_threads())


def version() -> str:
    """The version of the libera library loaded, "MAJOR.MINOR.PATCH"."""
    return _era.version_string()


def abi_version() -> int:
    """The ABI version of the libera library loaded (era.h's ERA_ABI_VERSION)."""
    return int(_era.abi_version())
