"""The statistics of the transfer report, checked against a hand computation.

The corrected resampled t-test (Nadeau & Bengio 2003) on J paired split scores:
d = candidate - reference, t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)),
J - 1 degrees of freedom. The numbers below are worked out by hand (quantiles
from a printed t-table), and every deliberately broken variant of the test -- no
correction, population variance, normal quantiles, wrong degrees of freedom --
fails the same check.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sktransfer.report import _stats
from sktransfer.report._stats import HELPS, NEGATIVE, NO_EVIDENCE, compare_paired, verdict_of

# Five paired splits (5-fold CV: n_test / n_train = 1/4).
CANDIDATE = [0.84, 0.85, 0.81, 0.84, 0.86]
REFERENCE = [0.80, 0.80, 0.80, 0.80, 0.80]
# By hand: d = [.04, .05, .01, .04, .06]; mean .04; squared deviations 0, 1e-4, 9e-4, 0,
# 4e-4 sum to 1.4e-3, / (5 - 1) = 3.5e-4; corrected variance (1/5 + 1/4) * 3.5e-4 =
# 1.575e-4; standard error 0.0125499; t = 0.04 / 0.0125499 = 3.18728.
# t-table, 4 degrees of freedom: t(0.975) = 2.776, so the 95% CI is
# 0.04 -+ 2.776 * 0.0125499 = [0.00516, 0.07484]; two-sided p between 0.02
# (t = 3.747) and 0.05 (t = 2.776): 0.0333.
HAND = {"difference": 0.04, "t": 3.18728, "ci_low": 0.00516, "ci_high": 0.07484, "p": 0.0333}


def check_against_hand_computation(compare) -> None:
    c = compare(CANDIDATE, REFERENCE, test_train_ratio=0.25, confidence=0.95)
    assert c.difference == pytest.approx(HAND["difference"], abs=1e-9)
    assert c.t == pytest.approx(HAND["t"], abs=1e-4)
    assert c.ci_low == pytest.approx(HAND["ci_low"], abs=2e-4)
    assert c.ci_high == pytest.approx(HAND["ci_high"], abs=2e-4)
    assert c.p_value == pytest.approx(HAND["p"], abs=5e-4)
    assert c.n_splits == 5


def test_corrected_t_test_matches_the_hand_computation():
    check_against_hand_computation(compare_paired)


def _broken(kind):
    """compare_paired with one deliberate mistake."""
    from scipy import stats

    def compare(a, b, *, test_train_ratio, confidence=0.95):
        d = np.asarray(a) - np.asarray(b)
        n = d.size
        ratio = 0.0 if kind == "uncorrected" else test_train_ratio
        var = d.var(ddof=0 if kind == "population variance" else 1)
        se = math.sqrt((1 / n + ratio) * var)
        df = n if kind == "n degrees of freedom" else n - 1
        t = d.mean() / se
        if kind == "normal quantiles":
            q, p = stats.norm.ppf(0.5 + confidence / 2), 2 * stats.norm.sf(abs(t))
        else:
            q, p = stats.t.ppf(0.5 + confidence / 2, df), 2 * stats.t.sf(abs(t), df)
        return _stats.Comparison(d.mean(), d.mean() - q * se, d.mean() + q * se, t, p, n, 0.95)

    return compare


@pytest.mark.parametrize(
    "kind", ["uncorrected", "population variance", "normal quantiles", "n degrees of freedom"]
)
def test_the_hand_computation_catches_a_broken_test(kind):
    with pytest.raises(AssertionError, match="comparison failed"):
        check_against_hand_computation(_broken(kind))


def test_the_correction_turns_a_spurious_win_into_no_evidence():
    # Overlapping training sets make split scores move together: the plain paired t-test
    # over splits calls this a clear win; corrected for the overlap, it is not.
    rng = np.random.default_rng(3)
    reference = rng.uniform(0.7, 0.8, size=10)
    candidate = reference + np.array(
        [0.02, -0.01, 0.03, 0.0, 0.025, -0.005, 0.02, 0.01, 0.0, 0.015]
    )
    naive = compare_paired(candidate, reference, test_train_ratio=0.0)
    corrected = compare_paired(candidate, reference, test_train_ratio=0.25)
    assert naive.verdict == HELPS
    assert corrected.verdict == NO_EVIDENCE
    assert corrected.ci_high - corrected.ci_low > naive.ci_high - naive.ci_low


@pytest.mark.parametrize(
    ("shift", "verdict"), [(0.05, HELPS), (-0.05, NEGATIVE), (0.0, NO_EVIDENCE)]
)
def test_verdict_follows_the_interval(shift, verdict):
    reference = np.array([0.70, 0.72, 0.71, 0.69, 0.70, 0.73, 0.71, 0.70, 0.72, 0.71])
    noise = np.array([0.004, -0.003, 0.002, -0.004, 0.001, 0.003, -0.002, 0.0, -0.001, 0.0])
    c = compare_paired(reference + shift + noise, reference, test_train_ratio=0.25)
    assert c.verdict == verdict
    assert (c.ci_low > 0) == (verdict == HELPS)
    assert (c.ci_high < 0) == (verdict == NEGATIVE)


def test_identical_differences_on_every_split():
    same = compare_paired([0.8, 0.7, 0.9], [0.8, 0.7, 0.9], test_train_ratio=0.5)
    assert (same.difference, same.ci_low, same.ci_high, same.p_value) == (0, 0, 0, 1)
    assert same.verdict == NO_EVIDENCE
    better = compare_paired([0.75, 0.5, 1.0], [0.5, 0.25, 0.75], test_train_ratio=0.5)
    assert better.t == math.inf and better.p_value == 0 and better.verdict == HELPS


def test_sentences_give_the_difference_in_the_scores_units():
    c = compare_paired([0.70, 0.72, 0.69, 0.71], [0.80, 0.81, 0.80, 0.82], test_train_ratio=0.25)
    text = verdict_of(c, scoring="accuracy", reference="TF-IDF words")
    assert text.startswith(
        "negative transfer: the from-scratch model (TF-IDF words) is better by 0.103 accuracy"
    )
    assert f"(95% CI {-c.ci_high:.3f} to {-c.ci_low:.3f})" in text


@pytest.mark.parametrize(
    ("a", "b", "ratio", "message"),
    [
        ([0.1, 0.2], [0.1], 0.25, "same length"),
        ([0.1], [0.2], 0.25, "at least 2 splits"),
        ([0.1, 0.2], [0.1, 0.3], -1, "test_train_ratio must be >= 0"),
    ],
)
def test_bad_arguments_are_refused(a, b, ratio, message):
    with pytest.raises(ValueError, match=message):
        compare_paired(a, b, test_train_ratio=ratio)
