"""Domain adaptation: the encoders' body adaptation and their place in skada's pipelines."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from sktransfer import ImageEncoder, TextEncoder
from sktransfer._optional import optional_available
from sktransfer.cache import cache_info
from sktransfer.exceptions import InvalidInputError
from tests.conftest import text_samples

# Importing skada switches scikit-learn's metadata routing on for the whole
# process; the other test modules run with the setting they expect.
_ROUTING = sklearn.get_config()["enable_metadata_routing"]
import skada  # noqa: E402
from skada.metrics import PredictionEntropyScorer  # noqa: E402
from skada.model_selection import SourceTargetShuffleSplit  # noqa: E402

sklearn.set_config(enable_metadata_routing=_ROUTING)


@pytest.fixture(autouse=True)
def _metadata_routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def pattern_images(n: int, seed: int, contrast: float = 1.0, offset: float = 0.0):
    """32x32 noisy images; class 1 is brighter on the left half, class 0 on the right.

    ``contrast`` / ``offset`` corrupt a copy (the target domain): the class
    pattern stays, the intensity statistics move.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = []
    for label in labels:
        image = rng.normal(128, 20, (32, 32, 3))
        image[:, :16] += 50 if label else 0
        image[:, 16:] += 0 if label else 50
        image = (image - 128) * contrast + 128 + offset
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(images), labels


def shifted_images(n: int = 32):
    """Source, corrupted target (contrast 0.5, +60 brightness), and skada's fit inputs."""
    Xs, ys = pattern_images(n, 0)
    Xt, yt = pattern_images(n, 1, contrast=0.5, offset=60)
    X = np.concatenate([Xs, Xt])
    domains = np.r_[np.ones(n, dtype=int), -np.ones(n, dtype=int)]
    y_masked = np.r_[ys, -np.ones(n, dtype=int)]
    return Xs, ys, Xt, yt, X, y_masked, domains


def image_encoder(**params):
    return ImageEncoder(
        "test_resnet", pretrained=False, image_size=32, progress=False, **{"cache": None, **params}
    )


def text_encoder(model, **params):
    return TextEncoder(model, batch_size=8, progress=False, **{"cache": None, **params})


def changed_keys(encoder, reference) -> set[str]:
    import torch

    before = reference.model_.state_dict()
    return {
        key
        for key, value in encoder.model_.state_dict().items()
        if not torch.equal(value, before[key])
    }


# ------------------------------------------------------------------ AdaBN / TENT
def test_adabn_changes_only_batchnorm_statistics_and_repairs_a_toy_corruption():
    Xs, ys, Xt, yt, X, y_masked, domains = shifted_images()
    frozen = image_encoder().fit(X)
    adapted = image_encoder(adapt="batchnorm").fit(X, y_masked, sample_domain=domains)

    changed = changed_keys(adapted, frozen)
    assert changed and all(key.endswith(BN_BUFFERS) for key in changed)
    assert adapted.adaptation_["n_target"] == len(Xt)

    def target_accuracy(encoder):
        features = encoder.transform(Xs, sample_domain=np.ones(len(Xs), dtype=int))
        head = LogisticRegression(max_iter=2000).fit(features, ys)
        return head.score(encoder.transform(Xt), yt)

    assert target_accuracy(frozen) <= 0.6  # the corruption breaks the source-only model
    assert target_accuracy(adapted) >= 0.9


def test_source_rows_use_source_statistics_and_target_rows_the_target_ones():
    _, _, _, _, X, y_masked, domains = shifted_images(8)
    adapted = image_encoder(adapt="batchnorm").fit(X, y_masked, sample_domain=domains)
    mixed = adapted.transform(X, sample_domain=domains)
    as_target = adapted.transform(X)
    np.testing.assert_array_equal(mixed[domains < 0], as_target[domains < 0])
    assert not np.allclose(mixed[domains > 0], as_target[domains > 0])
    # the same answer through skada's pipeline helper: fit_transform routes the domains
    np.testing.assert_allclose(
        image_encoder(adapt="batchnorm").fit_transform(X, y_masked, sample_domain=domains),
        mixed,
        rtol=1e-5,
        atol=1e-6,
    )
    restored = pickle.loads(pickle.dumps(adapted))  # both bodies travel with the pickle
    assert "_network" not in restored.__dict__
    np.testing.assert_array_equal(restored.transform(X, sample_domain=domains), mixed)


def test_tent_trains_only_batchnorm_tensors():
    _, _, _, _, X, y_masked, domains = shifted_images(8)
    frozen = image_encoder().fit(X)
    adapted = image_encoder(adapt="tent", adapt_steps=2, batch_size=4, random_state=0)
    adapted.fit(X, y_masked, sample_domain=domains)
    changed = changed_keys(adapted, frozen)
    assert any(key.endswith(".weight") for key in changed)  # BN scale moved
    bn_names = {
        name
        for name, module in frozen.model_.named_modules()
        if "BatchNorm" in type(module).__name__ or "BatchNormAct" in type(module).__name__
    }
    assert all(key.rsplit(".", 1)[0] in bn_names for key in changed)
    assert adapted.adaptation_["steps"] == 2


