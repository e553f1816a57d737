"""Every fine-tuning estimator class, by name, registered when the class is defined.

:func:`sktransfer.finetune.load` finds the class a saved folder names here, so
the saving and loading code needs no import of the estimator modules (and they
none of it at import time).
"""

from __future__ import annotations

ESTIMATORS: dict[str, type] = {}


def register(cls: type) -> type:
    """Add a public estimator class (called by the base class for every subclass)."""
    if not cls.__name__.startswith("_"):
        ESTIMATORS[cls.__name__] = cls
    return cls


def estimator_class(name) -> type | None:
    """The registered class called ``name``, or None."""
    import sktransfer.finetune  # noqa: F401 - defines (and so registers) the built-in classes

    return ESTIMATORS.get(name) if isinstance(name, str) else None
