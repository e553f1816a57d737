"""A convolution and the activation after it as one oneDNN convolution (CPU).

PyTorch runs ``relu(conv(x))`` as two passes over the activation in memory: the
convolution writes its output, the activation reads and rewrites it. oneDNN,
which runs PyTorch's convolutions on a CPU, can apply the activation to each
output value as it is written (a "post-op"). PyTorch exposes that through
``torch.ops.mkldnn._convolution_pointwise``, the operator its own compiler
(``torch.compile``'s CPU backend) emits for this pattern.

That operator is private to PyTorch: it may change or go. So the inference copy
(``sktransfer._inference``) uses it only after the fused copy reproduced the
network's outputs on the probe batch, and runs the unfused copy when the
operator is missing or fails. Only activations whose result is a clamp of the
input are fused (ReLU, ReLU6, Hardtanh): the fused convolution computes the
same values. In one profile of EfficientNet-Lite0's forward pass in bfloat16 on
a 2-core CPU, its 33 ReLU6 layers took 18% of the time.
"""

from __future__ import annotations

import torch

from sktransfer._static_padding import StaticSameConv2d

__all__ = ["ConvActivation", "post_op", "available"]


def available() -> bool:
    """Whether this PyTorch build has the fused convolution operator."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._convolution_pointwise  # noqa: B018 (looked up, raises if absent)
    except (AttributeError, RuntimeError):
        return False
    return True


def post_op(activation) -> tuple[str, list] | None:
    """``(oneDNN post-op name, scalars)`` for ``activation``, or None (not fused)."""
    kind = type(activation)
    if kind is torch.nn.ReLU:
        return "relu", []
    if kind in (torch.nn.ReLU6, torch.nn.Hardtanh):
        return "hardtanh", [float(activation.min_val), float(activation.max_val)]
    return None


def fusable(conv) -> bool:
    """Whether ``conv`` (what produced the activation's input) can carry the activation."""
    if isinstance(conv, StaticSameConv2d):
        conv = conv.conv
    return (
        type(conv) is torch.nn.Conv2d
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
    )


class ConvActivation(torch.nn.Module):
    """``activation(conv(x))`` as one oneDNN convolution with the activation as a post-op.

    Parameters
    ----------
    conv : torch.nn.Conv2d or StaticSameConv2d
        The convolution. For a ``StaticSameConv2d``, inputs of another size
        than its own run ``activation(conv.same(x))``, unfused.
    activation : torch.nn.Module
        ReLU, ReLU6 or Hardtanh (see :func:`post_op`).
    """

    def __init__(self, conv, activation):
        super().__init__()
        op = post_op(activation)
        if op is None or not fusable(conv):
            raise ValueError(f"cannot fuse {type(conv).__name__} with {type(activation).__name__}")
        self.conv = conv
        self.activation = activation
        self.post_op, self.scalars = op

    def forward(self, x):
        conv = self.conv
        if isinstance(conv, StaticSameConv2d):
            if tuple(x.shape[-2:]) != conv.size:
                return self.activation(conv.same(x))
            conv = conv.conv
        weight = conv.weight
        if x.dtype != weight.dtype:  # autocast does not cast for this operator
            x = x.to(weight.dtype)
        return torch.ops.mkldnn._convolution_pointwise(
            x,
            weight,
            conv.bias,
            list(conv.padding),
            list(conv.stride),
            list(conv.dilation),
            conv.groups,
            self.post_op,
            self.scalars,
            "",
        )
