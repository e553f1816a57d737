"""The ``precision`` parameter: which floating-point type the forward pass uses.

"auto" (the default of every estimator) picks bfloat16 where the device computes
it natively *and* a short numerics probe on the loaded model agrees with float32
(mean cosine of the outputs at least ``AUTO_MIN_COSINE`` on a fixed probe
batch), float32 otherwise. The decision is deterministic on a given machine
(instruction flags, not timings) and is recorded, with its reason, in the
fitted ``precision_`` attribute (a :class:`Precision`: a ``str`` that also has a
``reason``). No warning is given for "auto": whichever it picks is intended.

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
import os
import time
import warnings
import weakref
from collections.abc import Callable

import numpy as np

from sktransfer.exceptions import PrecisionWarning

__all__ = [
    "PRECISIONS",
    "Precision",
    "PrecisionWarning",
    "autocast",
    "native_bfloat16",
    "resolve_precision",
]

PRECISIONS = ("auto", "float32", "bfloat16", "float16")

#: Set to 0 to make precision="auto" (and training autocast) use float32 everywhere.
BFLOAT16_ENV = "SKTRANSFER_BFLOAT16"

# precision="auto" keeps bfloat16 only if its outputs on the probe batch have at
# least this mean cosine similarity to the float32 ones.
AUTO_MIN_COSINE = 0.999


_BF16_INSTRUCTIONS = (("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX"))

# The fixed probe batch of text models: short and long, plain and noisy.
PROBE_TEXTS = (
    "A great movie.",
    "The service was slow and the food arrived cold, but the staff apologised twice.",
    "I would not recommend this product to anyone; it broke after two days of normal use.",
    "Stocks fell sharply on Tuesday as investors weighed new figures on inflation and jobs.",
    "lol this is the best thing ever!!! :)",
    "The committee will meet again next month to review the proposal in detail.",
    "Not bad at all.",
    "Le film était long, mais la fin valait vraiment la peine.",
)


def probe_images() -> list:
    """The fixed probe batch of image models: scikit-learn's two sample photos."""
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)


class Precision(str):
    """The precision in use (a plain ``str`` such as ``"bfloat16"``) and why it was chosen.

    Compares, hashes and serialises like the string; ``reason`` explains the
    choice (the device's capability and, for ``precision="auto"``, the numerics
    probe's cosine).

    Examples
    --------
    >>> p = Precision("float32", "requested")
    >>> p == "float32", p.reason
    (True, 'requested')
    """

    reason: str

    def __new__(cls, value: str, reason: str = ""):
        obj = super().__new__(cls, value)
        obj.reason = reason
        return obj

    def __reduce__(self):
        return (Precision, (str(self), self.reason))


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


def cpu_capabilities() -> dict[str, bool | None]:
    """The CPU's vector extensions that decide the fast paths (``None``: unknown).

    Examples
    --------
    >>> sorted(cpu_capabilities())
    ['amx_bf16', 'avx2', 'avx512_bf16']

    On Linux x86 the kernel's list (``/proc/cpuinfo``, which names only what the
    CPU has and the kernel enabled) answers without importing torch; elsewhere
    torch's own checks answer.
    """
    flags = _linux_cpu_flags()
    if flags is not None:
        return {key: key in flags for key in ("avx2", "avx512_bf16", "amx_bf16")}
    import torch

    found: dict[str, bool | None] = {}
    for key, name in (
        ("avx2", "_is_avx2_supported"),
        ("avx512_bf16", "_is_avx512_bf16_supported"),
        ("amx_bf16", "_is_amx_tile_supported"),
    ):
        check = getattr(torch.cpu, name, None)
        try:
            found[key] = None if check is None else bool(check())
        except Exception:  # noqa: BLE001 - informational only
            found[key] = None
    return found


