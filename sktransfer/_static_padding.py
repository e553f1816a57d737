"""TensorFlow-"SAME" convolutions with their padding inside the convolution.

timm builds the strided convolutions of the ``tf_*`` models (EfficientNet,
MobileNet ports of TensorFlow weights) as ``Conv2dSame``: before every call it
pads the input with a separate ``torch.nn.functional.pad``: a new tensor
filled with zeros and the activation copied into it. In one profile of
EfficientNet-Lite0's forward pass in bfloat16 on a 2-core CPU, those pads took
13% of the time.

For one input size the padding is fixed, and where it is symmetric the
convolution can apply it itself. Where it is not (one more row or column after
than before, as "SAME" pads a stride-2 convolution of an even size), the kernel
is given one more leading row or column of zeros and the convolution pads both
sides by the larger amount: every output then sums the same products as the
padded convolution plus products with zero weights. On EfficientNet-Lite0 the
outputs were equal bit for bit in float32 and in bfloat16; the inference copy
still checks the whole network's outputs (see ``sktransfer._inference``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["StaticSameConv2d", "convertible"]


def convertible(module) -> bool:
    """Whether ``module`` is timm's ``Conv2dSame`` in a form this module can convert."""
    kind = type(module)
    if kind.__name__ != "Conv2dSame" or not kind.__module__.startswith("timm."):
        return False
    return (
        tuple(module.dilation) == (1, 1)
        and tuple(module.padding) == (0, 0)
        and module.padding_mode == "zeros"
    )


def _same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """``(before, after)``: TensorFlow's "SAME" padding of one side of the input."""
    total = max((math.ceil(length / stride) - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class StaticSameConv2d(torch.nn.Module):
    """``same`` (a ``Conv2dSame``) for inputs of ``size``; other sizes run ``same`` itself.

    Parameters
    ----------
    same : timm.layers.Conv2dSame
        The convolution; its weight and bias are used as they are now.
    size : tuple of int
        ``(height, width)`` of the inputs the padding is fixed for.
    """

    def __init__(self, same, size: tuple[int, int]):
        super().__init__()
        self.same = same
        self.size = (int(size[0]), int(size[1]))
        pads, extra = [], []
        for length, kernel, stride in zip(self.size, same.kernel_size, same.stride, strict=True):
            before, after = _same_padding(length, kernel, stride)
            pads.append(after)
            extra.append(after - before)  # 0 or 1
        weight = same.weight.detach()
        channels_last = weight.dim() == 4 and weight.is_contiguous(
            memory_format=torch.channels_last
        )
        # A leading row / column of zeros where "SAME" pads one less before than after.
        weight = F.pad(weight, (extra[1], 0, extra[0], 0))
        if channels_last:
            weight = weight.contiguous(memory_format=torch.channels_last)
        self.conv = torch.nn.Conv2d(
            same.in_channels,
            same.out_channels,
            tuple(weight.shape[-2:]),
            stride=same.stride,
            padding=tuple(pads),
            groups=same.groups,
            bias=same.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        self.conv.weight = torch.nn.Parameter(weight, requires_grad=False)
        if same.bias is not None:
            self.conv.bias = same.bias  # shared

    def forward(self, x):
        if tuple(x.shape[-2:]) == self.size:
            return self.conv(x)
        return self.same(x)
