"""The ``n_threads`` parameter: torch's intra-op threads while our code runs.

torch's thread count is process-wide state that belongs to the user. An
estimator never changes it in ``__init__`` or ``fit``; with ``n_threads`` set,
``transform`` sets it on entry and restores the previous value on exit, also
when the call raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def resolve_n_threads(n_threads: int | None) -> int | None:
    """``None`` (leave torch alone), a positive count, or -1 / -k (all cores but k-1)."""
    if n_threads is None:
        return None
    if n_threads > 0:
        return int(n_threads)
    import joblib

    # joblib counts the cores this process may use (affinity, cgroup quotas).
    return max(1, joblib.cpu_count() + 1 + int(n_threads))


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch threads, then restore the previous count."""
    count = resolve_n_threads(n_threads)
    if count is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    if count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
