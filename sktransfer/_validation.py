"""Small input checks shared by every modality."""

from __future__ import annotations

import math


def one_column_tags(tags):
    """sklearn tags of an estimator whose X is one column of samples, fitted before use."""
    tags.input_tags.two_d_array = False
    tags.requires_fit = True
    return tags


def is_missing(value) -> bool:
    """Whether ``value`` is a missing entry: None, a float NaN, pandas.NA or NaT.

    Examples
    --------
    >>> is_missing(None), is_missing(float("nan")), is_missing("")
    (True, True, False)
    """
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    # pandas.NA / NaT without importing pandas.
    return type(value).__name__ in {"NAType", "NaTType"}
