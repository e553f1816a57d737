"""The embedding cache: every distinct sample is encoded once.

An encoder's ``cache`` parameter names a store:

``"memory"`` (default)
    One in-process store shared by every encoder and all their clones, bounded
    in size; least recently used entries go first (see :func:`set_memory_limit`).
a directory path
    An SQLite database in that directory, shared by every process that points
    at it (``GridSearchCV(n_jobs=...)``, reruns of a script). Writes are
    transactions, every vector carries a checksum, and a vector whose checksum,
    width or dtype is wrong is recomputed, never served. Processes that work on
    the same samples at the same time *claim* them first, so each sample is
    encoded by one process while the others wait for its result (a bounded
    time: a stopped process never blocks the others). A damaged file is moved
    aside, a foreign one refused, a read-only one read but not written.
``None``
    No cache.

A cache key is the hash of (model fingerprint, sample content), where the
model fingerprint covers a hash of the weight files that were loaded (for a
Hub or Hugging Face cache model: those of the resolved snapshot) and every
parameter that changes the output (see ``sktransfer._fingerprint``).

This module is the public API: :func:`cache_info`, :func:`clear_cache`,
:func:`set_memory_limit` and :class:`CacheStats`. The stores themselves live in
``sktransfer._stores``.
"""

from __future__ import annotations

import numpy as np

# The stores and their registry; re-exported for existing callers.
from sktransfer._stores import (  # noqa: F401
    DB_NAME,
    CacheStats,
    MemoryStore,
    SQLiteStore,
    _memory_store,
    open_store,
)

__all__ = [
    "CacheStats",
    "cache_info",
    "clear_cache",
    "set_memory_limit",
    "open_store",
]


def set_memory_limit(megabytes: float) -> None:
    """Bound the in-memory cache to ``megabytes`` (least recently used go first).

    Parameters
    ----------
    megabytes : float
        The new limit, a finite number >= 0; 0 keeps nothing. The default is 1024.

    Raises
    ------
    TypeError
        If ``megabytes`` is not a real number (a string, a bool).
    ValueError
        If ``megabytes`` is negative, NaN or infinite.

    Examples
    --------
    >>> from sktransfer.cache import set_memory_limit
    >>> set_memory_limit(256)
    >>> set_memory_limit(1024)
    """
    import math
    import numbers

    if isinstance(megabytes, (bool, np.bool_)) or not isinstance(megabytes, numbers.Real):
        raise TypeError(
            f"set_memory_limit: megabytes must be a number, got {megabytes!r} "
            f"({type(megabytes).__name__})."
        )
    if not math.isfinite(megabytes) or megabytes < 0:
        raise ValueError(
            f"set_memory_limit: megabytes must be a finite number >= 0, got {megabytes!r}."
        )
    _memory_store.limit_bytes = int(megabytes * 2**20)
    _memory_store.put_many({})  # evict down to the new limit


def cache_info(cache="memory") -> CacheStats:
    """Hits, misses and size of a store.

    Parameters
    ----------
    cache : "memory" or path, default="memory"
        The same value as an encoder's ``cache`` parameter.

    Returns
    -------
    CacheStats

    Examples
    --------
    >>> from sktransfer.cache import cache_info
    >>> info = cache_info()
    >>> info.hits >= 0 and info.misses >= 0
    True
    """
    store = open_store(cache)
    if store is None:
        raise ValueError("cache=None has no store to describe.")
    return store.info()


def clear_cache(cache="memory") -> None:
    """Delete every vector in a store and reset its counts.

    Parameters
    ----------
    cache : "memory" or path, default="memory"

    Raises
    ------
    CacheError
        If the disk store is read-only.

    Examples
    --------
    >>> from sktransfer.cache import clear_cache
    >>> clear_cache()
    """
    store = open_store(cache)
    if store is not None:
        store.clear()
