"""Keep other libraries' progress bars and log messages out of our calls.

Loading a sentence-transformers model draws transformers' "Loading weights"
bar, saving one its "Writing model shards" bar, and the Hub client logs each
source it tries. Inside :func:`quiet_libraries` those libraries' own switches
are turned off (transformers' and huggingface_hub's progress bars; the
``transformers``, ``sentence_transformers``, ``huggingface_hub`` and ``timm``
loggers raised to ERROR); on the way out, also after an exception, every
switch is put back as it was, so the user's settings hold for the rest of the
process. Our own bars (``progress=``, ``verbose=``) are plain tqdm bars and are
not affected.

The switches are process-wide, so the state is reference-counted under a lock:
with several threads (joblib's threading backend) inside at once, the first to
enter saves the user's settings and the last to leave restores them.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import threading
from collections.abc import Iterator

__all__ = ["quiet_libraries"]

# Loggers of the libraries we call; their messages are about their own
# machinery (sources tried, files written), not about the user's data.
_LOGGERS = ("transformers", "sentence_transformers", "huggingface_hub", "timm")

_lock = threading.Lock()
_depth = 0
# What was changed, by switch name, and the value to restore on the last exit.
_saved: dict[str, object] = {}


def _hub_module():
    """huggingface_hub's progress-bar module, when huggingface_hub is imported."""
    if "huggingface_hub" not in sys.modules:
        return None
    try:
        return importlib.import_module("huggingface_hub.utils.tqdm")
    except ImportError:  # pragma: no cover - a huggingface_hub without bar switches
        return None


def _silence_new() -> None:
    """Turn off the switches of the libraries imported by now that are not off yet.

    Called on every entry (under the lock): a library first imported inside an
    outer block is silenced by the next inner one. A library that is not
    imported is left alone; callers import it before entering.
    """
    transformers_logging = sys.modules.get("transformers.utils.logging")
    if transformers_logging is not None and "transformers-bars" not in _saved:
        # transformers' switch turns huggingface_hub's bars off too; the Hub's
        # own state is saved first so that it is restored exactly.
        _save_hub_bars()
        enabled = transformers_logging.is_progress_bar_enabled()
        _saved["transformers-bars"] = enabled
        if enabled and not _hub_bars_forced_on():
            transformers_logging.disable_progress_bar()
    _save_hub_bars()
    hub = _hub_module()
    if hub is not None and not _hub_bars_forced_on() and not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
    for name in _LOGGERS:
        key = f"logger:{name}"
        if key in _saved or name not in sys.modules:
            continue
        if name == "transformers" and transformers_logging is not None:
            transformers_logging.get_verbosity()  # configures its logger first, if not yet
        logger = logging.getLogger(name)
        _saved[key] = logger.level
        if logger.getEffectiveLevel() < logging.ERROR:
            logger.setLevel(logging.ERROR)


def _save_hub_bars() -> None:
    hub = _hub_module()
    if hub is not None and "hub-bars" not in _saved:
        _saved["hub-bars"] = dict(getattr(hub, "progress_bar_states", {}))


def _hub_bars_forced_on() -> bool:
    """``HF_HUB_DISABLE_PROGRESS_BARS=0``: the user asked for the Hub's bars, with priority."""
    hub = _hub_module()
    return hub is not None and getattr(hub, "HF_HUB_DISABLE_PROGRESS_BARS", None) is False


def _restore() -> None:
    """Put every saved switch back (the last thread out calls this)."""
    if "transformers-bars" in _saved:
        transformers_logging = sys.modules["transformers.utils.logging"]
        if _saved["transformers-bars"] != transformers_logging.is_progress_bar_enabled():
            if _saved["transformers-bars"]:
                transformers_logging.enable_progress_bar()
            else:
                transformers_logging.disable_progress_bar()
    if "hub-bars" in _saved:
        states = getattr(_hub_module(), "progress_bar_states", None)
        if isinstance(states, dict):
            # The per-group states as they were (the public switches reset them).
            states.clear()
            states.update(_saved["hub-bars"])
    for key, level in _saved.items():
        if key.startswith("logger:"):
            logging.getLogger(key.removeprefix("logger:")).setLevel(level)
    _saved.clear()


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence third-party progress bars and logging for the duration of the block.

    Import the libraries the block uses before entering: one that is not
    imported yet is left as it is.

    Examples
    --------
    >>> import logging
    >>> from sktransfer._quiet import quiet_libraries
    >>> logger = logging.getLogger("timm")
    >>> before = logger.level
    >>> with quiet_libraries():
    ...     pass
    >>> logger.level == before
    True
    """
    global _depth
    with _lock:
        _depth += 1
        try:
            _silence_new()
        except BaseException:
            _leave()
            raise
    try:
        yield
    finally:
        with _lock:
            _leave()


def _leave() -> None:
    global _depth
    _depth -= 1
    if _depth == 0:
        _restore()
