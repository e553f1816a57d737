"""Validation metrics of the fine-tuners: ``(outputs, y, weights) -> score``.

``outputs`` are the head's raw outputs (logits, or standardised targets), ``y``
the targets as the loop keeps them (class codes, standardised targets).
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax


def _accuracy(outputs, y, weights):
    return float(np.average(outputs.argmax(axis=1) == y, weights=weights))


def _log_loss(outputs, y, weights):
    from sklearn.metrics import log_loss

    labels = np.arange(outputs.shape[1])
    proba = softmax(outputs.astype(np.float64), axis=1)
    return float(log_loss(y, proba, labels=labels, sample_weight=weights))


def _r2(outputs, y, weights):
    from sklearn.metrics import r2_score

    # R² is unchanged by the target standardisation (per output).
    return float(r2_score(y, outputs, sample_weight=weights))


def _mse(outputs, y, weights):
    return float(np.average(((outputs - y) ** 2).mean(axis=1), weights=weights))


METRICS = {"accuracy": _accuracy, "log_loss": _log_loss, "r2": _r2, "mse": _mse}

# Metrics where a lower value is better (early stopping's direction).
LOWER_IS_BETTER = frozenset({"log_loss", "mse"})