def test_adapted_body_has_its_own_cache_keys_and_unadapted_keys_are_unchanged():
    _, _, _, _, X, y_masked, domains = shifted_images(8)
    plain = image_encoder(cache="memory").fit(X)
    with_params = image_encoder(cache="memory", adapt=None, adapt_steps=3, random_state=1).fit(X)
    adapted = image_encoder(cache="memory", adapt="batchnorm").fit(
        X, y_masked, sample_domain=domains
    )
    assert with_params.model_fingerprint_ == plain.model_fingerprint_
    assert adapted.model_fingerprint_ != plain.model_fingerprint_
    cached = adapted.transform(X)
    np.testing.assert_array_equal(
        cached, image_encoder(adapt="batchnorm").fit(X, sample_domain=domains).transform(X)
    )
    assert not np.allclose(cached, plain.transform(X))


def test_a_model_without_batchnorm_is_a_clear_error():
    _, _, _, _, X, y_masked, domains = shifted_images(4)
    encoder = ImageEncoder("test_vit", pretrained=False, progress=False, adapt="batchnorm")
    with pytest.raises(InvalidInputError, match="has none .*LayerNorm"):
        encoder.fit(X, y_masked, sample_domain=domains)


# ------------------------------------------------------------- contrastive text
def test_contrastive_pass_adapts_the_text_body(tiny_text_model):
    texts, _ = text_samples(24)
    domains = np.where(np.arange(24) < 12, 1, -1)
    frozen = text_encoder(tiny_text_model).fit(texts)
    adapted = text_encoder(tiny_text_model, adapt="contrastive", adapt_steps=3, random_state=0)
    adapted.fit(texts, sample_domain=domains)
    assert adapted.adaptation_ == {
        **adapted.adaptation_,
        "method": "contrastive",
        "n_target": 12,
        "steps": 3,
    }
    assert changed_keys(adapted, frozen)
    assert adapted.model_fingerprint_ != frozen.model_fingerprint_
    assert not np.allclose(adapted.transform(texts), frozen.transform(texts), atol=1e-4)
    # seeded: a second fit gives the same body, so the same cache keys
    again = text_encoder(tiny_text_model, adapt="contrastive", adapt_steps=3, random_state=0)
    assert again.fit(texts, sample_domain=domains).model_fingerprint_ == adapted.model_fingerprint_
    restored = pickle.loads(pickle.dumps(adapted))
    np.testing.assert_array_equal(restored.transform(texts), adapted.transform(texts))


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, r"fit\(X, sample_domain=\.\.\.\)"),
        ({"sample_domain": np.ones(8, dtype=int)}, "no target samples"),
        ({"sample_domain": np.ones(3, dtype=int)}, "sample_domain has shape"),
        ({"sample_domain": np.array(["s"] * 4 + ["t"] * 4)}, "must hold integers"),
    ],
)
def test_missing_or_bad_domains_are_clear_errors(kwargs, message):
    X, _ = pattern_images(8, 0)
    with pytest.raises(InvalidInputError, match=message):
        image_encoder(adapt="batchnorm").fit(X, **kwargs)


def test_tent_without_source_labels_is_a_clear_error():
    X, _ = pattern_images(8, 0)
    domains = np.r_[np.ones(4, dtype=int), -np.ones(4, dtype=int)]
    with pytest.raises(InvalidInputError, match="no source labels"):
        image_encoder(adapt="tent").fit(X, sample_domain=domains)
    with pytest.raises(InvalidInputError, match="at least 2 classes"):
        image_encoder(adapt="tent").fit(X, np.zeros(8, dtype=int), sample_domain=domains)


def test_contrastive_needs_two_distinct_target_texts(tiny_text_model):
    texts = ["a great movie", "a great movie", "an awful film"]
    with pytest.raises(ValueError, match="at least 2 distinct target texts"):
        text_encoder(tiny_text_model, adapt="contrastive").fit(
            texts, sample_domain=np.array([-1, -1, 1])
        )


# ------------------------------------------------------------ metadata routing
def test_frozen_encoder_in_a_skada_pipeline_encodes_each_text_once(tiny_text_model):
    texts, y = text_samples(20)
    domains = np.where(np.arange(20) % 4 < 2, 1, -1)
    y_masked = np.where(domains < 0, -1, y)
    pipe = skada.make_da_pipeline(
        text_encoder(tiny_text_model, cache="memory"), skada.CORALAdapter(), LogisticRegression()
    )
    pipe.fit(texts, y_masked, sample_domain=domains)
    assert cache_info("memory").misses == len(set(texts))
    target = [t for t, d in zip(texts, domains, strict=True) if d < 0]
    pipe.predict(target, sample_domain=domains[domains < 0])
    pipe.predict(target)  # no domains: all target
    assert cache_info("memory").misses == len(set(texts))


