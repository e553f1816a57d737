"""Device resolution shared by every estimator.

The ``device`` parameter is stored as the user gave it ("auto", "cpu", "cuda",
"cuda:1", "mps"); it is resolved to a concrete device only in ``fit`` (as the
fitted attribute ``device_``), so ``clone`` and ``get_params`` never see a
rewritten value.
"""

from __future__ import annotations

import warnings


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str) -> str:
    """Turn a ``device`` parameter into a concrete torch device string.

    Parameters
    ----------
    device : str
        "auto" picks CUDA, then Apple MPS, then the CPU. Anything else must be a
        device string torch understands and that exists on this machine.

    Returns
    -------
    str
        For example ``"cpu"`` or ``"cuda:0"``.
    """
    import torch

    if device == "auto":
        if _cuda_available():
            return "cuda:0"
        if _mps_available():
            return "mps"
        return "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a device torch understands; "
            "use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from exc
    if dev.type == "cuda":
        if not _cuda_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='auto' (falls back to the CPU) or device='cpu'."
            )
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist."
            )
        return f"cuda:{index}"
    if dev.type == "mps" and not _mps_available():
        raise ValueError(
            f"device={device!r} was requested but MPS is not available; use device='auto'."
        )
    return str(dev)


def device_after_unpickling(device_param: str, fitted_device: str) -> str:
    """The device to load an unpickled estimator on, warning if it changed.

    A model fitted on a GPU and unpickled on a CPU-only machine loads on the
    CPU instead of failing.
    """
    try:
        device = resolve_device(fitted_device)
    except ValueError:
        device = resolve_device("auto" if device_param != "cpu" else "cpu")
        warnings.warn(
            f"This estimator was fitted on {fitted_device!r}, which is not available "
            f"here; it was loaded on {device!r} instead.",
            UserWarning,
            stacklevel=3,
        )
    return device


def reload_body(estimator, adapter):
    """``(device, body)`` for an unpickled fine-tuned estimator: the adapter's body
    with random weights (the tuned ones are loaded over them), on the device
    :func:`device_after_unpickling` picks."""
    device = device_after_unpickling(estimator.device, estimator.device_)
    body, _, _ = adapter.load(device, pretrained=False)
    return device, body
