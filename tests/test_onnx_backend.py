"""``backend="onnx"`` / ``"openvino"``: the forward pass exported once, run by another runtime.

Every check of what is computed runs with ``cache=None`` and compares against the
torch forward pass of the same weights in float32.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import sktransfer  # noqa: E402
from sktransfer import _onnx  # noqa: E402
from sktransfer._optional import optional_available  # noqa: E402
from sktransfer.exceptions import BackendError, PrecisionWarning  # noqa: E402
from tests.conftest import image_samples, text_samples  # noqa: E402
from tests.onnx_helpers import (  # noqa: E402, F401
    by_runtime,
    copy_exports,
    fresh_runners,
    make_exports,
)

# Texts of different lengths: batches of 3 have different padded lengths, and
# the last batch holds one text.
TEXTS = [
    "a great movie",
    "i love this film and the book was very good fun",
    "bad",
    "the cat sat on the mat and it was not boring at all i like it",
    "an awful movie",
    "superb",
    "i hate this film",
]


def _text(model, **params):
    return sktransfer.TextEncoder(model, cache=None, progress=False, batch_size=3, **params)


def _image(weights, **params):
    return sktransfer.ImageEncoder(
        "test_efficientnet",
        weights=weights,
        image_size=32,
        batch_size=5,
        cache=None,
        progress=False,
        **params,
    )


@pytest.fixture(scope="module")
def _made_exports(tmp_path_factory, tiny_text_model, tiny_image_weights):
    """The exports of ``_text`` (truncating and chunking) and ``_image``, made once."""
    return make_exports(
        tmp_path_factory.mktemp("exports"),
        lambda: _text(tiny_text_model, backend="onnx").fit(),
        lambda: _text(tiny_text_model, backend="onnx", long_texts="chunk").fit(),
        lambda: _image(tiny_image_weights, backend="onnx").fit(),
    )


@pytest.fixture
def exported(_made_exports, tmp_path):
    """The test's data home starts with copies of those exports.

    For tests that are not about making, storing or refusing an export: their
    fits find it on disk and check it against torch, as in a later process.
    """
    copy_exports(_made_exports, tmp_path / "data")


@by_runtime
@pytest.mark.usefixtures("exported")
def test_text_onnx_gives_the_torch_float32_embeddings(tiny_text_model, backend):
    torch_out = _text(tiny_text_model, precision="float32").fit_transform(TEXTS)
    encoder = _text(tiny_text_model, backend=backend)
    onnx_out = encoder.fit_transform(TEXTS)
    assert onnx_out.shape == torch_out.shape and onnx_out.dtype == np.float32
    np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-5)
    # The rows are not all alike: a constant output would pass a loose check.
    assert np.linalg.norm(onnx_out[0] - onnx_out[1]) > 1e-3


@by_runtime
@pytest.mark.usefixtures("exported")
def test_text_onnx_chunks_long_texts_like_torch(tiny_text_model, backend):
    long_text = " ".join(["i love this film and the book was very good fun"] * 12)
    texts = [long_text, "bad"]
    expected = _text(tiny_text_model, precision="float32", long_texts="chunk").fit_transform(texts)
    got = _text(tiny_text_model, backend=backend, long_texts="chunk").fit_transform(texts)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@by_runtime
@pytest.mark.usefixtures("exported")
def test_image_onnx_gives_the_torch_float32_features(tiny_image_weights, backend):
    images, _ = image_samples(11)
    expected = _image(tiny_image_weights, precision="float32").fit_transform(images)
    got = _image(tiny_image_weights, backend=backend).fit_transform(images)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.linalg.norm(got[0] - got[1]) > 1e-4


def test_the_export_is_written_once_beside_a_folder_cache(tiny_text_model, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    encoder = sktransfer.TextEncoder(tiny_text_model, cache=str(cache), backend="onnx").fit()
    files = list((cache / "onnx").glob("*/model.onnx"))
    assert len(files) == 1
    first = encoder.transform(TEXTS)

    # A new process (no runner in memory) reads the file and never exports again.
    _onnx.clear_runners()
    sktransfer.cache.clear_cache()

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(_onnx, "_export", no_export)
    again = _text(tiny_text_model, backend="onnx").set_params(cache=str(cache)).fit()
    assert again._runner().source == str(files[0])
    np.testing.assert_array_equal(again.transform(TEXTS), first)
    assert not [p for p in (cache / "onnx").iterdir() if p.name.startswith(".")]


def test_without_a_folder_cache_the_export_goes_to_the_data_home(tiny_text_model, tmp_path):
    _text(tiny_text_model, backend="onnx").fit()
    assert len(list((tmp_path / "data" / "onnx").glob("*/model.onnx"))) == 1


def test_weights_without_a_content_hash_are_exported_in_memory(tiny_text_model, tmp_path):
    encoder = _text(tiny_text_model, precision="float32").fit()
    made = _onnx.runner(
        encoder._body(),
        encoder._adapter,
        encoder.model_fingerprint_,
        cache=None,
        threads=1,
        on_disk=False,
    )
    assert made.source == "memory"
    assert not (tmp_path / "data" / "onnx").exists()
    batch = next(iter(encoder._adapter.inference_batches(TEXTS, 4)))[1]
    np.testing.assert_allclose(
        made(batch).numpy(), encoder._body()(batch).detach().numpy(), atol=1e-5
    )


@by_runtime
def test_an_export_with_a_fixed_sequence_length_is_refused(tiny_text_model, monkeypatch, backend):
    # The mistake this guards against: an export whose sequence axis was fixed
    # to the example's length runs the example and fails (or differs) elsewhere.
    from sktransfer._adapters.text import TextAdapter

    monkeypatch.setattr(TextAdapter, "onnx_dynamic_axes", (0,))
    with pytest.raises(BackendError, match="another shape|does not compute"):
        _text(tiny_text_model, backend=backend).fit()


def test_an_export_that_computes_other_numbers_is_refused(tiny_text_model, monkeypatch):
    real_call = _onnx.OnnxRunner.__call__

    def off_by_a_little(self, batch):
        out = real_call(self, batch)
        out[:, 0] += 1.0
        return out

    monkeypatch.setattr(_onnx.OnnxRunner, "__call__", off_by_a_little)
    with pytest.raises(BackendError, match=r"smallest cosine 0\.\d+ < 0\.9999"):
        _text(tiny_text_model, backend="onnx").fit()


def test_an_export_failure_names_the_cause_and_the_way_out(tiny_text_model, monkeypatch):
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("\x1b[96mUnsupported operator\x1b[0m aten::foo\nmore lines")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(BackendError) as info:
        _text(tiny_text_model, backend="onnx").fit()
    message = str(info.value)
    assert "RuntimeError: Unsupported operator aten::foo)" in message
    assert "backend='torch'" in message and "\x1b" not in message


@by_runtime
def test_onnx_computes_in_float32_auto_without_a_warning(tiny_text_model, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder = _text(tiny_text_model, backend=backend).fit()
    assert encoder.precision_ == "float32"
    if backend == "onnx":
        assert encoder.precision_.reason == "auto: backend='onnx' computes in float32"
    else:  # OpenVINO follows torch's rules (bfloat16 off in the tests: SKTRANSFER_BFLOAT16=0)
        assert encoder.precision_.reason.startswith("auto: ")


@pytest.mark.usefixtures("exported")
def test_onnx_with_bfloat16_asked_warns_and_computes_float32(tiny_text_model):
    with pytest.warns(PrecisionWarning, match="backend='onnx' computes in float32"):
        encoder = _text(tiny_text_model, backend="onnx", precision="bfloat16").fit()
    assert encoder.precision_ == "float32"


@pytest.mark.usefixtures("exported")
def test_onnx_picks_the_cpu_and_refuses_another_device(tiny_text_model, monkeypatch):
    import sktransfer._base as base

    monkeypatch.setattr(base, "resolve_device", lambda d: {"auto": "cuda:0"}.get(d, d))
    assert _text(tiny_text_model, backend="onnx").fit().device_ == "cpu"
    with pytest.raises(ValueError, match="runs on the CPU.*'cuda'.*backend='torch'"):
        _text(tiny_text_model, backend="onnx", device="cuda").fit()


@pytest.mark.usefixtures("exported")
def test_the_backend_is_in_the_cache_key_only_when_not_torch(tiny_text_model):
    torch_enc = _text(tiny_text_model).fit()  # float32 on test machines, as onnx
    onnx_enc = _text(tiny_text_model, backend="onnx").fit()
    assert torch_enc.precision_ == onnx_enc.precision_ == "float32"
    assert "backend" not in torch_enc._output_params()
    assert onnx_enc._output_params()["backend"] == "onnx"
    assert onnx_enc.model_fingerprint_ != torch_enc.model_fingerprint_
    # The torch network is loaded once and shared by both.
    assert onnx_enc._body() is torch_enc._body()


@pytest.mark.usefixtures("exported")
def test_the_memory_cache_never_serves_torch_rows_to_onnx(tiny_text_model):
    torch_enc = sktransfer.TextEncoder(tiny_text_model, precision="float32", progress=False).fit()
    torch_enc.transform(TEXTS)
    onnx_enc = sktransfer.TextEncoder(tiny_text_model, backend="onnx", progress=False).fit()
    onnx_enc.transform(TEXTS)
    assert onnx_enc.cache_info().hits == 0


@by_runtime
@pytest.mark.usefixtures("exported")
def test_an_onnx_encoder_pickles_and_runs_after_unpickling(tiny_text_model, backend):
    encoder = _text(tiny_text_model, backend=backend).fit()
    expected = encoder.transform(TEXTS)
    _onnx.clear_runners()
    restored = pickle.loads(pickle.dumps(encoder))
    assert restored.backend == backend
    np.testing.assert_array_equal(restored.transform(TEXTS), expected)


def test_an_encoder_pickled_before_backend_existed_runs_torch(tiny_text_model):
    encoder = _text(tiny_text_model, precision="float32").fit()
    state = encoder.__getstate__()
    del state["backend"]
    old = sktransfer.TextEncoder.__new__(sktransfer.TextEncoder)
    old.__setstate__(state)
    assert old.backend == "torch"


def test_a_missing_onnxruntime_names_the_extra(tiny_text_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[onnx\]'"):
        _text(tiny_text_model, backend="onnx").fit()


@pytest.mark.usefixtures("exported")
def test_the_backend_is_grid_searchable(tiny_text_model):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y = text_samples(12)
    pipe = make_pipeline(_text(tiny_text_model), LogisticRegression())
    backends = ["torch", "onnx"] + (["openvino"] if optional_available("openvino") else [])
    search = GridSearchCV(pipe, {"textencoder__backend": backends}, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == len(backends)
    with pytest.raises(ValueError, match="backend"):
        _text(tiny_text_model, backend="tensorrt").fit()


@pytest.mark.skipif(not optional_available("openvino"), reason="openvino is not installed")
@pytest.mark.usefixtures("exported")
def test_openvino_computes_float32_even_where_the_cpu_has_bfloat16(tiny_text_model):
    # OpenVINO would run bfloat16 on such CPUs unless told otherwise.
    encoder = _text(tiny_text_model, backend="openvino").fit()
    hint = encoder._runner().compiled.get_property("INFERENCE_PRECISION_HINT")
    assert "float32" in repr(hint)


def test_a_missing_openvino_names_its_extra(tiny_text_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[openvino\]'"):
        _text(tiny_text_model, backend="openvino").fit()


needs_openvino = pytest.mark.skipif(
    not optional_available("openvino"), reason="openvino is not installed"
)


@pytest.fixture
def native_bfloat16(monkeypatch):
    """Pretend the CPU computes bfloat16 natively (tests run with it off)."""
    from sktransfer import _precision

    monkeypatch.delenv("SKTRANSFER_BFLOAT16")
    monkeypatch.setattr(_precision, "native_bfloat16", lambda device: (True, "native (mocked)"))
    return _precision


@needs_openvino
@pytest.mark.usefixtures("exported")
def test_openvino_auto_picks_bfloat16_where_native_and_its_probe_agrees(
    tiny_text_model, native_bfloat16
):
    encoder = _text(tiny_text_model, backend="openvino").fit()
    assert encoder.precision_ == "bfloat16"
    assert "agrees with float32 on the probe batch" in encoder.precision_.reason
    run = encoder._runner()
    assert run.precision == "bfloat16"
    # Where the CPU really has bfloat16, OpenVINO compiled the model for it.
    assert "bfloat16" in repr(run.compiled.get_property("INFERENCE_PRECISION_HINT"))
    exact = _text(tiny_text_model, backend="openvino", precision="float32").fit()
    assert exact.model_fingerprint_ != encoder.model_fingerprint_  # never share cached rows
    out, ref = encoder.transform(TEXTS), exact.transform(TEXTS)
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99


@needs_openvino
@pytest.mark.usefixtures("exported")
def test_openvino_auto_stays_float32_where_its_probe_disagrees(
    tiny_text_model, native_bfloat16, monkeypatch
):
    monkeypatch.setattr(native_bfloat16, "AUTO_MIN_COSINE", 1.5)  # nothing can agree
    encoder = _text(tiny_text_model, backend="openvino").fit()
    assert encoder.precision_ == "float32"
    assert "disagrees" in encoder.precision_.reason
    assert encoder._runner().precision == "float32"


@needs_openvino
@pytest.mark.usefixtures("exported")
def test_openvino_float16_warns_and_computes_float32(tiny_text_model):
    with pytest.warns(PrecisionWarning, match="float16"):
        encoder = _text(tiny_text_model, backend="openvino", precision="float16").fit()
    assert encoder.precision_ == "float32"


@needs_openvino
def test_onnx_and_openvino_share_one_export(tiny_text_model, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    for backend in ("onnx", "openvino"):
        sktransfer.TextEncoder(tiny_text_model, cache=str(cache), backend=backend).fit()
    assert len(list((cache / "onnx").glob("*/model.onnx"))) == 1


def test_onnx_runtime_refuses_bfloat16():
    with pytest.raises(ValueError, match="float32 only"):
        _onnx.runner(None, None, "f", cache=None, threads=1, on_disk=False, precision="bfloat16")


@pytest.mark.usefixtures("exported")
def test_a_damaged_stored_export_is_moved_aside_and_made_again(tiny_text_model, tmp_path):
    first = _text(tiny_text_model, backend="onnx").fit()
    expected = first.transform(TEXTS)
    stored = Path(first._runner().source)
    assert stored.parent.parent == tmp_path / "data" / "onnx"
    stored.write_bytes(stored.read_bytes()[:1000])  # cut short
    _onnx.clear_runners()
    with pytest.warns(UserWarning, match="could not be used.*moved to.*exported again"):
        encoder = _text(tiny_text_model, backend="onnx").fit()
    np.testing.assert_allclose(encoder.transform(TEXTS), expected, atol=1e-6)
    assert stored.is_file() and stored.stat().st_size > 1000
    assert len(list((tmp_path / "data" / "onnx").glob("*.damaged-*"))) == 1


def test_a_backend_set_after_fit_waits_for_the_next_fit(tiny_text_model, tmp_path):
    encoder = _text(tiny_text_model).fit()
    expected = encoder.transform(TEXTS)
    encoder.set_params(backend="onnx")
    np.testing.assert_array_equal(encoder.transform(TEXTS), expected)
    assert encoder.backend_ == "torch"
    assert not (tmp_path / "data" / "onnx").exists()  # nothing exported
    assert encoder.fit().backend_ == "onnx"


@pytest.mark.parametrize("arch", ["test_vit", "test_convnext"])
def test_other_timm_families_export_and_match_torch(arch):
    images, _ = image_samples(5)
    params = {"pretrained": False, "image_size": 32, "cache": None, "progress": False}
    expected = sktransfer.ImageEncoder(arch, precision="float32", **params).fit_transform(images)
    got = sktransfer.ImageEncoder(arch, backend="onnx", **params).fit_transform(images)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_cache_folder_not_made_yet_still_holds_the_export(tiny_text_model, tmp_path):
    # The store makes the folder on first use; the export used to go to the data
    # home when fit ran before that, and was made again beside the cache next time.
    cache = tmp_path / "not-yet" / "cache"
    _text(tiny_text_model, backend="onnx").set_params(cache=str(cache)).fit()
    assert len(list((cache / "onnx").glob("*/model.onnx"))) == 1
    assert not (tmp_path / "data" / "onnx").exists()
