"""Helpers of the input-hardening and fuzz tests: a per-test time limit."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading


class TimeLimitExceeded(AssertionError):
    """Raised in the main thread when a block runs longer than its time limit."""


@contextlib.contextmanager
def time_limit(seconds: int, on_expiry=None):
    """Fail (instead of hanging) when the block runs longer than ``seconds``.

    Uses ``SIGALRM``, so the block must run in the main thread; a blocking
    system call (``open`` of a FIFO, ``read`` of a device) is interrupted.
    ``on_expiry()`` runs first when the time is up: e.g. to release worker
    threads the signal cannot reach, which a thread pool would wait for.
    """
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        yield
        return

    def _expired(signum, frame):
        if on_expiry is not None:
            on_expiry()
        raise TimeLimitExceeded(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(int(seconds))
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def with_time_limit(seconds: int, on_expiry=None):
    """Decorator form of :func:`time_limit` (under ``@given``: a limit per example)."""

    def decorate(test):
        @functools.wraps(test)
        def wrapper(*args, **kwargs):
            with time_limit(seconds, on_expiry):
                return test(*args, **kwargs)

        return wrapper

    return decorate


def release_fifo_readers(path: str, seconds: float = 10.0) -> None:
    """For ``seconds``, keep opening the FIFO ``path`` for writing, in a daemon thread.

    A thread blocked opening it for reading then gets end-of-file and returns.
    """
    import os
    import time

    def release():
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader now
                pass
            time.sleep(0.05)

    threading.Thread(target=release, daemon=True).start()
