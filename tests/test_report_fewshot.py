"""transfer_report(fewshot=...): the few-shot classifier as an opt-in candidate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from sktransfer import FewShotTextClassifier, TextEncoder, transfer_report
from sktransfer.cache import cache_info
from sktransfer.cli import main
from sktransfer.exceptions import InvalidInputError
from tests.conftest import text_samples


def test_fewshot_candidate_starts_every_fit_from_the_pretrained_weights(tiny_text_model):
    X, y = text_samples(24)
    before = TextEncoder(tiny_text_model, cache=None, progress=False).fit(X).transform(X)
    report = transfer_report(
        X,
        y,
        candidates=[tiny_text_model],
        fewshot={"pairs_per_sample": 4, "batch_size": 8},
        combine=False,
        cv=2,
        n_repeats=2,
        random_state=0,
    )
    row = report.results_.loc["st few-shot"]
    assert row["kind"] == "few-shot"
    assert row["verdict"] in ("transfer helps", "no evidence either way", "negative transfer")
    estimator = report.estimators_["st few-shot"]
    assert isinstance(estimator, FewShotTextClassifier)
    assert estimator.get_params()["pairs_per_sample"] == 4
    assert estimator.get_params()["model"] == tiny_text_model
    # Each split, refitted alone in the opposite order, scores what the report found:
    # no split started from a body tuned by another.
    for i in reversed(range(len(report.splits_))):
        train, test = report.splits_[i]
        fitted = clone(estimator).fit([X[j] for j in train], y[train])
        score = fitted.score([X[j] for j in test], y[test])
        assert score == pytest.approx(report.scores_.loc[i, "st few-shot"], abs=1e-12)
    # The tuned bodies wrote nothing into the cache and changed no shared network: the
    # frozen encoder (through the cache and without it) gives the pretrained features.
    assert cache_info().entries == len(set(X))
    cached = TextEncoder(tiny_text_model, progress=False).fit(X).transform(X)
    after = TextEncoder(tiny_text_model, cache=None, progress=False).fit(X).transform(X)
    np.testing.assert_array_equal(before, after)
    np.testing.assert_allclose(cached, before, rtol=1e-6, atol=1e-7)


def test_fewshot_needs_text_classification(tiny_text_model):
    X, _ = text_samples(12)
    with pytest.raises(InvalidInputError, match="few-shot classifier classifies texts"):
        transfer_report(X, np.linspace(0, 1, 12), candidates=[tiny_text_model], fewshot=True)


def test_fewshot_parameters_are_checked(tiny_text_model):
    X, y = text_samples(12)
    with pytest.raises(InvalidInputError, match="'epoch' is not a parameter"):
        transfer_report(X, y, candidates=[tiny_text_model], fewshot={"epoch": 2})


def test_cli_fewshot_flag_asks_for_the_candidate(tmp_path, monkeypatch, capsys):
    import pandas as pd

    import sktransfer.report

    X, y = text_samples(12)
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"review": X, "label": y}).to_csv(path, index=False)
    asked = {}

    class Report:
        def summary(self):
            return "Verdict: stub"

    def fake(*args, **kwargs):
        asked.update(kwargs)
        return Report()

    monkeypatch.setattr(sktransfer.report, "transfer_report", fake)
    argv = ["report", str(path), "--text", "review", "--target", "label", "--quiet"]
    assert main([*argv, "--fewshot", "--cache", "memory"]) == 0
    assert asked["fewshot"] is True
    assert main([*argv, "--cache", "memory"]) == 0
    assert asked["fewshot"] is False
    assert capsys.readouterr().out.count("Verdict: stub") == 2
