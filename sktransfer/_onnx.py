"""ONNX Runtime and OpenVINO as inference backends of the frozen encoders.

``backend="onnx"`` and ``backend="openvino"``: the encoder's loaded torch body is
exported once with ``torch.onnx.export`` (the ``torch.export`` based exporter),
the export is checked against the torch forward pass on the adapter's probe
batch, and ONNX Runtime or OpenVINO runs it on the CPU. The float32 export
computes the numbers of the same network (cosine to the torch forward >= 0.9999
on every probe row, or the export is refused); OpenVINO may also run it in
bfloat16, where the encoder's ``precision`` picks it.

Where the export lives
    A file per model fingerprint (weights content, every output-affecting
    parameter) and exporter version, so an export is made once and never served
    for other weights: ``<cache folder>/onnx/<key>/model.onnx`` when ``cache`` is
    a folder sktransfer may write, else ``<data home>/onnx/<key>/model.onnx``
    (``SKTRANSFER_DATA``, see :func:`sktransfer.datasets.get_data_home`). Weights
    without a content hash (randomly initialised ones) are exported in memory
    only. A folder appears whole or not at all (written aside, then renamed).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from sktransfer._optional import import_optional
from sktransfer.exceptions import BackendError

BACKENDS = ("torch", "onnx", "openvino")

# backend -> the runtime's module (its pip extra is named in sktransfer._optional)
_RUNTIMES = {"onnx": "onnxruntime", "openvino": "openvino"}

# Bumped whenever the export changes (inputs, outputs, exporter options), so
# that files written by an older sktransfer are never read as current ones.
EXPORT_FORMAT = 1

# Every probe row's cosine between the float32 runtime and torch must reach this.
MIN_COSINE = 0.9999


def check_available(backend: str = "onnx") -> None:
    """Raise an ImportError naming the extra when the runtime or the exporter is missing."""
    check_runtime(backend)
    purpose = f"backend={backend!r}"
    import_optional("onnx", f"{purpose} (exporting the model)")
    import_optional("onnxscript", f"{purpose} (exporting the model)")


def check_runtime(backend: str = "onnx") -> None:
    """Raise an ImportError naming the extra when the runtime is missing."""
    import_optional(_RUNTIMES[backend], f"backend={backend!r} (running the exported model)")


def export_folder(cache) -> Path:
    """Where exports are kept: beside a folder cache when writable, else the data home."""
    if cache is not None and not (isinstance(cache, str) and cache == "memory"):
        folder = Path(cache).expanduser()
        with contextlib.suppress(OSError):  # the store makes it too, on first use
            folder.mkdir(parents=True, exist_ok=True)
        if folder.is_dir() and os.access(folder, os.W_OK):
            return folder / "onnx"
    from sktransfer.datasets import get_data_home

    return get_data_home() / "onnx"


def export_key(fingerprint: str) -> str:
    """The export's name: the model fingerprint, the exporter and its version."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    h.update(repr((EXPORT_FORMAT, torch.__version__, fingerprint)).encode())
    return h.hexdigest()


# ------------------------------------------------------------------ batches
def _split(batch) -> tuple[list[str], list, dict]:
    """A batch as (input names, tensors, constant entries) for export and for feeding."""
    import torch

    if isinstance(batch, torch.Tensor):
        return ["input"], [batch], {}
    names, tensors, constants = [], [], {}
    for name, value in batch.items():
        if isinstance(value, torch.Tensor):
            names.append(name)
            tensors.append(value)
        else:
            constants[name] = value
    return names, tensors, constants


def _feeds(batch, names: list[str]) -> dict[str, np.ndarray]:
    """The runtime's inputs: numpy arrays, from torch tensors or numpy arrays."""
    if not hasattr(batch, "keys"):  # one tensor or array (images)
        return {names[0]: _as_array(batch)}
    missing = [name for name in names if name not in batch]
    if missing:
        raise BackendError(
            f"The exported model takes inputs {names} but the batch has no {missing}; "
            "this model's preprocessing changed since the export. Use backend='torch'."
        )
    return {name: _as_array(batch[name]) for name in names}


def _as_array(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value)
    return np.ascontiguousarray(value.detach().cpu().numpy())  # a torch tensor


def _positional(body, names: list[str], constants: dict, is_dict: bool):
    """``body`` as a module of positional tensors (what the exporter traces)."""
    from torch import nn

    class Positional(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, *tensors):
            if not is_dict:
                return self.body(tensors[0])
            return self.body({**dict(zip(names, tensors, strict=True)), **constants})

    return Positional()


