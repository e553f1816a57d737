"""CPU inference copies: BatchNorm folded, bfloat16 weights cast once (``_inference``)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sktransfer import ImageEncoder, TextEncoder  # noqa: E402
from sktransfer import _inference as _fold  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_copies():
    _fold.clear()
    yield
    _fold.clear()


def _with_statistics(model, seed: int = 0):
    """``model`` in eval mode with BatchNorm statistics and affine terms far from the identity."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator))
                module.running_var.copy_(torch.rand(n, generator=generator) * 3 + 0.2)
                module.weight.copy_(torch.randn(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator))
    return model.eval()


class ConvNorm(torch.nn.Module):
    """conv -> BatchNorm -> ReLU -> conv (with bias) -> BatchNorm -> pooled."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 6, 3, padding=1, bias=True)
        self.bn2 = torch.nn.BatchNorm2d(6)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(x)).mean(dim=(2, 3))


class NormAfterScaling(ConvNorm):
    """The BatchNorm reads the convolution's output scaled first: not a pair."""

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x) * 2.0 + 1.0))
        return self.bn2(self.conv2(x)).mean(dim=(2, 3))


class ConvReadTwice(ConvNorm):
    """conv1's output feeds bn1 and a residual: folding would change the residual."""

    def forward(self, x):
        y = self.conv1(x)
        x = torch.relu(self.bn1(y)) + y
        return self.bn2(self.conv2(x)).mean(dim=(2, 3))


def _batch():
    return torch.randn(4, 3, 12, 12, generator=torch.Generator().manual_seed(3))


def _norms(model) -> int:
    return sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_pairs_fold_and_the_copy_computes_the_same_float32_numbers():
    model = _with_statistics(ConvNorm())
    folded = _fold.inference_network(model, "float32", _batch)
    assert folded is not model
    assert _norms(folded) == 0 and _norms(model) == 2  # the network itself untouched
    x = torch.randn(5, 3, 9, 14)  # another batch size and shape than the probe's
    with torch.inference_mode():
        expected, got = model(x), folded(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_bfloat16_copy_holds_bfloat16_weights_and_computes_what_autocast_does():
    model = _with_statistics(ConvNorm())
    copy16 = _fold.inference_network(model, "bfloat16", _batch)
    assert copy16.conv1.weight.dtype == torch.bfloat16
    assert model.conv1.weight.dtype == torch.float32
    folded32 = _fold.inference_network(model, "float32", _batch)
    x = _batch()
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        autocast_of_folded = folded32(x).float()
        got = copy16(x).float()
    # The same bfloat16 roundings: autocast casts the folded weights itself.
    np.testing.assert_array_equal(got.numpy(), autocast_of_folded.numpy())


def test_a_norm_that_does_not_read_the_convolution_output_is_not_folded():
    model = _with_statistics(NormAfterScaling())
    folded = _fold.inference_network(model, "float32", _batch)
    # Only the second pair is a real one.
    assert isinstance(folded.bn1, torch.nn.BatchNorm2d)
    assert not isinstance(folded.bn2, torch.nn.BatchNorm2d)
    with torch.inference_mode():
        np.testing.assert_allclose(
            folded(_batch()).numpy(), model(_batch()).numpy(), rtol=1e-5, atol=1e-5
        )


def test_a_fold_that_changes_the_outputs_is_refused():
    model = _with_statistics(ConvReadTwice())
    assert _fold.inference_network(model, "float32", _batch) is model
    copy16 = _fold.inference_network(model, "bfloat16", _batch)
    assert _norms(copy16) == 2 and copy16.conv1.weight.dtype == torch.bfloat16  # cast, not folded


def test_an_unknown_batchnorm_subclass_is_left_alone():
    class OwnNorm(torch.nn.BatchNorm2d):
        def forward(self, x):  # something else than an affine map per channel
            return super().forward(x) ** 2

    model = ConvNorm()
    model.bn1, model.bn2 = OwnNorm(8), OwnNorm(6)
    model = _with_statistics(model)
    assert _fold.inference_network(model, "float32", _batch) is model


def test_a_network_in_training_mode_is_not_folded():
    model = _with_statistics(ConvNorm()).train()
    assert _fold.inference_network(model, "float32", _batch) is model


def test_weights_changed_in_place_give_a_new_copy():
    model = _with_statistics(ConvNorm())
    first = _fold.inference_network(model, "float32", _batch)
    assert _fold.inference_network(model, "float32", _batch) is first  # reused
    with torch.no_grad():
        model.bn1.running_mean.add_(1.0)
    second = _fold.inference_network(model, "float32", _batch)
    assert second is not first
    with torch.inference_mode():
        np.testing.assert_allclose(
            second(_batch()).numpy(), model(_batch()).numpy(), rtol=1e-5, atol=1e-5
        )


def test_other_precisions_run_the_network_itself():
    model = _with_statistics(ConvNorm())
    assert _fold.inference_network(model, "float16", _batch) is model


# ------------------------------------------------------------- ImageEncoder
def _photos():
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    return [p[i * 40 : i * 40 + 260, i * 70 : i * 70 + 330] for p in photos for i in range(3)]


def test_image_encoder_runs_the_folded_copy_with_the_networks_numbers():
    encoder = ImageEncoder(cache=None, precision="float32").fit()
    network = encoder._network
    run = encoder._runner()
    assert run is not network and _norms(run) < _norms(network)
    photos = _photos()
    got = encoder.transform(photos)
    with torch.inference_mode():
        batch = torch.stack([encoder._adapter.eval_transform(_pil(p)) for p in photos])
        expected = network(batch).numpy()  # the timm model itself, NCHW, unfolded
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert encoder.model_ is network  # users get the timm model, not the copy


def _pil(array):
    from PIL import Image

    return Image.fromarray(array)


def test_image_encoder_bfloat16_runs_the_folded_bfloat16_copy(monkeypatch):
    from sktransfer import _precision

    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: float("inf"))
    encoder = ImageEncoder(cache=None, precision="bfloat16").fit()
    run = encoder._runner()
    assert run is not encoder._network
    assert any(
        m.weight.dtype == torch.bfloat16 for m in run.modules() if isinstance(m, torch.nn.Conv2d)
    )
    photos = _photos()
    got = encoder.transform(photos)
    exact = ImageEncoder(cache=None, precision="float32").fit().transform(photos)
    cosine = (got * exact).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(exact, axis=1)
    assert cosine.min() > 0.995


