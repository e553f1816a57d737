"""Save and load fitted fine-tuning estimators without pickle: JSON + safetensors.

A saved estimator is a folder:

``config.json``
    The estimator's class, its parameters and its fitted attributes (classes,
    target scaling, history...).
``weights.safetensors``
    The trained weights (for text models: the head only).
``body/``
    Text models only: the fine-tuned sentence-transformers folder (its own
    config, tokenizer and safetensors weights).

Loading rebuilds the architecture from the configuration (timm by name, with no
pretrained download; sentence-transformers from ``body/``) and loads the weights
into it; nothing in the folder is executed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sktransfer.exceptions import InvalidInputError

FORMAT = "sktransfer.finetune"
FORMAT_VERSION = 1
_FITTED = (
    "n_outputs_",
    "history_",
    "best_epoch_",
    "n_epochs_",
    "n_blocks_",
    "validation_metric_",
    "model_source_",
    "model_reference_",
    "n_features_in_",
)


def _classes():
    from sktransfer.finetune._estimators import (
        ImageClassifier,
        ImageRegressor,
        TextClassifier,
        TextRegressor,
    )

    return {c.__name__: c for c in (TextClassifier, TextRegressor, ImageClassifier, ImageRegressor)}


def _jsonable(value):
    if isinstance(value, dict):
        return {"__pairs__": [[_jsonable(k), _jsonable(v)] for k, v in value.items()]}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.random.RandomState):
        return None  # a RandomState instance cannot be shared; the weights are what matter
    return value


def _from_json(value):
    if isinstance(value, dict) and "__pairs__" in value:
        return {_from_json(k): _from_json(v) for k, v in value["__pairs__"]}
    return value


def save_estimator(estimator, path) -> None:
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    net = estimator._network()
    backend = estimator._backend
    fitted = {n: _jsonable(getattr(estimator, n)) for n in _FITTED if hasattr(estimator, n)}
    if hasattr(estimator, "classes_"):
        fitted["classes_"] = {
            "values": estimator.classes_.tolist(),
            "dtype": "object"
            if estimator.classes_.dtype == object
            else estimator.classes_.dtype.str,
        }
    if hasattr(estimator, "y_mean_"):
        fitted["y_mean_"] = estimator.y_mean_.tolist()
        fitted["y_scale_"] = estimator.y_scale_.tolist()
        fitted["y_1d"] = bool(estimator._y_1d)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(estimator).__name__,
        "params": {k: _jsonable(v) for k, v in estimator.get_params().items()},
        "fitted": fitted,
    }
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    if backend.kind == "text":
        backend.save_body(net.body, folder)
        state = {k: v for k, v in state.items() if not k.startswith("body.")}
    save_file(state, str(folder / "weights.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))


def load(path, *, device: str = "auto"):
    """Load a fine-tuning estimator saved with its ``save`` method.

    Parameters
    ----------
    path : str or path-like
        The folder written by ``save``.
    device : str, default="auto"
        Where to put the network.

    Returns
    -------
    TextClassifier, TextRegressor, ImageClassifier or ImageRegressor
        Fitted, ready to ``predict``.

    Examples
    --------
    >>> import tempfile
    >>> from sktransfer.finetune import TextClassifier, load
    >>> clf = TextClassifier(trainable_blocks=0, epochs=1, random_state=0)
    >>> clf = clf.fit(["good", "great", "bad", "awful"], [1, 1, 0, 0])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     clf.save(folder)
    ...     loaded = load(folder)
    >>> bool((loaded.predict_proba(["fine"]) == clf.predict_proba(["fine"])).all())
    True
    """
    return load_estimator(path, device=device, expected=None)


def load_estimator(path, *, device: str, expected=None):
    from safetensors.torch import load_file

    from sktransfer._device import resolve_device
    from sktransfer._precision import resolve_precision
    from sktransfer.finetune._bodies import FineTuneNet

    folder = Path(path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no config.json: not a saved estimator.")
    config = json.loads(config_file.read_text())
    if config.get("format") != FORMAT or config.get("format_version", 0) > FORMAT_VERSION:
        raise InvalidInputError(
            f"{str(config_file)!r} is not a saved sktransfer fine-tuning estimator "
            f"(format {config.get('format')!r}, version {config.get('format_version')!r})."
        )
    classes = _classes()
    cls = classes.get(config["class"])
    if cls is None or (expected is not None and not issubclass(cls, expected)):
        wanted = expected.__name__ if expected is not None else "a fine-tuning estimator"
        raise InvalidInputError(f"{str(folder)!r} holds a {config['class']}, not {wanted}.")
    params = {k: _from_json(v) for k, v in config["params"].items()}
    estimator = cls(**params)
    fitted = config["fitted"]
    for name in _FITTED:
        if name in fitted:
            setattr(estimator, name, fitted[name])
    if "classes_" in fitted:
        dtype = fitted["classes_"]["dtype"]
        estimator.classes_ = np.asarray(fitted["classes_"]["values"], dtype=dtype)
    if "y_mean_" in fitted:
        estimator.y_mean_ = np.asarray(fitted["y_mean_"])
        estimator.y_scale_ = np.asarray(fitted["y_scale_"])
        estimator._y_1d = fitted["y_1d"]
    device = resolve_device(device)
    backend = estimator._make_backend()
    body = backend.load_saved_body(folder, device)
    state = load_file(str(folder / "weights.safetensors"))
    net = FineTuneNet(body, state["head.weight"].shape[0], estimator.head_dropout)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (backend.kind == "text" and k.startswith("body."))]
    if missing or unexpected:
        raise InvalidInputError(
            f"The weights in {str(folder)!r} do not fit the {config['class']}: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}."
        )
    for param in net.parameters():
        param.requires_grad_(False)
    estimator._net = net.to(device).eval()
    estimator._backend = backend
    estimator.device_ = device
    estimator.precision_ = resolve_precision(estimator.precision, device, owner=config["class"])
    return estimator
