"""Point warnings at the user's line, however deep in the library they are raised."""

from __future__ import annotations

import sys

# Top-level modules whose frames a warning skips: the library itself and the
# machinery that calls it (scikit-learn's wrappers and meta-estimators, joblib's
# sequential backend, context managers).
_INTERNAL = frozenset({"sktransfer", "sklearn", "joblib", "contextlib"})


def outside_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside the library.

    Call it from the function that calls :func:`warnings.warn`: the warning then
    names the user's ``transform`` / ``fit`` line (or their pipeline's), not a
    line of sktransfer, whichever path led there.
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in _INTERNAL:
        frame = frame.f_back
        level += 1
    return level
