"""Paired comparison of two models cross-validated on the same splits.

Scores from the folds of (repeated) k-fold cross-validation are not independent:
the training sets overlap, so the plain paired t-test over folds underestimates
the variance of the mean difference and finds "significant" differences far too
often (Dietterich 1998; Nadeau & Bengio 2003). The corrected resampled t-test of
Nadeau & Bengio (2003) inflates the variance by the ratio of test to training
size:

    t = mean(d) / sqrt((1 / J + n_test / n_train) * var(d)),   J - 1 degrees of freedom,

where ``d`` holds the ``J`` per-split differences (J = folds x repeats) and
``var`` is the sample variance (``ddof=1``). Bouckaert & Frank (2004) found it,
over repeated cross-validation, the most replicable of the common tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "compare_paired", "verdict_of"]

HELPS = "transfer helps"
NO_EVIDENCE = "no evidence either way"
NEGATIVE = "negative transfer"


@dataclass(frozen=True)
class Comparison:
    """The difference ``candidate - reference`` over paired splits, and its test.

    Attributes
    ----------
    difference : float
        Mean over the splits of candidate score minus reference score.
    ci_low, ci_high : float
        Confidence interval of the difference (corrected resampled t).
    t : float
        The corrected t statistic (``inf`` with the difference's sign when every
        split gave the same non-zero difference; 0 when all differences are 0).
    p_value : float
        Two-sided p-value of ``t`` on ``n_splits - 1`` degrees of freedom.
    n_splits : int
        Number of paired splits (folds x repeats).
    confidence : float
        Level of the interval, e.g. 0.95.
    """

    difference: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    n_splits: int
    confidence: float

    @property
    def verdict(self) -> str:
        """ "transfer helps", "negative transfer" or "no evidence either way"."""
        if self.ci_low > 0:
            return HELPS
        if self.ci_high < 0:
            return NEGATIVE
        return NO_EVIDENCE


def compare_paired(
    candidate_scores,
    reference_scores,
    *,
    test_train_ratio: float,
    confidence: float = 0.95,
) -> Comparison:
    """Corrected resampled t-test (Nadeau & Bengio 2003) of paired split scores.

    Parameters
    ----------
    candidate_scores, reference_scores : array-like of shape (n_splits,)
        Scores of the two models on the same splits, in the same order (higher
        is better).
    test_train_ratio : float
        Mean over the splits of (test samples / training samples); 0.25 for
        5-fold cross-validation. 0 gives the plain (uncorrected) paired t-test,
        which is only valid for independent test sets.
    confidence : float, default=0.95
        Level of the confidence interval; a verdict other than "no evidence"
        needs the interval to exclude 0, i.e. p < 1 - confidence.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> from sktransfer.report._stats import compare_paired
    >>> c = compare_paired([0.82, 0.85, 0.80, 0.84, 0.83], [0.78, 0.80, 0.79, 0.80, 0.77],
    ...                    test_train_ratio=0.25)
    >>> round(c.difference, 3), c.verdict
    (0.04, 'transfer helps')
    """
    a = np.asarray(candidate_scores, dtype=float)
    b = np.asarray(reference_scores, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"Paired scores need two 1-D arrays of the same length; got shapes "
            f"{a.shape} and {b.shape}."
        )
    n = a.size
    if n < 2:
        raise ValueError(f"A paired test needs at least 2 splits; got {n}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")
    if test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be >= 0; got {test_train_ratio!r}.")
    from scipy import stats

    d = a - b
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    se = math.sqrt((1.0 / n + test_train_ratio) * var)
    df = n - 1
    if se > 0:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), df))
    else:  # every split gave the same difference
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Comparison(mean, mean - half, mean + half, t, p, n, confidence)


def verdict_of(comparison: Comparison, *, scoring: str, reference: str) -> str:
    """One sentence: the verdict, the difference and its interval, in the score's units.

    Examples
    --------
    >>> from sktransfer.report._stats import Comparison, verdict_of
    >>> c = Comparison(-0.042, -0.06, -0.024, -5.1, 0.001, 10, 0.95)
    >>> print(verdict_of(c, scoring="accuracy", reference="TF-IDF words"))
    negative transfer: the from-scratch model (TF-IDF words) is better by 0.042 accuracy (95% CI 0.024 to 0.060)
    """  # noqa: E501
    level = f"{100 * comparison.confidence:g}% CI"
    d, lo, hi = comparison.difference, comparison.ci_low, comparison.ci_high
    if comparison.verdict == NEGATIVE:
        return (
            f"{NEGATIVE}: the from-scratch model ({reference}) is better by {-d:.3f} "
            f"{scoring} ({level} {-hi:.3f} to {-lo:.3f})"
        )
    if comparison.verdict == HELPS:
        return (
            f"{HELPS}: better than the from-scratch model ({reference}) by {d:.3f} "
            f"{scoring} ({level} {lo:.3f} to {hi:.3f})"
        )
    return (
        f"{NO_EVIDENCE}: difference to the from-scratch model ({reference}) {d:+.3f} "
        f"{scoring} ({level} {lo:+.3f} to {hi:+.3f})"
    )
