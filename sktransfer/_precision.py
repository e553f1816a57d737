"""The ``precision`` parameter: which floating-point type the forward pass uses.

"float32" is exact and always available. "bfloat16" and "float16" run the
matrix products / convolutions in half precision through
``torch.autocast`` (the weights stay float32, and autocast keeps the
numerically sensitive operations -- normalisation, softmax, reductions -- in
float32); outputs are always float32.

Whether half precision is *faster* is detected, not guessed: on a CPU the
decision is a short timed probe (a bfloat16 matrix product against a float32
one, run once per process). A CPU without native bfloat16 instructions
(AVX-512 BF16 or AMX) runs bfloat16 through slow emulation -- often ten to a
hundred times slower than float32 -- and then the estimator warns and falls back
to float32. "float16" is offered on CUDA only; elsewhere it falls back the same way.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings

from sktransfer.exceptions import PrecisionWarning

__all__ = ["PRECISIONS", "PrecisionWarning", "autocast", "resolve_precision"]

PRECISIONS = ("float32", "bfloat16", "float16")

# bfloat16 must beat float32 by this factor in the probe to be used on a CPU.
MIN_CPU_BF16_SPEEDUP = 1.2


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@functools.lru_cache(maxsize=1)
def cpu_bfloat16_speedup() -> float:
    """How much faster a bfloat16 matrix product runs than a float32 one on this CPU.

    A timed probe (a few milliseconds on a CPU with native bfloat16; well
    under a second without), computed once per process. Values above 1 mean
    bfloat16 is faster.
    """
    import torch

    size = 256
    generator = torch.Generator().manual_seed(0)
    a32 = torch.randn(size, size, generator=generator)
    b32 = torch.randn(size, size, generator=generator)
    a16, b16 = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
    with torch.inference_mode():
        # Warm both paths (oneDNN builds its kernels on first use).
        torch.mm(a32, b32)
        start = time.perf_counter()
        torch.mm(a16, b16)
        if time.perf_counter() - start > 0.05:  # emulated: no need to time it further
            t16 = _best_time(lambda: torch.mm(a16, b16), 1)
        else:
            t16 = _best_time(lambda: torch.mm(a16, b16), 5)
        t32 = _best_time(lambda: torch.mm(a32, b32), 5)
    return t32 / t16


def _cpu_bf16_flags() -> str:
    import torch

    found = []
    for name, label in (
        ("_is_avx512_bf16_supported", "AVX-512 BF16"),
        ("_is_amx_tile_supported", "AMX"),
    ):
        check = getattr(torch.cpu, name, None)
        if check is not None:
            try:
                found.append(f"{label}: {'yes' if check() else 'no'}")
            except Exception:  # noqa: BLE001 - informational only
                pass
    return ", ".join(found) if found else "instruction support unknown"


def resolve_precision(precision: str, device: str, *, owner: str = "The encoder") -> str:
    """The precision that will actually run on ``device``, warning on a fallback.

    Parameters
    ----------
    precision : {"float32", "bfloat16", "float16"}
        The requested precision (the estimator's parameter).
    device : str
        A resolved device string ("cpu", "cuda:0", "mps").
    owner : str
        Named in the warning.

    Returns
    -------
    str
        ``precision`` itself, or "float32" after a :class:`PrecisionWarning`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "float32":
        return precision
    kind = device.split(":")[0]
    reason = None
    if kind == "cuda":
        import torch

        if precision == "bfloat16" and not torch.cuda.is_bf16_supported():
            reason = f"{device} does not support bfloat16 (use precision='float16' there)"
    elif kind == "cpu":
        if precision == "float16":
            reason = (
                "float16 is offered on CUDA only (CPUs compute it slowly and it "
                "overflows more easily); on a CPU use precision='bfloat16'"
            )
        else:
            speedup = cpu_bfloat16_speedup()
            if speedup < MIN_CPU_BF16_SPEEDUP:
                reason = (
                    f"bfloat16 runs at {speedup:.2g}x the speed of float32 on this CPU "
                    f"({_cpu_bf16_flags()}), so it would only lose accuracy"
                )
    else:
        reason = f"reduced precision is not supported on {device!r} by sktransfer"
    if reason is None:
        return precision
    warnings.warn(
        f"{owner}: precision={precision!r} is not used because {reason}; "
        "computing in float32 instead.",
        PrecisionWarning,
        stacklevel=3,
    )
    return "float32"


def autocast(precision: str, device: str):
    """A context manager running the forward pass at ``precision`` (no-op for float32)."""
    if precision == "float32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
