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
    return max(1, cpu_count() + 1 + int(n_threads))


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


def decode_ahead(device: str) -> bool:
    """Whether images should be decoded one batch ahead of a torch forward pass on ``device``.

    Decoding ahead overlaps the decoding threads with the forward pass: that
    uses cores the forward pass leaves idle (it runs on a GPU, or on fewer
    torch threads than the process has cores). Where the forward pass already
    runs on every core, the decoding threads can only take turns with torch's
    OpenMP threads, which wait for each other at the end of every operation:
    a thread paused for a decode holds up the others. Decoding each batch
    between forward passes, with every decoding thread, is then faster
    (measured in ``benchmarks.thread_split``): False.

    Examples
    --------
    >>> decode_ahead("cuda:0")
    True
    >>> with torch_threads(1):  # a forward pass on one core leaves the others idle
    ...     decode_ahead("cpu") == (cpu_count() > 1)
    True
    >>> with torch_threads(cpu_count()):
    ...     decode_ahead("cpu")
    False
    """
    if not str(device).startswith("cpu"):
        return True
    import torch

    return torch.get_num_threads() < cpu_count()


def cpu_count() -> int:
    """The cores this process may use (affinity, cgroup quotas), as joblib counts them."""
    import joblib

    return joblib.cpu_count()