# ------------------------------------------------------------------- export
def _export(body, batch, dynamic_axes: tuple[int, ...], destination: Path | None):
    """Export ``body`` traced on ``batch``; the ONNX bytes (None when written to disk)."""
    import torch

    names, tensors, constants = _split(batch)
    module = _positional(body, names, constants, not isinstance(batch, torch.Tensor)).eval()
    # One symbol per axis, shared by the inputs (token ids and their mask have
    # one batch size and one sequence length).
    dims = {axis: torch.export.Dim(f"axis{axis}") for axis in dynamic_axes}
    dynamic = tuple({axis: dims[axis] for axis in dynamic_axes if axis < t.ndim} for t in tensors)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                module,
                tuple(tensors),
                input_names=names,
                output_names=["features"],
                dynamic_shapes=(dynamic,),  # forward(*tensors): one varargs entry
                dynamo=True,
                verbose=False,
            )
        except Exception as exc:  # the exporter raises many kinds of errors
            cause = exc.__cause__ or exc
            first = re.sub(r"\x1b\[[0-9;]*m", "", str(cause)).strip().split("\n")[0]
            raise BackendError(
                f"torch.onnx.export could not export this model ({type(cause).__name__}: "
                f"{first}). Use backend='torch'."
            ) from exc
        if destination is None:
            return program.model_proto.SerializeToString()
        program.save(str(destination))
    return None


def _stored(folder: Path, key: str, export) -> Path:
    """``folder/key/model.onnx``, exported by ``export(path)`` unless already there."""
    final = folder / key / "model.onnx"
    if final.is_file():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    aside = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder))
    try:
        export(aside / "model.onnx")
        try:
            os.rename(aside, folder / key)
        except OSError:
            if not final.is_file():  # not another process that finished first
                raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return final


# ----------------------------------------------------------------- sessions
class OnnxRunner:
    """Calls like the torch body: a batch in, a float32 tensor of features out (ONNX Runtime)."""

    precision = "float32"

    def __init__(self, session, names: list[str], source: str, model=None):
        self.session = session
        self.names = names
        self.source = source  # the file run, or "memory"
        self.model = model  # its path, or the ONNX bytes

    def numpy(self, batch) -> np.ndarray:
        """Features of a batch (torch tensors or numpy arrays) as a float32 array."""
        (out,) = self.session.run(["features"], _feeds(batch, self.names))
        return np.asarray(out, dtype=np.float32)

    def __call__(self, batch):
        import torch

        return torch.from_numpy(self.numpy(batch))


