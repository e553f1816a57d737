"""Activations fused into the convolutions before them (``_fused``) in the inference copy."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm_layers = pytest.importorskip("timm.layers")

from sktransfer import ImageEncoder, _fused, _inference  # noqa: E402
from sktransfer._static_padding import StaticSameConv2d  # noqa: E402

pytestmark = pytest.mark.skipif(not _fused.available(), reason="no fused oneDNN convolution")


@pytest.fixture(autouse=True)
def _fresh_copies():
    _inference.clear()
    yield
    _inference.clear()


def _filled(module, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 3)
    return module.eval()


@pytest.mark.parametrize(
    "activation",
    [torch.nn.ReLU(), torch.nn.ReLU6(), torch.nn.Hardtanh(-0.5, 2.0), torch.nn.ReLU(inplace=True)],
)
@pytest.mark.parametrize("groups", [1, 4])
def test_the_fused_convolution_computes_the_activation_of_the_convolution(activation, groups):
    conv = _filled(torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=groups))
    fused = _fused.ConvActivation(conv, activation)
    x = torch.randn(3, 8, 11, 10).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = activation(conv(x.clone()))
        got = fused(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # Both clamps were exercised (the ReLU has no upper one).
    scalars = _fused.post_op(activation)[1]
    lower, upper = scalars if scalars else (0.0, None)
    assert bool((expected == lower).any())
    assert upper is None or bool((expected == upper).any())


def test_bfloat16_weights_take_a_float32_input_as_autocast_would():
    conv = _filled(torch.nn.Conv2d(3, 6, 3, padding=1))
    fused = _fused.ConvActivation(conv, torch.nn.ReLU6())
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        expected = torch.nn.functional.relu6(conv(x)).float()
    with torch.no_grad():
        conv.weight.data = conv.weight.data.to(torch.bfloat16)
        conv.bias.data = conv.bias.data.to(torch.bfloat16)
    with torch.inference_mode():
        got = fused(x)
    assert got.dtype == torch.bfloat16
    np.testing.assert_allclose(got.float().numpy(), expected.numpy(), rtol=2e-2, atol=2e-2)


def test_a_same_convolution_of_another_size_runs_unfused():
    same = _filled(timm_layers.Conv2dSame(3, 4, 3, stride=2))
    fused = _fused.ConvActivation(StaticSameConv2d(same, (16, 16)), torch.nn.ReLU6())
    for size in [(16, 16), (17, 15)]:
        x = torch.randn(2, 3, *size)
        with torch.inference_mode():
            np.testing.assert_allclose(
                fused(x).numpy(), torch.nn.functional.relu6(same(x)).numpy(), rtol=1e-5, atol=1e-5
            )


def test_only_clamping_activations_and_plain_convolutions_fuse():
    conv = torch.nn.Conv2d(3, 4, 3)
    assert _fused.post_op(torch.nn.ReLU6()) == ("hardtanh", [0.0, 6.0])
    assert _fused.post_op(torch.nn.SiLU()) is None
    assert _fused.post_op(torch.nn.GELU()) is None
    with pytest.raises(ValueError, match="cannot fuse"):
        _fused.ConvActivation(conv, torch.nn.SiLU())
    with pytest.raises(ValueError, match="cannot fuse"):
        _fused.ConvActivation(
            torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), torch.nn.ReLU()
        )


class Net(torch.nn.Module):
    """conv -> ReLU6, conv -> shared ReLU (also after the sum), pooled."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = torch.nn.ReLU6()
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.shared = torch.nn.ReLU()

    def forward(self, x):
        x = self.act1(self.conv1(x))
        y = self.shared(self.conv2(x))
        return self.shared(y - 1.0).mean(dim=(2, 3))


def _probe():
    return torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def test_the_inference_copy_fuses_what_reads_a_convolution_once():
    model = _filled(Net())
    run = _inference.inference_network(model, "float32", _probe)
    assert isinstance(run.conv1, _fused.ConvActivation) and isinstance(run.act1, torch.nn.Identity)
    # The shared activation also runs on a sum: not fused, not removed.
    assert isinstance(run.conv2, torch.nn.Conv2d) and isinstance(run.shared, torch.nn.ReLU)
    x = torch.randn(3, 3, 15, 13)
    with torch.inference_mode():
        np.testing.assert_allclose(run(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)
    assert isinstance(model.conv1, torch.nn.Conv2d)  # the network itself untouched


def test_a_fusion_that_changes_the_outputs_is_refused(monkeypatch):
    # A wrong post-op (no upper clamp for ReLU6) must fail the check.
    monkeypatch.setattr(
        _fused, "post_op", lambda m: ("relu", []) if isinstance(m, torch.nn.ReLU6) else None
    )
    model = _filled(Net())
    run = _inference.inference_network(model, "float32", _probe)
    assert run is model


def test_an_operator_that_fails_leaves_the_copy_unfused(monkeypatch):
    def broken(self, x):
        raise RuntimeError("operator changed")

    monkeypatch.setattr(_fused.ConvActivation, "forward", broken)
    model = _filled(Net())
    assert _inference.inference_network(model, "float32", _probe) is model


def test_without_the_operator_nothing_is_fused(monkeypatch):
    monkeypatch.setattr(_fused, "available", lambda: False)
    model = _filled(Net())
    assert _inference.inference_network(model, "float32", _probe) is model


def _photos():
    from sklearn.datasets import load_sample_images

    return [p[:300, :400] for p in load_sample_images().images]


def test_the_image_encoder_runs_fused_with_the_same_numbers(monkeypatch):
    fused = ImageEncoder(cache=None, precision="float32").fit()
    run = fused._runner()
    assert sum(isinstance(m, _fused.ConvActivation) for m in run.modules()) > 10
    monkeypatch.setenv("SKTRANSFER_FUSE_ACTIVATIONS", "0")
    plain = ImageEncoder(cache=None, precision="float32").fit()
    monkeypatch.delenv("SKTRANSFER_FUSE_ACTIVATIONS")
    # Decided at fit: the switch was read then.
    assert not any(isinstance(m, _fused.ConvActivation) for m in plain._runner().modules())
    assert plain.model_fingerprint_ == fused.model_fingerprint_
    expected = plain.transform(_photos())
    np.testing.assert_allclose(
        fused.transform(_photos()), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max()
    )
