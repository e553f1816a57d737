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
``README.md``
    The model card (``_card.py``): task, labels, training data size,
    parameters, validation scores, base model and its license. Not read by
    ``load``.

Loading rebuilds the architecture from the configuration (timm by name, with no
pretrained download; sentence-transformers from ``body/``) and loads the weights
into it; nothing in the folder is executed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sktransfer._quiet import quiet_libraries
from sktransfer.exceptions import SavedModelError

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
    "n_train_samples_",
    "n_validation_samples_",
)
# Fitted attributes that folders saved by earlier versions lack.
_OPTIONAL_FITTED = frozenset({"n_train_samples_", "n_validation_samples_"})


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
    adapter = estimator._adapter
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
    from sktransfer.finetune._net import cpu_state

    state = {k: v.contiguous() for k, v in cpu_state(net).items()}
    with quiet_libraries():  # no "Writing model shards" bar from the libraries
        if adapter.kind == "text":
            adapter.save_body(net.body, folder)
            state = {k: v for k, v in state.items() if not k.startswith("body.")}
        save_file(state, str(folder / "weights.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    from sktransfer.finetune._card import model_card

    (folder / "README.md").write_text(model_card(estimator), encoding="utf-8")


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


# ------------------------------------------------------------ validation
_TOP_KEYS = ("class", "fitted", "format", "format_version", "params")
_CLASSIFIER_FITTED = frozenset(_FITTED) - {"n_outputs_"} | {"classes_"}
_REGRESSOR_FITTED = frozenset(_FITTED) | {"y_mean_", "y_scale_", "y_1d"}


def _bad(file: Path, field: str, problem: str):
    return SavedModelError(
        f"{str(file)!r}, {field}: {problem}. The saved estimator is damaged or was "
        "edited; save it again from the fitted estimator."
    )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _check_keys(file: Path, where: str, found, allowed, required=None) -> None:
    required = allowed if required is None else required
    missing = sorted(set(required) - set(found))
    unknown = sorted(set(found) - set(allowed))
    if missing:
        raise _bad(file, f"{where}{missing[0]}", f"missing (also missing: {missing[1:]})")
    if unknown:
        raise _bad(file, f"{where}{unknown[0]}", f"unknown key (unknown keys: {unknown})")


def _read_config(config_file: Path) -> dict:
    try:
        config = json.loads(config_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(config_file, "whole file", f"not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise _bad(config_file, "whole file", f"a {type(config).__name__}, not a JSON object")
    return config


def _check_params(config_file: Path, cls, params) -> dict:
    """Every parameter of ``cls`` present, none unknown, each within its constraints."""
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    if not isinstance(params, dict):
        raise _bad(config_file, "params", f"a {type(params).__name__}, not a JSON object")
    _check_keys(config_file, "params.", params, cls._get_param_names())
    params = {k: _from_json(v) for k, v in params.items()}
    constraints = getattr(cls, "_parameter_constraints", {})
    for name, value in params.items():
        if name not in constraints:
            continue
        try:
            validate_parameter_constraints(
                {name: constraints[name]}, {name: value}, caller_name=cls.__name__
            )
        except InvalidParameterError as exc:
            raise _bad(config_file, f"params.{name}", str(exc).rstrip(".")) from exc
    return params


def _check_fitted(config_file: Path, cls, fitted) -> None:
    """Fitted attributes: the keys this kind of estimator saves, each of its type."""
    if not isinstance(fitted, dict):
        raise _bad(config_file, "fitted", f"a {type(fitted).__name__}, not a JSON object")
    is_classifier = getattr(cls, "_is_classifier", False)
    allowed = _CLASSIFIER_FITTED if is_classifier else _REGRESSOR_FITTED
    _check_keys(config_file, "fitted.", fitted, allowed, allowed - _OPTIONAL_FITTED)

    def need(name: str, ok: bool, what: str) -> None:
        if not ok:
            raise _bad(config_file, f"fitted.{name}", f"{fitted[name]!r} is not {what}")

    for name in ("n_epochs_", "n_blocks_", "n_features_in_"):
        need(name, _is_int(fitted[name]) and fitted[name] >= 1, "an integer >= 1")
    for name in sorted(_OPTIONAL_FITTED & set(fitted)):
        need(name, _is_int(fitted[name]) and fitted[name] >= 0, "an integer >= 0")
    best = fitted["best_epoch_"]
    need("best_epoch_", best is None or (_is_int(best) and 1 <= best), "null or an integer >= 1")
    need("history_", isinstance(fitted["history_"], list), "a list of epochs")
    need(
        "n_epochs_",
        fitted["n_epochs_"] == len(fitted["history_"]),
        f"the length of fitted.history_ ({len(fitted['history_'])})",
    )
    for name in ("model_source_", "model_reference_"):
        need(name, isinstance(fitted[name], str), "a string")
    metric = fitted["validation_metric_"]
    need("validation_metric_", metric is None or isinstance(metric, str), "null or a string")
    if is_classifier:
        classes = fitted["classes_"]
        ok = isinstance(classes, dict) and set(classes) == {"values", "dtype"}
        need("classes_", ok, 'an object with the keys "values" and "dtype"')
        values, dtype = classes["values"], classes["dtype"]
        need("classes_", isinstance(values, list), "a list of class labels")
        try:
            array = np.asarray(values, dtype=np.dtype(dtype))
        except (TypeError, ValueError) as exc:
            raise _bad(
                config_file, "fitted.classes_", f"values {values!r} do not fit dtype {dtype!r}"
            ) from exc
        need("classes_", array.ndim == 1 and len(array) >= 2, "at least 2 class labels")
        need("classes_", len(np.unique(array)) == len(array), "a list of distinct labels")
        return
    n_outputs = fitted["n_outputs_"]
    need("n_outputs_", _is_int(n_outputs) and n_outputs >= 1, "an integer >= 1")
    for name, positive in (("y_mean_", False), ("y_scale_", True)):
        values = fitted[name]
        ok = (
            isinstance(values, list)
            and len(values) == n_outputs
            and all(_is_number(v) and (not positive or v > 0) for v in values)
        )
        sign = "positive " if positive else ""
        need(name, ok, f"a list of {n_outputs} finite {sign}numbers (fitted.n_outputs_)")
    need("y_1d", isinstance(fitted["y_1d"], bool), "true or false")
    need("y_1d", not fitted["y_1d"] or n_outputs == 1, "false when fitted.n_outputs_ > 1")


def _read_weights(weights_file: Path) -> dict:
    from safetensors.torch import load_file

    if not weights_file.is_file():
        raise _bad(weights_file, "whole file", "missing")
    try:
        return load_file(str(weights_file))
    except Exception as exc:  # safetensors raises its own error types
        raise _bad(
            weights_file, "whole file", f"truncated or not a safetensors file ({exc})"
        ) from exc


def _check_head(weights_file: Path, state: dict, n_outputs: int, what: str) -> None:
    weight, bias = state.get("head.weight"), state.get("head.bias")
    if weight is None or bias is None:
        raise _bad(weights_file, "tensor head.weight / head.bias", "missing")
    if weight.ndim != 2 or weight.shape[0] != n_outputs:
        raise _bad(
            weights_file,
            "tensor head.weight",
            f"shape {tuple(weight.shape)} but config.json's {what} needs {n_outputs} output rows",
        )
    if tuple(bias.shape) != (n_outputs,):
        raise _bad(
            weights_file,
            "tensor head.bias",
            f"shape {tuple(bias.shape)} but config.json's {what} needs ({n_outputs},)",
        )


def _check_state(weights_file: Path, state: dict, expected: dict) -> None:
    """The saved tensors are exactly the rebuilt network's, shape for shape."""
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing:
        raise _bad(
            weights_file, f"tensor {missing[0]}", f"missing ({len(missing)} tensors missing)"
        )
    if unknown:
        raise _bad(
            weights_file,
            f"tensor {unknown[0]}",
            f"not a tensor of the rebuilt network ({len(unknown)} unknown)",
        )
    for name, tensor in state.items():
        want = tuple(expected[name].shape)
        if tuple(tensor.shape) != want:
            raise _bad(
                weights_file,
                f"tensor {name}",
                f"shape {tuple(tensor.shape)} but the network rebuilt from config.json has {want}",
            )


def _text_body_shapes(folder: Path) -> tuple[list[Path], dict[str, tuple]]:
    """Read the headers of the body's weight files (a truncated file fails here)."""
    from safetensors import safe_open

    files = sorted((folder / "body").glob("*.safetensors"))
    found: dict[str, tuple] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                    found[key] = tuple(handle.get_slice(key).get_shape())
        except Exception as exc:  # safetensors raises its own error types
            raise _bad(file, "whole file", f"truncated or not a safetensors file ({exc})") from exc
    return files, found


def _check_text_body(files: list[Path], found: dict, body) -> None:
    """The body's weight files hold every tensor of the loaded transformer, shape for shape."""
    modules = getattr(body.st, "_modules", {})
    first = next(iter(modules.values()), None)
    network = getattr(first, "auto_model", None)
    if network is None or not files:
        return
    expected = network.state_dict()
    shared: dict[int, list[str]] = {}
    for key, tensor in expected.items():  # tied weights are saved once
        shared.setdefault(tensor.data_ptr(), []).append(key)
    for key, tensor in expected.items():
        if key in found:
            if found[key] != tuple(tensor.shape):
                raise _bad(
                    files[0],
                    f"tensor {key}",
                    f"shape {found[key]} but body/config.json's network has {tuple(tensor.shape)}",
                )
        elif not any(k in found for k in shared[tensor.data_ptr()]):
            raise _bad(files[0], f"tensor {key}", "missing (it would be left at random values)")


def load_estimator(path, *, device: str, expected=None):
    """Load a saved estimator, checking every file against the others first.

    Raises :class:`~sktransfer.exceptions.SavedModelError` (naming the file and
    the field or tensor) for: invalid JSON; missing or unknown keys; parameters
    outside the estimator's constraints; fitted attributes of the wrong type or
    length; a head whose width disagrees with the classes / outputs in the
    configuration; body tensors missing, unknown or of another shape than the
    network rebuilt from the configuration; truncated weight files.
    """
    from sktransfer._device import resolve_device
    from sktransfer.finetune._net import rebuild_network
    from sktransfer.finetune._registry import estimator_class

    folder = Path(path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{str(folder)!r} holds no config.json: not a saved estimator.")
    config = _read_config(config_file)
    if config.get("format") != FORMAT or not (
        _is_int(config.get("format_version")) and 1 <= config["format_version"] <= FORMAT_VERSION
    ):
        raise SavedModelError(
            f"{str(config_file)!r} is not a saved sktransfer fine-tuning estimator "
            f"(format {config.get('format')!r}, version {config.get('format_version')!r})."
        )
    _check_keys(config_file, "", config, _TOP_KEYS)
    cls = estimator_class(config["class"])
    if cls is None or (expected is not None and not issubclass(cls, expected)):
        wanted = expected.__name__ if expected is not None else "a fine-tuning estimator"
        raise SavedModelError(
            f"{str(folder)!r} holds a {config['class']}, not {wanted} (field class of "
            f"{str(config_file)!r}); load it with sktransfer.finetune.load."
        )
    params = _check_params(config_file, cls, config["params"])
    fitted = config["fitted"]
    _check_fitted(config_file, cls, fitted)
    is_classifier = getattr(cls, "_is_classifier", False)
    if is_classifier:
        n_outputs, what = len(fitted["classes_"]["values"]), "fitted.classes_"
    else:
        n_outputs, what = fitted["n_outputs_"], "fitted.n_outputs_"
    weights_file = folder / "weights.safetensors"
    state = _read_weights(weights_file)
    _check_head(weights_file, state, n_outputs, what)

    estimator = cls(**params)
    for name in _FITTED:
        if name in fitted:
            setattr(estimator, name, fitted[name])
    if is_classifier:
        dtype = fitted["classes_"]["dtype"]
        estimator.classes_ = np.asarray(fitted["classes_"]["values"], dtype=dtype)
    else:
        estimator.y_mean_ = np.asarray(fitted["y_mean_"], dtype=np.float64)
        estimator.y_scale_ = np.asarray(fitted["y_scale_"], dtype=np.float64)
        estimator._y_1d = fitted["y_1d"]
    device = resolve_device(device)
    adapter = estimator._make_adapter()
    if adapter.kind == "text":
        body_files, body_shapes = _text_body_shapes(folder)
    try:
        with quiet_libraries():
            body = adapter.load_saved_body(folder, device)
    except Exception as exc:
        where = folder / "body" if adapter.kind == "text" else config_file
        raise _bad(where, "body", f"the network cannot be rebuilt ({exc})") from exc
    if adapter.kind == "text":
        _check_text_body(body_files, body_shapes, body)

    def check(wanted: dict) -> None:
        if adapter.kind == "text":  # the body's weights live in body/
            wanted = {k: v for k, v in wanted.items() if not k.startswith("body.")}
        _check_state(weights_file, state, wanted)

    estimator._net = rebuild_network(
        body,
        state,
        device,
        estimator.head_dropout,
        check=check,
        strict=adapter.kind != "text",
    )
    estimator._adapter = adapter
    estimator.device_ = device
    from sktransfer.finetune._base import prediction_precision

    estimator.precision_ = prediction_precision(estimator, estimator._net, adapter, device)
    return estimator