class OpenVinoRunner:
    """The same with an OpenVINO compiled model (one infer request per thread)."""

    def __init__(self, compiled, names, source: str, model=None, precision="float32"):
        self.compiled = compiled
        self.names = names
        self.source = source
        self.model = model
        self.precision = precision
        self._local = threading.local()

    def numpy(self, batch) -> np.ndarray:
        """Features of a batch (torch tensors or numpy arrays) as a float32 array."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        result = request.infer(_feeds(batch, self.names))
        return np.array(result[self.compiled.output(0)], dtype=np.float32)

    def __call__(self, batch):
        import torch

        return torch.from_numpy(self.numpy(batch))


_RUNNERS: OrderedDict = OrderedDict()
_RUNNERS_LOCK = threading.Lock()
_MAX_RUNNERS = 4


def _start(backend: str, model, threads: int, names: list[str], source: str, precision="float32"):
    """The runner of ``model`` (a path, or the ONNX bytes) on ``backend``'s runtime."""
    if backend == "openvino":
        import openvino

        config = {
            "INFERENCE_NUM_THREADS": threads,
            # Always named: OpenVINO would pick bfloat16 on CPUs that have it.
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bfloat16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        core = openvino.Core()
        if isinstance(model, Path):
            compiled = core.compile_model(str(model), "CPU", config)
        else:
            with tempfile.TemporaryDirectory() as tmp:  # read whole, then deleted
                path = Path(tmp) / "model.onnx"
                path.write_bytes(model)
                compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        return OpenVinoRunner(compiled, names, source, model, precision)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source_arg = str(model) if isinstance(model, Path) else model
    session = onnxruntime.InferenceSession(source_arg, options, providers=["CPUExecutionProvider"])
    return OnnxRunner(session, names, source, model)


def _session(model, threads: int):
    """An ONNX Runtime session of ``model`` (a path or the ONNX bytes)."""
    return _start("onnx", model, threads, [], "").session


def runner(
    body,
    adapter,
    fingerprint: str,
    *,
    cache,
    threads: int,
    on_disk: bool,
    backend: str = "onnx",
    precision: str = "float32",
):
    """The ``backend`` runner of ``body`` (exported and checked on first use).

    ``fingerprint`` identifies the float32 network (not the backend or the
    precision): one export serves every backend. The float32 runner is checked
    against torch; a bfloat16 runner (OpenVINO only) is what the caller's
    precision rules chose. One runner per (export, backend, threads, precision)
    is kept for the process.
    """
    if precision != "float32" and backend != "openvino":
        raise ValueError(f"backend={backend!r} computes in float32 only, not {precision}.")
    key = export_key(fingerprint)
    slot = (key, backend, threads, precision)
    found = _kept(slot)
    if found is not None:
        return found
    check_available(backend)  # once per runner made, not on every batch of transforms
    if precision != "float32":
        exact = runner(
            body,
            adapter,
            fingerprint,
            cache=cache,
            threads=threads,
            on_disk=on_disk,
            backend=backend,
        )
        made = _start(backend, exact.model, threads, exact.names, exact.source, precision)
        return _keep(slot, made)
    samples = adapter.probe_samples()
    if samples is None:
        raise BackendError(
            f"backend={backend!r} needs example inputs to export the model, and the "
            f"{adapter.kind!r} adapter has none (probe_samples). Use backend='torch'."
        )
    items = adapter.check_X(samples)
    _, batch = next(iter(adapter.inference_batches(items, len(items))))
    axes = adapter.onnx_dynamic_axes
    body = body.eval()
    names = _split(batch)[0]
    if not on_disk:
        model = _export(body, batch, axes, None)
        made = _start(backend, model, threads, names, "memory")
        _check(made, body, adapter, items, backend)
        return _keep(slot, made)
    folder = export_folder(cache)
    found = (folder / key / "model.onnx").is_file()
    model = _stored(folder, key, lambda path: _export(body, batch, axes, path))
    try:
        made = _start(backend, model, threads, names, str(model))
        _check(made, body, adapter, items, backend)
    except Exception as exc:
        if not found:  # exported just now: the export itself is at fault
            raise
        # A stored file that no longer loads or checks (damaged, or written by
        # an exporter that computes otherwise): moved aside, exported again.
        damaged = folder / f"{key}.damaged-{os.getpid()}"
        shutil.rmtree(damaged, ignore_errors=True)
        os.rename(folder / key, damaged)
        warnings.warn(
            f"The stored ONNX export {model} could not be used "
            f"({type(exc).__name__}: {_first_line(exc)}); "
            f"it was moved to {damaged} and the model exported again.",
            UserWarning,
            stacklevel=2,
        )
        model = _stored(folder, key, lambda path: _export(body, batch, axes, path))
        made = _start(backend, model, threads, names, str(model))
        _check(made, body, adapter, items, backend)
    return _keep(slot, made)


def stored_runner(
    model: Path, key: str, names: list[str], backend: str, threads: int | None, precision: str
):
    """The ``backend`` runner of an export checked in an earlier process (no torch).

    Used by encoders started from a start record (``sktransfer._lean``), which
    verified the file's hash; shares the runners ``runner`` keeps.
    """
    if precision != "float32" and backend != "openvino":
        raise ValueError(f"backend={backend!r} computes in float32 only, not {precision}.")
    threads = threads or _default_threads()
    slot = (key, backend, threads, precision)
    found = _kept(slot)
    if found is not None:
        return found
    check_runtime(backend)
    return _keep(slot, _start(backend, model, threads, list(names), str(model), precision))


def _default_threads() -> int:
    """torch's default intra-op thread count, without importing torch.

    ``OMP_NUM_THREADS`` when set, else the physical cores this process may use.
    """
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    import joblib

    return max(1, joblib.cpu_count(only_physical_cores=True))


def _kept(slot: tuple):
    """The runner kept for ``slot`` (now the most recently used), or None."""
    with _RUNNERS_LOCK:
        found = _RUNNERS.get(slot)
        if found is not None:
            _RUNNERS.move_to_end(slot)
        return found


def _keep(slot: tuple, made):
    with _RUNNERS_LOCK:
        _RUNNERS[slot] = made
        while len(_RUNNERS) > _MAX_RUNNERS:
            _RUNNERS.popitem(last=False)
    return made


def _check(made, body, adapter, items: list, backend: str = "onnx") -> None:
    """Refuse an export whose numbers differ from the torch forward pass.

    The probe batch, its first two items, and every item alone (other batch
    sizes and, for text, other sequence lengths), in float32.
    """
    import torch

    worst = 1.0
    for subset in (items, items[:2], *([item] for item in items)):
        for _, batch in adapter.inference_batches(subset, len(subset)):
            with torch.inference_mode():
                expected = body(batch).float().numpy()
            try:
                got = made(batch).numpy()
            except Exception as exc:  # the runtime's own error types
                raise BackendError(
                    f"The ONNX export of this model fails on inputs of another shape "
                    f"under backend={backend!r} ({type(exc).__name__}: "
                    f"{_first_line(exc)}). Use backend='torch'."
                ) from exc
            if got.shape != expected.shape:
                raise BackendError(
                    f"The ONNX export gives outputs of shape {got.shape} where the torch "
                    f"model gives {expected.shape}. Use backend='torch'."
                )
            worst = min(worst, float(_cosines(got, expected).min()))
    if not worst >= MIN_COSINE:
        raise BackendError(
            f"The ONNX export of this model, run by backend={backend!r}, does not compute "
            f"what the torch model does (smallest cosine {worst:.6f} < {MIN_COSINE} on the "
            "probe batch); the export is not used. Use backend='torch'."
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "no message"


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.all(a == b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (a * b).sum(axis=1) / norms
    return np.where(same, 1.0, cos)


def clear_runners() -> None:
    """Forget every runner of this process (tests)."""
    with _RUNNERS_LOCK:
        _RUNNERS.clear()