def native_bfloat16(device: str) -> tuple[bool, str]:
    """Whether ``device`` computes bfloat16 in hardware, and what says so.

    The capability half of ``precision="auto"`` (the numerics probe is the other
    half). On a CPU: AVX-512 BF16 or AMX instructions (without them bfloat16 is
    emulated, many times slower than float32). On CUDA: bfloat16 support
    without emulation (compute capability 8.0 or newer). The environment
    variable ``SKTRANSFER_BFLOAT16=0`` answers "no" everywhere (every "auto"
    then computes in float32, e.g. for results that must match across a
    fleet of different machines).

    Examples
    --------
    >>> native, reason = native_bfloat16("mps")
    >>> native
    False
    >>> print(reason)  # doctest: +SKIP
    bfloat16 is not used on 'mps' by sktransfer
    """
    setting = os.environ.get(BFLOAT16_ENV, "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False, f"{BFLOAT16_ENV}={os.environ[BFLOAT16_ENV]} in the environment"
    kind = device.split(":")[0]
    if kind == "cpu":
        caps = cpu_capabilities()
        have = [label for key, label in _BF16_INSTRUCTIONS if caps.get(key)]
        if have:
            return True, f"the CPU has {' and '.join(have)}"
        return False, "the CPU has neither AVX-512 BF16 nor AMX (bfloat16 would be emulated)"
    if kind == "cuda":
        import torch

        try:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3
            native = torch.cuda.is_bf16_supported()
        if native:
            return True, f"{device} computes bfloat16 natively"
        return False, f"{device} does not compute bfloat16 natively"
    return False, f"bfloat16 is not used on {device!r} by sktransfer"


# Probe results per loaded network: (network -> {(device, precision): cosine}).
_PROBED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mean_cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and minimum cosine similarity of the rows of ``a`` and ``b``.

    Examples
    --------
    >>> import numpy as np
    >>> mean_cosine(np.eye(2), np.eye(2))
    (1.0, 1.0)
    """
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.einsum("ij,ij->i", a, b) / np.where(norms > 0, norms, 1.0)
    cos = np.where(norms > 0, cos, 1.0)
    return float(cos.mean()), float(cos.min())


@functools.cache
def _linux_cpu_flags() -> frozenset[str] | None:
    """The x86 feature flags of ``/proc/cpuinfo`` (None where there is no such list)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                name, _, value = line.partition(":")
                if name.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def _probe_cosine(probe: Callable[[str], np.ndarray], key, device: str) -> float:
    cached = None
    if key is not None:
        try:
            cached = _PROBED.setdefault(key, {}).get((device, "bfloat16"))
        except TypeError:  # not weak-referenceable: no caching
            key = None
    if cached is not None:
        return cached
    reference = probe("float32")
    reduced = probe("bfloat16")
    if not (np.isfinite(reference).all() and np.isfinite(reduced).all()):
        cosine = float("nan")
    else:
        cosine = mean_cosine(reference, reduced)[0]
    if key is not None:
        _PROBED[key][(device, "bfloat16")] = cosine
    return cosine


def resolve_auto(device: str, probe: Callable[[str], np.ndarray] | None, *, key=None) -> Precision:
    """What ``precision="auto"`` runs on ``device``, with the reason.

    Parameters
    ----------
    device : str
        A resolved device string.
    probe : callable or None
        ``probe(precision)`` returns the model's outputs (2-D float array) on a
        fixed probe batch computed at ``precision``; ``None`` skips the
        numerics check (float32 is then chosen).
    key : object, optional
        The loaded network: the probe runs once per network and device.

    Returns
    -------
    Precision

    Examples
    --------
    >>> resolve_auto("mps", None)
    'float32'
    """
    native, why = native_bfloat16(device)
    if not native:
        return Precision("float32", f"auto: {why}")
    if probe is None:
        return Precision("float32", f"auto: {why}, but this model has no numerics probe")
    cosine = _probe_cosine(probe, key, device)
    if cosine >= AUTO_MIN_COSINE:
        return Precision(
            "bfloat16",
            f"auto: {why} and bfloat16 agrees with float32 on the probe batch "
            f"(mean cosine {cosine:.5f} >= {AUTO_MIN_COSINE})",
        )
    return Precision(
        "float32",
        f"auto: {why}, but bfloat16 disagrees with float32 on the probe batch "
        f"(mean cosine {cosine:.5f} < {AUTO_MIN_COSINE})",
    )


def resolve_precision(
    precision: str,
    device: str,
    *,
    owner: str = "The encoder",
    probe: Callable[[str], np.ndarray] | None = None,
    probe_key=None,
) -> Precision:
    """The precision that will actually run on ``device``, warning on a fallback.

    Parameters
    ----------
    precision : {"auto", "float32", "bfloat16", "float16"}
        The requested precision (the estimator's parameter).
    device : str
        A resolved device string ("cpu", "cuda:0", "mps").
    owner : str
        Named in the warning.
    probe, probe_key
        For "auto": the numerics probe and the network it runs (see
        :func:`resolve_auto`).

    Returns
    -------
    Precision
        ``precision`` itself, or "float32" after a :class:`PrecisionWarning`;
        for "auto" the choice of :func:`resolve_auto` (never a warning).

    Examples
    --------
    >>> p = resolve_precision("float32", "cpu")
    >>> p, p.reason
    ('float32', 'requested')
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision == "auto":
        return resolve_auto(device, probe, key=probe_key)
    if precision == "float32":
        return Precision(precision, "requested")
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
        return Precision(precision, "requested")
    return _fall_back(owner, precision, reason)


def _fall_back(owner: str, precision: str, reason: str) -> Precision:
    """float32 instead of ``precision``, with a :class:`PrecisionWarning` saying why."""
    warnings.warn(
        f"{owner}: precision={precision!r} is not used because {reason}; "
        "computing in float32 instead.",
        PrecisionWarning,
        stacklevel=4,
    )
    return Precision("float32", f"requested {precision}, but {reason}")


def backend_precision(precision: str, backend: str, *, owner: str = "The encoder") -> Precision:
    """The precision of an inference ``backend`` other than torch: float32.

    ONNX Runtime on the CPU computes the exported float32 model. "auto" picks
    float32 without a warning; an explicit reduced precision warns
    (:class:`PrecisionWarning`) and falls back to float32.

    Examples
    --------
    >>> p = backend_precision("auto", "onnx")
    >>> p, p.reason
    ('float32', "auto: backend='onnx' computes in float32")
    """
    if precision == "auto":
        return Precision("float32", f"auto: backend={backend!r} computes in float32")
    if precision == "float32":
        return Precision("float32", "requested")
    reason = f"backend={backend!r} computes in float32 (use backend='torch' for {precision})"
    return _fall_back(owner, precision, reason)


def autocast(precision: str, device: str):
    """A context manager running the forward pass at ``precision`` (no-op for float32)."""
    if precision == "float32":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)
