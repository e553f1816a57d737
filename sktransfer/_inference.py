"""CPU inference copies of a network: BatchNorm folded, bfloat16 weights held once.

Two costs of running a frozen torch network on a CPU that the network itself
does not need to pay:

- **BatchNorm after a convolution.** In eval mode a BatchNorm layer is an
  affine map per channel, so when it reads a convolution's output directly it
  can be folded into that convolution's weights and bias: one pass over the
  activations fewer per layer (about a fifth of EfficientNet-Lite0's forward
  time on a CPU). The folded numbers are the network's to float rounding in
  float32.
- **autocast's weight casts.** Under ``torch.autocast`` every linear and
  convolution weight is cast to bfloat16 again on every call. The bfloat16
  copy holds those weights and biases in bfloat16 once; everything else is
  shared with the network, not copied. Autocast would cast them to the same
  values, so the copy computes exactly what autocast computes.

Which BatchNorm reads which convolution is seen, not guessed: one forward pass
of the probe batch with hooks records the pairs where the BatchNorm's input *is*
the convolution's output tensor. The folded copy must then reproduce the
network's float32 outputs on that batch to 1e-4 of their largest magnitude;
otherwise (a convolution output that something else also reads, say) nothing
is folded. Only ``torch.nn.BatchNorm2d`` itself and timm's ``BatchNormAct2d``
(BatchNorm, dropout, activation) are folded; another BatchNorm subclass may
compute something else and is left alone. ``SKTRANSFER_FOLD_BATCHNORM=0`` in
the environment (read by the encoder's ``fit``) turns folding off.

A copy is made once per network, precision and state: a network whose
parameters or buffers were changed in place (``model_`` given other weights, an
adaptation) gets a new copy, through the tensors' version counters.
"""

from __future__ import annotations

import copy
import os
import threading
import weakref

import numpy as np

__all__ = ["inference_network", "clear", "enabled"]

# ``SKTRANSFER_FOLD_BATCHNORM=0`` in the environment runs every network unchanged.
ENV_SWITCH = "SKTRANSFER_FOLD_BATCHNORM"

# How closely the folded float32 copy must reproduce the network: the largest
# absolute difference, relative to the largest output magnitude. Folding alone
# differs by float rounding (about 2e-6 on EfficientNet-Lite0); a misplaced
# fold differs by orders of magnitude more.
TOLERANCE = 1e-4

_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def enabled() -> bool:
    """Whether folding is allowed (the environment's switch; read at ``fit``)."""
    return os.environ.get(ENV_SWITCH, "1").strip() != "0"


def clear() -> None:
    """Forget every inference copy (tests)."""
    with _LOCK:
        _COPIES.clear()


def _state_stamp(network) -> tuple:
    """Changes whenever a parameter or buffer of ``network`` is replaced or modified in place."""
    return tuple((id(t), t._version) for t in (*network.parameters(), *network.buffers()))


def inference_network(network, precision: str, probe_batch=None):
    """What runs ``network`` at ``precision`` on a CPU: ``network`` or an inference copy.

    ``probe_batch()`` gives the batch (a tensor, as the forward pass is fed)
    that finds the BatchNorm pairs and checks the fold; ``None`` folds nothing.
    In float32 the folded copy, if anything folds; in bfloat16 a copy with the
    linear and convolution weights (of the folded copy, if any) in bfloat16.
    Other precisions, and float32 with nothing folded, run ``network`` itself.
    """
    if precision not in ("float32", "bfloat16"):
        return network
    stamp = _state_stamp(network)
    folds = probe_batch is not None
    with _LOCK:
        entry = _COPIES.get(network)
        if entry is None or entry["stamp"] != stamp:
            entry = _COPIES[network] = {"stamp": stamp, "copies": {}}
        made = entry["copies"].get((precision, folds))
    if made is not None:
        return made
    base = network
    if folds:
        with _LOCK:
            folded = entry.get("folded")
        if folded is None:
            folded = _folded(network, probe_batch) or network
            with _LOCK:
                entry["folded"] = folded
        base = folded
    made = base if precision == "float32" else _in_bfloat16(base)
    with _LOCK:
        entry["copies"][(precision, folds)] = made
    return made


def _foldable(module) -> bool:
    import torch

    kind = type(module)
    timm_norm_act = kind.__name__ == "BatchNormAct2d" and kind.__module__.startswith("timm.")
    if kind is not torch.nn.BatchNorm2d and not timm_norm_act:
        return False
    return (
        not module.training and module.running_mean is not None and module.running_var is not None
    )


