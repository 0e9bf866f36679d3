"""How the device path reports bad input without synchronising with the host.

libera (CPU tensors) checks every value before it writes anything and raises at once. The
device path (era.torch.native: CUDA tensors, or ``backend="native"``) cannot read a value
back without stalling the stream, so it computes per-row fault codes on the device, replaces
the outputs of a faulty row by NaN, and hands the codes to :func:`record`, which by the
setting of :func:`set_device_checks` either

- ``"raise"``: reads them at once (one host synchronisation per call) and raises the era
  error of the first faulty row, as libera would; or
- ``"deferred"``: folds them into a per-device flag word on the device, without a sync;
  :func:`check_device_errors` (one sync, e.g. once per training step) raises the error it
  records, naming the calls since the last check.

``"auto"`` (the default) is ``"raise"`` for CPU tensors, where reading a value costs no sync,
and ``"deferred"`` on every other device. Parameter errors (an infeasible target, a bad tau)
depend on no tensor data and always raise at once, before anything runs.
"""

from __future__ import annotations

import threading
from typing import Dict, List, Tuple

import torch

from .. import _formulas as F
from .._errors import error_for_status

MODES = ("auto", "raise", "deferred")
# The statuses a fault code can hold, in the order a deferred check reports them.
_STATUSES = (F.BAD_PARAMETER, F.INFEASIBLE_TARGET, F.BAD_INDEX, F.NON_FINITE)

_lock = threading.Lock()
_mode = "auto"
# device -> (int32 flag word on that device, call sites recorded since the last check)
_pending: Dict[torch.device, Tuple[torch.Tensor, List[str]]] = {}


def set_device_checks(mode: str) -> None:
    """Sets how the device path reports bad input: "auto", "raise" or "deferred" (module
    docstring). Process-wide."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"era.torch.set_device_checks: mode must be one of {MODES}, got {mode!r}")
    _mode = mode


def get_device_checks() -> str:
    """The current setting of set_device_checks."""
    return _mode


def _raises_now(device: torch.device) -> bool:
    return _mode == "raise" or (_mode == "auto" and device.type == "cpu")


def record(faults: torch.Tensor, where: str, context: str = "") -> None:
    """Reports the per-row fault codes of one device-path call (0: row fine, else an
    era_status), by the current setting."""
    if faults.numel() == 0:
        return
    codes = faults.reshape(-1)
    if _raises_now(codes.device):
        first = codes[torch.argmax((codes != 0).to(torch.int32))]
        status = int(first)
        if status:
            raise error_for_status(status, where, context)
        return
    word = torch.zeros((), dtype=torch.int32, device=codes.device)
    for status in _STATUSES:
        word = word | ((codes == status).any().to(torch.int32) << status)
    with _lock:
        pending, sites = _pending.get(codes.device, (None, []))
        _pending[codes.device] = (word if pending is None else pending | word, sites)
        if where not in sites:
            sites.append(where)


def check_device_errors() -> None:
    """Raises the era error that a deferred device check recorded since the last call (and
    forgets it), reading one flag word per device: one host synchronisation. Does nothing
    when every call was fine."""
    with _lock:
        pending = dict(_pending)
        _pending.clear()
    for device, (word, sites) in pending.items():
        value = int(word)
        for status in _STATUSES:
            if value & (1 << status):
                raise error_for_status(
                    status, "era.torch (deferred device check)",
                    f"on {device}, in one of the calls since the last check: {', '.join(sites)}",
                )


__all__ = ["MODES", "set_device_checks", "get_device_checks", "record", "check_device_errors"]