def test_bfloat16_rows_of_the_folded_copy_have_their_own_cache_key(monkeypatch):
    from sktransfer import _precision

    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: float("inf"))
    folded = ImageEncoder(precision="bfloat16").fit()
    exact = ImageEncoder(precision="float32").fit()
    assert folded._fingerprint_params(folded._weights_identity)["conv_bn"] == "folded"
    assert "conv_bn" not in exact._fingerprint_params(exact._weights_identity)
    monkeypatch.setattr(ImageEncoder, "_torch_runner", lambda self, network, precision: network)
    unfolded = ImageEncoder(precision="bfloat16").fit()
    assert unfolded.model_fingerprint_ != folded.model_fingerprint_
    unfolded32 = ImageEncoder(precision="float32").fit()
    assert unfolded32.model_fingerprint_ == exact.model_fingerprint_


def test_auto_precision_probes_what_runs(monkeypatch):
    seen = []
    encoder = ImageEncoder(cache=None, precision="float32").fit()
    original = ImageEncoder._torch_runner

    def spy(self, network, precision):
        run = original(self, network, precision)
        seen.append((precision, run is not network))
        return run

    monkeypatch.setattr(ImageEncoder, "_torch_runner", spy)
    probe = encoder._precision_probe(encoder._network)
    out = probe("bfloat16")
    assert out.shape == (2, encoder.embedding_dim_)
    assert ("bfloat16", True) in seen


def test_not_on_a_gpu():
    encoder = ImageEncoder(cache=None, precision="float32").fit()
    encoder.device_ = "cuda:0"  # what runs there is the network itself
    assert encoder._torch_runner(encoder._network, "float32") is encoder._network


def test_the_environment_switch_turns_it_off_at_fit(monkeypatch):
    monkeypatch.setenv("SKTRANSFER_FOLD_BATCHNORM", "0")
    off = ImageEncoder(cache=None, precision="float32").fit()
    monkeypatch.delenv("SKTRANSFER_FOLD_BATCHNORM")
    # Decided at fit, not at each call: nothing folded (the paddings are still fixed).
    assert _norms(off._runner()) == _norms(off._network)
    assert not _fold.folds_batchnorm(off._runner())
    on = ImageEncoder(cache=None, precision="float32").fit()
    assert _norms(on._runner()) < _norms(on._network)
    assert _fold.folds_batchnorm(on._runner())


# ------------------------------------------------------------------ text
def test_text_bfloat16_copy_computes_exactly_what_autocast_computes(monkeypatch):
    from sktransfer import _precision

    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: float("inf"))
    texts = [
        "a short one",
        "A somewhat longer sentence, with punctuation and Capitals, to fill a batch.",
        "ünïcödé ✓",
        "the movie was great " * 12,
    ]
    encoder = TextEncoder(cache=None, precision="bfloat16", batch_size=3).fit()
    network = encoder._body()
    run = encoder._runner()
    assert run is not network
    linear = [m for m in run.modules() if isinstance(m, torch.nn.Linear)]
    assert linear and all(m.weight.dtype == torch.bfloat16 for m in linear)
    # Only the cast tensors are new: the embeddings and norms are the network's own.
    shared = {id(t) for t in network.parameters()} & {id(t) for t in run.parameters()}
    assert len(shared) == sum(1 for _ in network.parameters()) - 2 * len(linear)
    assert all(
        m.weight.dtype == torch.float32 for m in network.modules() if isinstance(m, torch.nn.Linear)
    )
    got = encoder.transform(texts)
    monkeypatch.setattr(TextEncoder, "_torch_runner", lambda self, network, precision: network)
    np.testing.assert_array_equal(got, encoder.transform(texts))  # autocast on the network


def test_text_float32_runs_the_network_itself():
    encoder = TextEncoder(cache=None, precision="float32").fit()
    assert encoder._runner() is encoder._body()


def test_copies_go_with_their_network(tiny_text_model, monkeypatch):
    import gc
    import weakref

    from sktransfer import _precision
    from sktransfer._base import LOADED_NETWORKS

    model = _with_statistics(ConvNorm())
    _fold.inference_network(model, "bfloat16", _batch)
    monkeypatch.setattr(_precision, "cpu_bfloat16_speedup", lambda: float("inf"))
    encoder = TextEncoder(tiny_text_model, cache=None, precision="bfloat16").fit()
    assert encoder._runner() is not encoder._body()
    alive = [weakref.ref(model), weakref.ref(encoder._body())]
    assert len(_fold._COPIES) == 2
    del model, encoder
    LOADED_NETWORKS.clear()
    gc.collect()
    # A copy that referred back to its network would keep both alive for good.
    assert [ref() for ref in alive] == [None, None]
    assert len(_fold._COPIES) == 0
