"""timm's "SAME" convolutions with a fixed padding (``_static_padding``) in the inference copy."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm_layers = pytest.importorskip("timm.layers")

from sktransfer import ImageEncoder, _inference  # noqa: E402
from sktransfer._static_padding import StaticSameConv2d, convertible  # noqa: E402

Conv2dSame = timm_layers.Conv2dSame


@pytest.fixture(autouse=True)
def _fresh_copies():
    _inference.clear()
    yield
    _inference.clear()


def _filled(conv, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return conv


@pytest.mark.parametrize(
    "kernel, stride, groups, size",
    [
        (3, 2, 1, (16, 16)),  # even: one more after than before
        (3, 2, 1, (15, 15)),  # odd: symmetric
        (5, 2, 6, (14, 14)),  # depthwise 5x5 on an even size
        (5, 2, 6, (13, 20)),  # one side odd, one even
        ((3, 5), (2, 1), 1, (12, 11)),  # rectangular kernel and stride
        (3, 1, 1, (9, 9)),  # stride 1: always symmetric
        (4, 2, 1, (10, 10)),  # even kernel
        (1, 2, 1, (9, 9)),  # no padding at all
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_fixed_padding_computes_what_the_same_convolution_computes(
    kernel, stride, groups, size, channels_last
):
    same = _filled(Conv2dSame(6, 12, kernel, stride=stride, groups=groups, bias=True)).eval()
    x = torch.randn(3, 6, *size, generator=torch.Generator().manual_seed(1))
    if channels_last:
        same = same.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    fixed = StaticSameConv2d(same, size)
    with torch.inference_mode():
        expected, got = same(x), fixed(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    # The fixed path ran: no separate pad.
    assert fixed.conv.padding_mode == "zeros" and fixed.conv(x).shape == expected.shape


def test_other_sizes_run_the_same_convolution_itself(monkeypatch):
    same = _filled(Conv2dSame(3, 4, 3, stride=2)).eval()
    fixed = StaticSameConv2d(same, (16, 16))
    calls = []
    monkeypatch.setattr(fixed.conv, "forward", lambda x: calls.append(x) or same(x))
    other = torch.randn(2, 3, 17, 17)
    with torch.inference_mode():
        np.testing.assert_allclose(fixed(other).numpy(), same(other).numpy(), rtol=1e-6)
    assert calls == []  # not the fixed convolution: its padding is wrong for 17
    with torch.inference_mode():
        fixed(torch.randn(2, 3, 16, 16))
    assert len(calls) == 1


def test_only_plain_timm_same_convolutions_are_converted():
    assert convertible(Conv2dSame(3, 4, 3, stride=2))
    assert not convertible(Conv2dSame(3, 4, 3, stride=2, dilation=2))
    assert not convertible(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1))

    class Subclass(Conv2dSame):
        pass

    assert not convertible(Subclass(3, 4, 3, stride=2))


class SameNet(torch.nn.Module):
    """Stride-2 "SAME" convolutions, each read by a BatchNorm (``read_twice``: and by a sum)."""

    def __init__(self, read_twice: bool = False):
        super().__init__()
        self.read_twice = read_twice
        self.stem = Conv2dSame(3, 8, 3, stride=2, bias=False)
        self.bn = torch.nn.BatchNorm2d(8)
        self.down = Conv2dSame(8, 8, 5, stride=2, groups=8, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(8)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        y = self.down(x)
        out = self.bn2(y) + y if self.read_twice else self.bn2(y)
        return out.mean(dim=(2, 3))


def _statistics(model):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            elif isinstance(module, torch.nn.Conv2d):
                _filled(module)
    return model.eval()


def _probe():
    return torch.randn(2, 3, 20, 20, generator=torch.Generator().manual_seed(2))


def _same_numbers(run, model):
    for size in [(20, 20), (23, 18)]:  # the probe's size and another
        x = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(4))
        with torch.inference_mode():
            np.testing.assert_allclose(run(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fold", [True, False])
def test_the_inference_copy_fixes_the_paddings_and_keeps_the_numbers(fold):
    model = _statistics(SameNet())
    run = _inference.inference_network(model, "float32", _probe, fold=fold)
    assert isinstance(run.stem, StaticSameConv2d) and isinstance(run.down, StaticSameConv2d)
    assert isinstance(model.stem, Conv2dSame)  # the network itself untouched
    assert _inference.folds_batchnorm(run) is fold
    assert isinstance(run.bn, torch.nn.BatchNorm2d) is not fold
    _same_numbers(run, model)
    copy16 = _inference.inference_network(model, "bfloat16", _probe, fold=fold)
    assert copy16.stem.conv.weight.dtype == torch.bfloat16
    assert _inference.folds_batchnorm(copy16) is fold


def test_when_the_fold_is_refused_the_paddings_are_still_fixed():
    model = _statistics(SameNet(read_twice=True))  # folding bn2 would change the sum
    run = _inference.inference_network(model, "float32", _probe)
    assert not _inference.folds_batchnorm(run)
    assert isinstance(run.bn, torch.nn.BatchNorm2d) and isinstance(run.bn2, torch.nn.BatchNorm2d)
    assert isinstance(run.stem, StaticSameConv2d) and isinstance(run.down, StaticSameConv2d)
    _same_numbers(run, model)


def test_a_convolution_seen_at_two_sizes_keeps_its_own_padding():
    model = _statistics(SameNet())

    def probe():
        return torch.randn(2, 3, 20, 20)

    class Twice(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x) + self.net(x[..., :15, :15])

    run = _inference.inference_network(Twice(model), "float32", probe, fold=False)
    assert isinstance(run.net.stem, Conv2dSame)


def test_the_image_encoder_never_pads_separately(monkeypatch):
    import importlib

    conv2d_same = importlib.import_module("timm.layers.conv2d_same")
    calls = []
    original = conv2d_same.pad_same
    monkeypatch.setattr(
        conv2d_same, "pad_same", lambda *args, **kw: calls.append(1) or original(*args, **kw)
    )
    from sklearn.datasets import load_sample_images

    photos = [p[:300, :400] for p in load_sample_images().images]
    encoder = ImageEncoder(cache=None, precision="float32").fit()
    calls.clear()
    got = encoder.transform(photos)
    assert calls == []
    # The timm network itself pads before each stride-2 convolution; same numbers.
    monkeypatch.setattr(ImageEncoder, "_torch_runner", lambda self, network, precision: network)
    expected = encoder.transform(photos)
    assert len(calls) > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_environment_switch_keeps_the_same_convolutions_at_fit(monkeypatch):
    monkeypatch.setenv("SKTRANSFER_STATIC_PADDING", "0")
    off = ImageEncoder(cache=None, precision="float32").fit()
    monkeypatch.delenv("SKTRANSFER_STATIC_PADDING")
    # Decided at fit, not at each call.
    assert not any(isinstance(m, StaticSameConv2d) for m in off._runner().modules())
    assert any(type(m) is Conv2dSame for m in off._runner().modules())
    on = ImageEncoder(cache=None, precision="float32").fit()
    assert any(isinstance(m, StaticSameConv2d) for m in on._runner().modules())
