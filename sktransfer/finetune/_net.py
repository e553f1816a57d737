"""The network a fine-tuner trains, and the one way it is rebuilt from stored weights.

:class:`FineTuneNet` is a pretrained body (from the modality's adapter), dropout
and a new linear head. :func:`rebuild_network` turns a fitted estimator's stored
weights back into that net -- after unpickling and in
:func:`sktransfer.finetune.load` alike.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sktransfer._hub import timm_feature_width


class FineTuneNet(nn.Module):
    """A pretrained body, dropout and a new linear head."""

    def __init__(self, body: nn.Module, n_outputs: int, head_dropout: float = 0.0):
        super().__init__()
        self.body = body
        self.dropout = nn.Dropout(head_dropout)
        # timm's MobileNetV3/V4 return head_hidden_size features, not num_features.
        self.head = nn.Linear(timm_feature_width(body), n_outputs)

    def forward(self, batch):
        return self.head(self.dropout(self.body(batch)))


class StoredFeatures(nn.Module):
    """A body whose batches are already its features: the frozen body's output, computed once.

    Head-only training runs the real body once over the data; the epochs then
    train ``head(dropout(features))`` through this stand-in, with the same steps.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features):
        return features


class HeadOverFeatures(FineTuneNet):
    """``net``'s own dropout and head (shared, not copied) over stored features."""

    def __init__(self, net: FineTuneNet):
        nn.Module.__init__(self)
        self.body = StoredFeatures(net.head.in_features)
        self.dropout = net.dropout
        self.head = net.head


def group_of_modules(net: nn.Module, block_of: dict[str, int]) -> dict[str, int]:
    """Block of every module that lies wholly inside one block.

    A module whose parameters all belong to one block gets that block; a
    module without parameters (dropout, drop-path, activation) inherits the
    block of its nearest ancestor that has one. Containers spanning blocks
    are left out.
    """
    found: dict[str, int | None] = {}
    for name, module in net.named_modules():
        prefix = f"{name}." if name else ""
        names = (prefix + p for p, _ in module.named_parameters())
        blocks = {block_of[n] for n in names if n in block_of}
        if len(blocks) == 1:
            found[name] = blocks.pop()
        elif blocks:
            found[name] = None
        else:  # no parameters: take the nearest ancestor's block
            parent = name.rpartition(".")[0] if "." in name else ""
            found[name] = found.get(parent) if name else None
    return {name: block for name, block in found.items() if block is not None}


def cpu_state(net: nn.Module) -> dict:
    """A copy of ``net``'s state dict as CPU tensors (loads on any machine)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


def rebuild_network(
    body: nn.Module,
    state: dict,
    device: str,
    head_dropout: float,
    *,
    check: Callable[[dict], None] | None = None,
    strict: bool = True,
) -> FineTuneNet:
    """A fitted estimator's net: ``body`` plus a head sized by ``state``, weights loaded.

    ``check(expected_state)`` may validate the stored tensors against the
    rebuilt net's (shape for shape) before they are loaded. The net comes back
    frozen (no gradients), in eval mode, on ``device``.
    """
    net = FineTuneNet(body, state["head.weight"].shape[0], head_dropout)
    if check is not None:
        check(net.state_dict())
    net.load_state_dict(state, strict=strict)
    for param in net.parameters():
        param.requires_grad_(False)
    return net.to(device).eval()
