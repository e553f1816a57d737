"""CPU inference copies of a network: BatchNorm folded, paddings fixed, activations fused.

Four costs of running a frozen torch network on a CPU that the network itself
does not need to pay:

- **BatchNorm after a convolution.** In eval mode a BatchNorm layer is an
  affine map per channel, so when it reads a convolution's output directly it
  can be folded into that convolution's weights and bias: one pass over the
  activations fewer per layer (about a fifth of EfficientNet-Lite0's forward
  time on a CPU). The folded numbers are the network's to float rounding in
  float32.
- **TensorFlow "SAME" padding.** timm's ``Conv2dSame`` pads its input with a
  separate pad on every call; for the input size the probe batch shows, the
  copy pads inside the convolution instead (``sktransfer._static_padding``).
- **An activation after a convolution.** A ReLU, ReLU6 or Hardtanh that
  reads a convolution's output is fused into it (``sktransfer._fused``).
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
is folded (the paddings are still fixed, if that copy passes the same check).
Only ``torch.nn.BatchNorm2d`` itself and timm's ``BatchNormAct2d``
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

__all__ = [
    "inference_network",
    "runner",
    "has_conv2d",
    "folds_batchnorm",
    "clear",
    "enabled",
    "fusing_enabled",
    "padding_enabled",
]

# ``SKTRANSFER_FOLD_BATCHNORM=0`` in the environment runs every network unchanged.
ENV_SWITCH = "SKTRANSFER_FOLD_BATCHNORM"
# ``SKTRANSFER_FUSE_ACTIVATIONS=0`` keeps every activation a layer of its own.
FUSE_SWITCH = "SKTRANSFER_FUSE_ACTIVATIONS"
# ``SKTRANSFER_STATIC_PADDING=0`` keeps timm's "SAME" convolutions padding on every call.
PADDING_SWITCH = "SKTRANSFER_STATIC_PADDING"

# How closely the folded float32 copy must reproduce the network: the largest
# absolute difference, relative to the largest output magnitude. Folding alone
# differs by float rounding (about 2e-6 on EfficientNet-Lite0); a misplaced
# fold differs by orders of magnitude more.
TOLERANCE = 1e-4

_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FOLDED: weakref.WeakSet = weakref.WeakSet()  # copies with BatchNorm folded into them
_LOCK = threading.Lock()


def enabled() -> bool:
    """Whether folding is allowed (the environment's switch; read at ``fit``)."""
    return os.environ.get(ENV_SWITCH, "1").strip() != "0"


def fusing_enabled() -> bool:
    """Whether activations may be fused into convolutions (``SKTRANSFER_FUSE_ACTIVATIONS``)."""
    return os.environ.get(FUSE_SWITCH, "1").strip() != "0"


def padding_enabled() -> bool:
    """Whether "SAME" paddings may be fixed in the convolutions (``SKTRANSFER_STATIC_PADDING``)."""
    return os.environ.get(PADDING_SWITCH, "1").strip() != "0"


def clear() -> None:
    """Forget every inference copy (tests)."""
    with _LOCK:
        _COPIES.clear()
        _FOLDED.clear()


def _state_stamp(network) -> tuple:
    """Changes whenever a parameter or buffer of ``network`` is replaced or modified in place."""
    return tuple((id(t), t._version) for t in (*network.parameters(), *network.buffers()))


def inference_network(
    network,
    precision: str,
    probe_batch=None,
    fold: bool = True,
    fuse: bool = True,
    pad: bool = True,
):
    """What runs ``network`` at ``precision`` on a CPU: ``network`` or an inference copy.

    ``probe_batch()`` gives the batch (a tensor, as the forward pass is fed)
    that finds what can be rewritten and checks the rewritten copy: BatchNorm
    folded into the convolutions (with ``fold``), timm's "SAME" convolutions
    given a fixed padding (with ``pad``; see ``sktransfer._static_padding``), then (with
    ``fuse``) ReLU-like activations fused into the convolutions before them
    (see ``sktransfer._fused``). ``None`` rewrites nothing. In float32 the
    rewritten copy, if anything was rewritten; in bfloat16 a copy with the
    linear and convolution weights (of the rewritten copy, if any) in
    bfloat16. Other precisions, and float32 with nothing rewritten, run
    ``network`` itself.
    """
    if precision not in ("float32", "bfloat16"):
        return network
    stamp = _state_stamp(network)
    rewrites = None if probe_batch is None else (bool(fold), bool(fuse), bool(pad))
    with _LOCK:
        entry = _COPIES.get(network)
        if entry is None or entry["stamp"] != stamp:
            entry = _COPIES[network] = {"stamp": stamp, "copies": {}, "rewritten": {}}
        made = entry["copies"].get((precision, rewrites))
    if made is not None:
        return made
    base = network
    if rewrites is not None:
        with _LOCK:
            rewritten = entry["rewritten"].get(rewrites)
        if rewritten is None:
            rewritten = _rewritten(network, probe_batch, fold, fuse, pad) or network
            with _LOCK:
                entry["rewritten"][rewrites] = rewritten
        base = rewritten
    made = base if precision == "float32" else _in_bfloat16(base)
    if base in _FOLDED:
        _FOLDED.add(made)
    with _LOCK:
        entry["copies"][(precision, rewrites)] = made
    return made


def runner(
    network, precision: str, device: str, probe_batch=None, *, fold=None, fuse=None, pad=None
):
    """What runs ``network`` at ``precision`` on ``device``: on a CPU, :func:`inference_network`.

    Off the CPU the network itself runs (the rewrites and the cast-once copy
    are for oneDNN's CPU kernels). ``fold``, ``fuse`` and ``pad`` left at None
    are read now from ``SKTRANSFER_FOLD_BATCHNORM``, ``SKTRANSFER_FUSE_ACTIVATIONS``
    and ``SKTRANSFER_STATIC_PADDING`` (an encoder reads them at ``fit`` and
    passes them).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> runner(net, "bfloat16", "cuda:0") is net
    True
    >>> runner(net, "bfloat16", "cpu").weight.dtype
    torch.bfloat16
    """
    if not str(device).startswith("cpu"):
        return network
    return inference_network(
        network,
        precision,
        probe_batch,
        fold=enabled() if fold is None else fold,
        fuse=fusing_enabled() if fuse is None else fuse,
        pad=padding_enabled() if pad is None else pad,
    )


def has_conv2d(network) -> bool:
    """Whether ``network`` has a 2-D convolution (it then runs channels-last)."""
    import torch

    return any(isinstance(m, torch.nn.Conv2d) for m in network.modules())


def folds_batchnorm(runner) -> bool:
    """Whether ``runner`` (from :func:`inference_network`) has BatchNorm folded into it."""
    return runner in _FOLDED


def _foldable(module) -> bool:
    import torch

    kind = type(module)
    timm_norm_act = kind.__name__ == "BatchNormAct2d" and kind.__module__.startswith("timm.")
    if kind is not torch.nn.BatchNorm2d and not timm_norm_act:
        return False
    return (
        not module.training and module.running_mean is not None and module.running_var is not None
    )


def _direct_reads(network, batch, is_producer, accepts, on_input=None):
    """One forward pass of ``batch`` with hooks: who reads whose output tensor itself.

    Returns ``(pairs, float32 outputs)``: ``(producer name, reader name)`` for
    each module whose input *is* the output tensor of a module with
    ``is_producer(module)``, where ``accepts(producer, reader)``. An outer
    module's output that is an inner one's (a wrapper) counts as the outer's.
    Pairs are dropped when either module ran more than once or takes part in
    another pair (a shared activation, an output two layers read).
    ``on_input(name, tensor)`` sees each producer's input.
    """
    import torch

    names = {module: name for name, module in network.named_modules()}
    produced: dict[int, tuple] = {}  # id(output) -> (output, producer); kept alive for the pass
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []

    def before(module, args):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if not args or not isinstance(args[0], torch.Tensor):
            return
        if is_producer(module):
            if on_input is not None:
                on_input(name, args[0])
            return
        found = produced.get(id(args[0]))
        if found is not None and found[0] is args[0] and accepts(found[1], module):
            pairs.append((names[found[1]], name))

    def after(module, args, output):
        produced[id(output)] = (output, module)  # an outer module's hook runs last: it wins

    handles = []
    for module in network.modules():
        if module is network:
            continue
        handles.append(module.register_forward_pre_hook(before))
        if is_producer(module):
            handles.append(module.register_forward_hook(after))
    try:
        with torch.inference_mode():
            out = network(batch).float()
    finally:
        for handle in handles:
            handle.remove()
        produced.clear()
    producers = [p for p, _ in pairs]
    readers = [r for _, r in pairs]
    pairs = [
        (p, r)
        for p, r in pairs
        if calls.get(p) == 1
        and calls.get(r) == 1
        and producers.count(p) == 1
        and readers.count(r) == 1
    ]
    return pairs, out


def _observe(network, batch):
    """``([(conv name, batchnorm name)], {same conv name: input size}, float32 outputs)``.

    One forward pass of ``batch`` with hooks: the BatchNorm layers that read a
    convolution's output tensor itself, and the input size of each timm
    "SAME" convolution that ``sktransfer._static_padding`` can convert (one
    seen at two sizes keeps its own padding).
    """
    import torch

    from sktransfer._static_padding import convertible

    sizes: dict[str, set] = {}

    def norm_after_conv(conv, norm):
        return (
            isinstance(norm, torch.nn.BatchNorm2d)
            and _foldable(norm)
            and conv.out_channels == norm.num_features
            and conv.padding_mode == "zeros"
        )

    def record_size(name, tensor):
        sizes.setdefault(name, set()).add(tuple(tensor.shape[-2:]))

    pairs, out = _direct_reads(
        network,
        batch,
        lambda m: isinstance(m, torch.nn.Conv2d),
        norm_after_conv,
        on_input=lambda name, tensor: record_size(name, tensor),
    )
    modules = dict(network.named_modules())
    fixed = {
        name: next(iter(seen))
        for name, seen in sizes.items()
        if len(seen) == 1 and convertible(modules[name])
    }
    return pairs, fixed, out


def _norm_rest(norm):
    """What a folded BatchNorm still does: nothing, or timm's dropout and activation."""
    import torch

    if type(norm) is torch.nn.BatchNorm2d:
        return torch.nn.Identity()
    return torch.nn.Sequential(norm.drop, norm.act)


def _rewritten(network, probe_batch, fold: bool, fuse: bool = True, pad: bool = True):
    """The rewritten float32 copy of ``network``, or None (nothing to rewrite, or no check passed).

    The copy must reproduce the network's outputs on the probe batch to
    ``TOLERANCE``. With ``fuse``, the activations that read a convolution's
    output are fused into it and that copy is checked first; if it fails, the
    copy without fusion is checked, then the one without folding (only the
    fixed paddings).
    """
    batch = probe_batch()
    pairs, sizes, reference = _observe(network, batch)
    sizes = sizes if pad else {}
    attempts = [(pairs if fold else [], sizes)]
    if fold and pairs and sizes:
        attempts.append(([], sizes))
    for folds, pads in attempts:
        copied = _rewrite(network, folds, pads) if folds or pads else network
        if fuse:
            fused = _fused_copy(copied, batch, reference)
            if fused is not None:
                if folds:
                    _FOLDED.add(fused)
                return fused
        if copied is not network and _reproduces(copied, batch, reference):
            if folds:
                _FOLDED.add(copied)
            return copied
    return None


def _fused_copy(network, batch, reference):
    """A copy of ``network`` with each activation that reads a convolution's output fused into it.

    None where the operator is missing, nothing fuses, or the fused copy fails
    the check (an error in the operator counts as failing).
    """
    import torch

    from sktransfer import _fused
    from sktransfer._static_padding import StaticSameConv2d

    if not _fused.available():
        return None
    found, _ = _direct_reads(
        network,
        batch,
        lambda m: isinstance(m, (torch.nn.Conv2d, StaticSameConv2d)),
        lambda conv, activation: _fused.fusable(conv) and _fused.post_op(activation) is not None,
    )
    if not found:
        return None
    fused = copy.deepcopy(network)
    modules = dict(fused.named_modules())
    for conv_name, activation_name in found:
        conv, activation = modules[conv_name], modules[activation_name]
        _replace(fused, modules, conv_name, _fused.ConvActivation(conv, activation))
        _replace(fused, modules, activation_name, torch.nn.Identity())
    try:
        ok = _reproduces(fused, batch, reference)
    except RuntimeError:
        ok = False
    return fused if ok else None


def _replace(root, modules: dict, name: str, module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(modules[parent_name] if parent_name else root, attr, module)


def _rewrite(network, pairs, sizes):
    """A deep copy of ``network`` with ``pairs`` folded and the ``sizes`` paddings fixed."""
    import torch

    from sktransfer._static_padding import StaticSameConv2d

    rewritten = copy.deepcopy(network)
    modules = dict(rewritten.named_modules())

    def replace(name, module):
        _replace(rewritten, modules, name, module)

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
            replace(norm_name, _norm_rest(norm))
        for conv_name, size in sizes.items():  # after folding: the folded weights
            replace(conv_name, StaticSameConv2d(modules[conv_name], size))
    return rewritten


def _reproduces(rewritten, batch, reference) -> bool:
    """Whether ``rewritten`` gives ``reference`` (float32 outputs) on ``batch`` to ``TOLERANCE``."""
    import torch

    with torch.inference_mode():
        out = rewritten(batch).float()
    reference, out = reference.cpu().numpy(), out.cpu().numpy()
    scale = float(np.abs(reference).max())
    if out.shape != reference.shape or not np.all(np.isfinite(out)):
        return False
    return float(np.abs(out - reference).max()) <= TOLERANCE * max(scale, 1e-12)


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
