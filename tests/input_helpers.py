"""Helpers of the input-hardening and fuzz tests: a per-test time limit."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading


class TimeLimitExceeded(AssertionError):
    """Raised in the main thread when a block runs longer than its time limit."""


@contextlib.contextmanager
def time_limit(seconds: int):
    """Fail (instead of hanging) when the block runs longer than ``seconds``.

    Uses ``SIGALRM``, so the block must run in the main thread; a blocking
    system call (``open`` of a FIFO, ``read`` of a device) is interrupted.
    """
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        yield
        return

    def _expired(signum, frame):
        raise TimeLimitExceeded(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def with_time_limit(seconds: int):
    """Decorator form of :func:`time_limit` for a test function."""

    def decorate(test):
        @functools.wraps(test)
        def wrapper(*args, **kwargs):
            with time_limit(seconds):
                return test(*args, **kwargs)

        return wrapper

    return decorate