def _pairs(network, batch):
    """``([(conv name, batchnorm name)], float32 outputs)`` from one forward pass with hooks."""
    import torch

    names = {module: name for name, module in network.named_modules()}
    produced: dict[int, tuple] = {}  # id(output) -> (output, conv); kept alive for the pass
    pairs: list[tuple[str, str]] = []

    def after_conv(module, args, output):
        produced[id(output)] = (output, module)

    def before_norm(module, args):
        if not args:
            return
        found = produced.get(id(args[0]))
        if found is not None and found[0] is args[0] and _foldable(module):
            conv = found[1]
            if conv.out_channels == module.num_features and conv.padding_mode == "zeros":
                pairs.append((names[conv], names[module]))

    handles = []
    for module in network.modules():
        if isinstance(module, torch.nn.Conv2d):
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, torch.nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(before_norm))
    try:
        with torch.inference_mode():
            out = network(batch).float()
    finally:
        for handle in handles:
            handle.remove()
        produced.clear()
    # A convolution whose output two BatchNorms read, or a BatchNorm run twice:
    # not a plain pair.
    convs = [c for c, _ in pairs]
    norms = [n for _, n in pairs]
    pairs = [p for p in pairs if convs.count(p[0]) == 1 and norms.count(p[1]) == 1]
    return pairs, out


def _norm_rest(norm):
    """What a folded BatchNorm still does: nothing, or timm's dropout and activation."""
    import torch

    if type(norm) is torch.nn.BatchNorm2d:
        return torch.nn.Identity()
    return torch.nn.Sequential(norm.drop, norm.act)


def _folded(network, probe_batch):
    """The folded float32 copy of ``network``, or None (no pair, or the check failed)."""
    import torch

    batch = probe_batch()
    pairs, reference = _pairs(network, batch)
    if not pairs:
        return None
    folded = copy.deepcopy(network)
    modules = dict(folded.named_modules())
    with torch.no_grad():
        for conv_name, norm_name in pairs:
            conv, norm = modules[conv_name], modules[norm_name]
            scale = torch.rsqrt(norm.running_var.double() + norm.eps)
            if norm.weight is not None:
                scale = scale * norm.weight.double()
            shift = -norm.running_mean.double() * scale
            if norm.bias is not None:
                shift = shift + norm.bias.double()
            weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
            bias = shift if conv.bias is None else conv.bias.double() * scale + shift
            dtype = conv.weight.dtype
            conv.weight = torch.nn.Parameter(
                weight.to(dtype).contiguous(memory_format=_memory_format(conv.weight)),
                requires_grad=False,
            )
            conv.bias = torch.nn.Parameter(bias.to(dtype), requires_grad=False)
            parent_name, _, attr = norm_name.rpartition(".")
            setattr(modules[parent_name] if parent_name else folded, attr, _norm_rest(norm))
        with torch.inference_mode():
            out = folded(batch).float()
    reference, out = reference.cpu().numpy(), out.cpu().numpy()
    scale = float(np.abs(reference).max())
    if out.shape != reference.shape or not np.all(np.isfinite(out)):
        return None
    if float(np.abs(out - reference).max()) > TOLERANCE * max(scale, 1e-12):
        return None
    return folded


def _memory_format(tensor):
    import torch

    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _in_bfloat16(network):
    """A copy of ``network`` whose linear and convolution weights are bfloat16 (autocast's casts).

    Only those tensors are new; every other parameter, buffer and attribute
    (embeddings, norms, a tokenizer) is the network's own, shared.
    """
    import torch

    memo: dict = {}
    for module in network.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            for tensor in (module.weight, module.bias):
                if tensor is not None and tensor.dtype == torch.float32:
                    memo[id(tensor)] = torch.nn.Parameter(
                        tensor.detach().to(torch.bfloat16), requires_grad=False
                    )
    for tensor in (*network.parameters(), *network.buffers()):
        memo.setdefault(id(tensor), tensor)
    modules = set(map(id, network.modules()))
    for module in network.modules():  # share what is not a module: tokenizers, configs
        for value in vars(module).values():
            if not isinstance(value, (dict, torch.nn.Module)) and id(value) not in modules:
                memo.setdefault(id(value), value)
    return copy.deepcopy(network, memo)
