"""glibc's allocator thresholds, raised once per process for large tensors.

glibc serves allocations above ``M_MMAP_THRESHOLD`` (dynamic, at most 32 MiB
by default) with fresh ``mmap`` calls and gives them back with ``munmap`` on
free. A CNN forward pass at batch 32 / 224 px allocates activation buffers of
50-150 MiB, so every batch maps new memory and touches it page by page: the
page faults cost more than the convolutions. Raising the mmap threshold (and
the trim threshold, so freed memory at the top of the heap is kept for the next
batch) lets the buffers be reused.

This is process-wide state, so the rules are:

- it is applied lazily, on the first ``transform`` of an encoder or ``fit`` of a
  fine-tuning estimator on a CPU, never on import;
- a threshold the user set (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
  or the matching ``GLIBC_TUNABLES`` entry) is left exactly as it is;
- ``SKTRANSFER_TUNE_MALLOC=0`` in the environment turns it off entirely;
- it only ever happens on Linux with glibc; elsewhere nothing is done.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Mapping

OPT_OUT_ENV = "SKTRANSFER_TUNE_MALLOC"

# (mallopt parameter number, environment variable, GLIBC_TUNABLES name, value)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
SETTINGS = {
    "mmap_threshold": (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 512 * 2**20),
    "trim_threshold": (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 1024 * 2**20),
}

_lock = threading.Lock()
_applied: dict[str, int] | None = None


def _user_set(name: str, env_var: str, environ: Mapping[str, str]) -> bool:
    if env_var in environ:
        return True
    return f"glibc.malloc.{name}" in environ.get("GLIBC_TUNABLES", "")


def plan_malloc_tuning(environ: Mapping[str, str], *, is_glibc: bool) -> dict[str, int]:
    """The thresholds to raise, as ``{name: bytes}``; empty when nothing should change.

    Parameters
    ----------
    environ : mapping
        The process environment (``os.environ``).
    is_glibc : bool
        Whether the C library is glibc (``mallopt`` exists and means this).

    Examples
    --------
    >>> sorted(plan_malloc_tuning({}, is_glibc=True))
    ['mmap_threshold', 'trim_threshold']
    >>> sorted(plan_malloc_tuning({"MALLOC_MMAP_THRESHOLD_": "65536"}, is_glibc=True))
    ['trim_threshold']
    >>> plan_malloc_tuning({"SKTRANSFER_TUNE_MALLOC": "0"}, is_glibc=True)
    {}
    """
    if not is_glibc:
        return {}
    if environ.get(OPT_OUT_ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        return {}
    return {
        name: value
        for name, (_, env_var, value) in SETTINGS.items()
        if not _user_set(name, env_var, environ)
    }


def _is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _mallopt(param: int, value: int) -> bool:
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)))
    except (OSError, AttributeError):
        return False


def tune_malloc() -> dict[str, int]:
    """Raise glibc's thresholds once per process (see the module docstring).

    Returns
    -------
    dict
        What was applied in this process, ``{name: bytes}`` (empty if nothing).
    """
    global _applied
    if _applied is not None:
        return _applied
    with _lock:
        if _applied is None:
            plan = plan_malloc_tuning(os.environ, is_glibc=_is_glibc())
            _applied = {
                name: value for name, value in plan.items() if _mallopt(SETTINGS[name][0], value)
            }
    return _applied