def test_sample_domain_reaches_the_encoder_through_a_skada_pipeline(tiny_text_model):
    texts, y = text_samples(20)
    domains = np.where(np.arange(20) < 10, 1, -1)
    pipe = skada.make_da_pipeline(
        text_encoder(tiny_text_model, adapt="contrastive", adapt_steps=1, random_state=0),
        skada.SubspaceAlignmentAdapter(n_components=4),
        LogisticRegression(),
    )
    pipe.fit(texts, np.where(domains < 0, -1, y), sample_domain=domains)
    assert pipe[0].get_estimator().adaptation_["n_target"] == 10


def test_sample_domain_reaches_the_encoder_through_an_sklearn_pipeline(tiny_text_model):
    texts, y = text_samples(20)
    domains = np.where(np.arange(20) < 14, 2, -1)
    pipe = Pipeline(
        [
            ("encoder", text_encoder(tiny_text_model, adapt="contrastive", adapt_steps=1)),
            ("head", LogisticRegression()),
        ]
    )
    pipe.fit(texts, y, sample_domain=domains)
    assert pipe.named_steps["encoder"].adaptation_["n_target"] == 6


def test_grid_search_selects_between_body_adaptations_with_a_skada_scorer():
    _, _, _, _, X, y_masked, domains = shifted_images(8)
    pipe = skada.make_da_pipeline(
        image_encoder(), skada.SubspaceAlignmentAdapter(n_components=4), LogisticRegression()
    )
    search = GridSearchCV(
        pipe,
        {"imageencoder__adapt": [None, "batchnorm"]},
        cv=SourceTargetShuffleSplit(n_splits=2, random_state=0),
        scoring=PredictionEntropyScorer(),
    )
    search.fit(X, y_masked, sample_domain=domains)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_[0].get_estimator().adapt in (None, "batchnorm")
    adapted = [
        search.best_estimator_[0].get_estimator().adaptation_["n_target"]
        if search.best_params_["imageencoder__adapt"]
        else 8
    ]
    assert adapted == [8]


def test_grid_search_with_an_sklearn_splitter_routes_the_domains_of_each_fold(tiny_text_model):
    texts, y = text_samples(24)
    domains = np.where(np.arange(24) % 3 == 0, -1, 1)
    pipe = Pipeline([("encoder", text_encoder(tiny_text_model)), ("head", LogisticRegression())])
    search = GridSearchCV(
        pipe, {"encoder__adapt": [None, "contrastive"], "encoder__adapt_steps": [1]}, cv=KFold(3)
    )
    search.fit(texts, y, sample_domain=domains)
    assert search.best_estimator_.named_steps["encoder"].fit
    if search.best_params_["encoder__adapt"] == "contrastive":
        assert search.best_estimator_.named_steps["encoder"].adaptation_["n_target"] == 8


@pytest.mark.skipif(
    not optional_available("onnxruntime") or not optional_available("onnxscript"),
    reason="onnxruntime / onnxscript are not installed",
)
def test_onnx_backend_runs_the_adapted_and_the_source_bodies(tmp_path, monkeypatch):
    # Each body in use (the target-adapted one, and the source-statistics one for
    # source rows) has its own export; a single export would serve one body's
    # numbers for the other's rows.
    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path))
    _, _, _, _, X, y_masked, domains = shifted_images(8)
    torch_enc = image_encoder(adapt="batchnorm", precision="float32")
    expected = torch_enc.fit(X, y_masked, sample_domain=domains).transform(X, sample_domain=domains)
    onnx_enc = image_encoder(adapt="batchnorm", backend="onnx")
    got = onnx_enc.fit(X, y_masked, sample_domain=domains).transform(X, sample_domain=domains)
    # float rounding only (a wrong body's rows differ by whole units here)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    assert not np.allclose(got[domains > 0], onnx_enc.transform(X)[domains > 0], atol=1e-2)


@pytest.mark.skipif(
    not optional_available("onnxruntime") or not optional_available("onnxscript"),
    reason="onnxruntime / onnxscript are not installed",
)
def test_an_adapted_onnx_encoder_exports_only_the_adapted_body(tmp_path, monkeypatch):
    from sktransfer import _onnx

    monkeypatch.setenv("SKTRANSFER_DATA", str(tmp_path))
    exports = []
    real = _onnx._export

    def counted(*args, **kwargs):
        exports.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_onnx, "_export", counted)
    _onnx.clear_runners()  # none kept from another test's bodies
    _, _, _, _, X, y_masked, domains = shifted_images(8)
    target = [x for x, d in zip(X, domains, strict=True) if d < 0]
    enc = image_encoder(adapt="batchnorm", backend="onnx")
    enc.fit(X, y_masked, sample_domain=domains)
    assert len(exports) == 1  # made in fit, for the adapted body
    got = enc.transform(target)
    assert len(exports) == 1  # the export fit made is the one transform runs
    expected = image_encoder(adapt="batchnorm", precision="float32")
    expected = expected.fit(X, y_masked, sample_domain=domains).transform(target)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
