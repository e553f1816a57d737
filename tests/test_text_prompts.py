"""TextEncoder: prompts (E5's "query: ", BGE's instruction), model kwargs, remote code."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sktransfer import TextEncoder
from sktransfer.exceptions import InvalidInputError

TEXTS = ["a great movie", "an awful film", "i like it"]


def _encoder(model, **kwargs):
    return TextEncoder(model, progress=False, cache=None, **kwargs)


@pytest.fixture
def model_with_prompts(tiny_text_model, tmp_path):
    """The tiny model with stored prompts, "query" being its default."""
    folder = tmp_path / "with-prompts"
    shutil.copytree(tiny_text_model, folder)
    config_file = folder / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    config["prompts"] = {"query": "query: ", "passage": "passage: "}
    config["default_prompt_name"] = "query"
    config_file.write_text(json.dumps(config))
    return str(folder)


def test_prompt_is_read_in_front_of_every_text(tiny_text_model):
    plain = _encoder(tiny_text_model).fit()
    prompted = _encoder(tiny_text_model, prompt="query: ").fit()
    by_hand = plain.transform(["query: " + t for t in TEXTS])
    np.testing.assert_allclose(prompted.transform(TEXTS), by_hand, rtol=1e-5, atol=1e-6)
    assert not np.allclose(prompted.transform(TEXTS), plain.transform(TEXTS))
    assert prompted.prompt_ == "query: " and plain.prompt_ is None
    assert prompted.model_fingerprint_ != plain.model_fingerprint_


def test_prompt_name_and_the_models_default_prompt(model_with_prompts, tiny_text_model):
    reference = _encoder(tiny_text_model).fit()
    passage = _encoder(model_with_prompts, prompt_name="passage").fit()
    np.testing.assert_allclose(
        passage.transform(TEXTS),
        reference.transform(["passage: " + t for t in TEXTS]),
        rtol=1e-5,
        atol=1e-6,
    )
    default = _encoder(model_with_prompts).fit()  # the model's default_prompt_name
    assert default.prompt_ == "query: "
    no_prompt = _encoder(model_with_prompts, prompt="").fit()  # "" switches it off
    assert no_prompt.prompt_ is None
    np.testing.assert_allclose(
        no_prompt.transform(TEXTS), reference.transform(TEXTS), rtol=1e-5, atol=1e-6
    )


def test_unknown_prompt_name_lists_the_models_prompts(model_with_prompts):
    with pytest.raises(InvalidInputError, match=r"'summary' is not one of.*'query'.*'passage'"):
        _encoder(model_with_prompts, prompt_name="summary").fit()


def test_prompt_and_prompt_name_together_are_refused(model_with_prompts):
    with pytest.raises(ValueError, match=r"both prompt='q: ' and prompt_name='query'"):
        _encoder(model_with_prompts, prompt="q: ", prompt_name="query").fit()


def test_prompt_tokens_count_toward_the_limit(tiny_text_model):
    import warnings

    from sktransfer.exceptions import TruncationWarning

    text = " ".join(["great"] * 46)  # 46 tokens + 2 special ones: exactly the limit of 48
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        _encoder(tiny_text_model).fit().transform([text])
    with pytest.warns(TruncationWarning, match=r"1 text was longer"):
        _encoder(tiny_text_model, prompt="a movie ").fit().transform([text])


def test_model_kwargs_and_trust_remote_code_reach_sentence_transformers(
    tiny_text_model, monkeypatch
):
    import sentence_transformers

    seen = []
    original = sentence_transformers.SentenceTransformer

    def recording(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", recording)
    _encoder(tiny_text_model).fit()
    assert "trust_remote_code" not in seen[-1] and "model_kwargs" not in seen[-1]
    _encoder(
        tiny_text_model, model_kwargs={"attn_implementation": "eager"}, trust_remote_code=True
    ).fit()
    assert seen[-1]["model_kwargs"] == {"attn_implementation": "eager"}
    assert seen[-1]["trust_remote_code"] is True


def test_loading_options_at_their_defaults_keep_the_cache_keys(tiny_text_model):
    explicit = _encoder(
        tiny_text_model, prompt=None, prompt_name=None, model_kwargs=None, trust_remote_code=False
    ).fit()
    params = explicit._output_params()
    assert not {"prompt", "prompt_name", "model_kwargs", "trust_remote_code"} & set(params)
    tuned = _encoder(tiny_text_model, model_kwargs={"attn_implementation": "eager"}).fit()
    assert tuned.model_fingerprint_ != explicit.model_fingerprint_


def test_an_encoder_pickled_before_these_parameters_loads(tiny_text_model):
    import pickle

    fitted = _encoder(tiny_text_model).fit()
    expected = fitted.transform(TEXTS)
    state = fitted.__getstate__()
    for name in ("prompt", "prompt_name", "model_kwargs", "trust_remote_code", "prompt_"):
        state.pop(name, None)
    state.pop("_prompt_tokens", None)
    old = TextEncoder.__new__(TextEncoder)
    old.__dict__.update(state)  # what unpickling an older version's encoder gives
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.get_params()["trust_remote_code"] is False
    np.testing.assert_array_equal(loaded.transform(TEXTS), expected)
