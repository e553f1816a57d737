"""The domain-shift diagnostic and the honest comparison of adaptation methods."""

from __future__ import annotations

import numpy as np
import pytest

from sktransfer.adapt import AdaptationComparison, compare_adaptation, domain_shift
from sktransfer.adapt._compare import _import_skada
from sktransfer.exceptions import InvalidInputError

skada = _import_skada()


def toy_domains(n: int = 150, *, shift: bool, seed: int = 0):
    """A 2-class Gaussian source and a target that is a rotated, scaled, moved copy (or not)."""
    rng = np.random.default_rng(seed)

    def draw(m):
        y = np.arange(m) % 2
        X = rng.normal(0, 1, (m, 4))
        X[:, 0] += np.where(y == 1, 1.5, -1.5)
        return X, y

    Xs, ys = draw(n)
    Xt, yt = draw(n)
    if shift:
        angle = np.pi / 3
        rotation = np.eye(4)
        rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        Xt = Xt @ rotation * [2.5, 0.5, 1.0, 1.0] + 3.0
    X = np.vstack([Xs, Xt])
    domains = np.r_[np.ones(n, dtype=int), -np.ones(n, dtype=int)]
    return X, np.r_[ys, yt], domains


def test_domain_shift_sees_a_shift_and_no_shift():
    X, _, domains = toy_domains(shift=True)
    shifted = domain_shift(X, domains)
    assert shifted.auc > 0.95 and shifted.mmd_pvalue < 0.01 and shifted.verdict == "strong"
    X, _, domains = toy_domains(shift=False)
    same = domain_shift(X, domains)
    assert same.auc < 0.6 and same.mmd_pvalue > 0.05 and same.verdict == "none"
    assert abs(same.mmd2) < shifted.mmd2 / 10
    assert "AUC" in str(same)


def test_domain_shift_encodes_raw_samples_with_a_frozen_encoder(tiny_text_model):
    from sktransfer import TextEncoder

    texts = [f"a great movie {w}" for w in "abcdefghij"] + [
        f"the cat sat {w}" for w in "abcdefghij"
    ]
    domains = np.r_[np.ones(10, dtype=int), -np.ones(10, dtype=int)]
    encoder = TextEncoder(tiny_text_model, adapt="contrastive", progress=False, cache=None)
    shift = domain_shift(texts, domains, encoder=encoder, cv=2, n_permutations=20)
    assert shift.n_source == shift.n_target == 10
    assert shift.auc > 0.9  # two vocabularies: plainly apart
    with pytest.raises(InvalidInputError, match="pass encoder=TextEncoder"):
        domain_shift(texts, domains)


def test_domain_shift_errors():
    X, _, domains = toy_domains(20, shift=False)
    with pytest.raises(InvalidInputError, match="one integer domain per sample"):
        domain_shift(X, domains[:5])
    with pytest.raises(InvalidInputError, match="at least cv=5 samples of each side"):
        domain_shift(X, np.ones(len(X), dtype=int))


def test_coral_helps_on_a_rotated_scaled_copy():
    X, y, domains = toy_domains(shift=True)
    methods = {"source only": None, "CORAL": skada.CORALAdapter()}
    result = compare_adaptation(X, y, domains, methods=methods, cv=2, oracle_cv=3)
    assert isinstance(result, AdaptationComparison)
    coral = result._row("features", "CORAL")["target_accuracy"]
    assert result.source_only_accuracy < 0.8
    assert coral >= result.source_only_accuracy + 0.1
    assert result.oracle_accuracy > 0.9
    assert set(result.selected) == set(result.scorers)
    assert "target oracle" in str(result)


def test_coral_does_not_hurt_without_a_shift():
    X, y, domains = toy_domains(shift=False)
    result = compare_adaptation(X, y, domains, methods={"CORAL": skada.CORALAdapter()}, cv=2)
    assert [row["method"] for row in result.rows] == ["source only", "CORAL"]
    coral = result._row("features", "CORAL")["target_accuracy"]
    assert coral >= result.source_only_accuracy - 0.02


def test_compare_adaptation_errors():
    X, y, domains = toy_domains(20, shift=False)
    with pytest.raises(InvalidInputError, match="needs source samples .* and target samples"):
        compare_adaptation(X, y, np.ones(len(y), dtype=int))
    with pytest.raises(InvalidInputError, match="source labels of at least 2 classes"):
        compare_adaptation(X, np.where(domains > 0, 0, y), domains)
    with pytest.raises(InvalidInputError, match="not numeric features"):
        compare_adaptation(["a text"] * len(y), y, domains)


def test_importing_the_helpers_leaves_metadata_routing_as_it_was():
    import sklearn

    assert sklearn.get_config()["enable_metadata_routing"] is False
