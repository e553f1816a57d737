"""transfer_report(sample_domain=...): the domain-shift diagnostic on known shifts."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import FunctionTransformer

from sktransfer import TextEncoder, transfer_report
from sktransfer._base import BaseEncoder
from sktransfer.cli import main
from sktransfer.exceptions import InvalidInputError


def _noise(text: str, k: int) -> float:
    return (zlib.crc32(f"{k}:{text}".encode()) % 10_000) / 10_000


def _domain_features(texts):
    """Column 0 is 3 in target texts ("so," in front), plus noise: a strong known shift."""
    out = np.array([[_noise(t, k) for k in range(4)] for t in texts])
    out[:, 0] += [3.0 if t.startswith("so,") else 0.0 for t in texts]
    return out


def _plain_features(texts):
    """The same noise, blind to the marker: no shift by construction."""
    return np.array([[_noise(t.removeprefix("so, "), k) for k in range(4)] for t in texts])


def shifted_texts(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    target = np.arange(n) % 2 == 1
    words = np.array(["bright", "warm", "fine", "cold", "dull", "grey"])
    texts = [
        ("so, " if t else "") + f"it was {rng.choice(words)} {i}" for i, t in enumerate(target)
    ]
    return texts, y, np.where(target, -1, 1)


def test_a_known_shift_is_found_and_no_shift_is_not():
    texts, y, domains = shifted_texts()
    report = transfer_report(
        texts,
        y,
        candidates={
            "shifted": FunctionTransformer(_domain_features),
            "unshifted": FunctionTransformer(_plain_features),
        },
        sample_domain=domains,
        cv=2,
        n_repeats=1,
        combine=False,
        random_state=0,
    )
    table = report.domain_shift_
    assert list(table.index) == ["shifted", "unshifted"]
    assert table.loc["shifted", "shift"] == "strong"
    assert table.loc["shifted", "auc"] > 0.95
    assert table.loc["shifted", "mmd_pvalue"] < 0.01
    assert table.loc["unshifted", "shift"] == "none"
    assert table.loc["unshifted", "auc"] < 0.65
    assert table.loc["unshifted", "mmd_pvalue"] > 0.05
    assert (table["n_source"] == 40).all() and (table["n_target"] == 40).all()
    results = report.results_
    assert results.loc["shifted", "shift_auc"] == table.loc["shifted", "auc"]
    assert np.isnan(results.loc[report.reference_, "shift_auc"])
    for text in (report.summary(), report.to_markdown(), report.to_html()):
        assert "domain-classifier AUC" in text and "strong" in text
    assert "| unshifted |" in report.to_markdown()


def test_no_domains_no_diagnostic():
    texts, y, _ = shifted_texts(n=40)
    report = transfer_report(
        texts,
        y,
        candidates={"shifted": FunctionTransformer(_domain_features)},
        cv=2,
        n_repeats=1,
        random_state=0,
    )
    assert report.domain_shift_ is None
    assert "shift_auc" not in report.results_.columns
    assert "domain-classifier AUC" not in report.to_markdown()


def test_the_shift_reuses_the_one_encoding_pass(tiny_text_model, monkeypatch):
    texts, y, domains = shifted_texts(n=40)
    full_passes = []
    original = BaseEncoder.transform

    def transform(self, X, *args, **kwargs):
        if len(X) == len(texts):
            full_passes.append(type(self).__name__)
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(BaseEncoder, "transform", transform)
    frame = pd.DataFrame({"text": texts, "label": y, "domain": domains})
    report = transfer_report(
        frame,
        "label",
        column="text",
        candidates=[tiny_text_model],
        sample_domain="domain",
        cv=2,
        n_repeats=1,
        random_state=0,
    )
    assert full_passes == ["TextEncoder"]  # encoded once: for the splits and the shift
    assert list(report.domain_shift_.index) == ["st + LR"]
    # "so, " in front of every target text: the features see the domains apart.
    assert report.domain_shift_.loc["st + LR", "auc"] > 0.9
    assert report.timings_["domain_shift"] >= 0
    monkeypatch.setattr(BaseEncoder, "transform", original)
    expected = TextEncoder(tiny_text_model, cache=None, progress=False).fit(texts)
    from sktransfer.adapt import domain_shift

    direct = domain_shift(expected.transform(texts), domains, cv=2, random_state=0)
    assert report.domain_shift_.loc["st + LR", "auc"] == pytest.approx(direct.auc, abs=0.1)


@pytest.mark.parametrize(
    ("sample_domain", "match"),
    [
        (np.ones(20, dtype=int), "0 target"),
        (np.r_[-np.ones(10), np.ones(9)].astype(int), "has shape"),
        (np.array(["a", "b"] * 10), "must hold integers"),
        ("domain", "needs X to be a pandas DataFrame"),
    ],
)
def test_bad_sample_domain_is_explained(sample_domain, match):
    texts, y, _ = shifted_texts(n=20)
    with pytest.raises(InvalidInputError, match=match):
        transfer_report(texts, y, candidates=None, sample_domain=sample_domain, cv=2)


def test_cli_domain_column_with_named_target(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path / "data"))
    texts, y, domains = shifted_texts(n=40)
    path = tmp_path / "reviews.csv"
    names = np.where(domains < 0, "tweets", "movies")
    pd.DataFrame({"review": texts, "label": y, "source": names}).to_csv(path, index=False)
    from sktransfer.report import _candidates

    monkeypatch.setattr(
        _candidates,
        "pretrained_candidates",
        lambda *a, **k: [
            _candidates._frozen(FunctionTransformer(_domain_features), k["head"], "marker")
        ],
    )
    argv = ["report", str(path), "--text", "review", "--target", "label", "--quiet"]
    argv += ["--cv", "2", "--repeats", "1", "--cache", "memory", "--domain", "source"]
    assert main(argv) == 2
    assert "--target-domain" in capsys.readouterr().err
    assert main([*argv, "--target-domain", "tweet"]) == 2
    assert "no such value" in capsys.readouterr().err
    assert main([*argv, "--target-domain", "tweets"]) == 0
    out = capsys.readouterr().out
    assert "domain-classifier AUC" in out
    assert "40 / 40" not in out and "20 / 20" in out
