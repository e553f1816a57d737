"""Start records of ``ImageEncoder``: timm's evaluation transform without torch.

See ``sktransfer._lean`` for what a start record is and the rules every record
follows. An image record holds what ``transform`` needs: the export (its
folder's name and digest, its input names), the output width, the weights'
identity, timm's resolved ``data_config``, the architecture (both enter the
embedding cache's key) and the evaluation transform as plain steps, run here
by PIL and numpy (:class:`LeanPreprocess`).

The steps are read off the model's own ``eval_transform`` (a torchvision
``Compose``): ``Resize`` (to a shorter side, or to an exact height and
width, as timm's "center" and "squash" crop modes make it), ``CenterCrop``
(padding with black where the crop is larger than the image, as torchvision
does), ``ToTensor`` (timm's ``MaybeToTensor``) and ``Normalize``. Any other
step (timm's ``ResizeKeepRatio`` of non-square "center" crops, the "border"
crop mode's padding, a border trim) means no record. A record is written only
when :func:`agrees` finds the numpy steps bit for bit equal to
``eval_transform`` on :func:`check_images`.
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from sktransfer import _fingerprint, _lean

# torchvision's interpolation names -> PIL's resampling filters (numbers, so
# that nothing is imported before a record is read).
_PIL_FILTERS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}

# The eval transforms read: Resize, CenterCrop, a [0, 1] tensor conversion, Normalize.
_TO_TENSOR = {
    ("torchvision.transforms.transforms", "ToTensor"),
    ("timm.data.transforms", "MaybeToTensor"),
}


# ------------------------------------------------------------- the transform
class LeanPreprocess:
    """timm's evaluation transform of one RGB PIL image, with PIL and numpy only.

    Parameters
    ----------
    steps : dict
        ``resize`` (an int: the shorter side; or ``[height, width]``),
        ``interpolation`` (a torchvision interpolation name), ``crop``
        (``[height, width]``), ``mean`` and ``std`` (one float per channel),
        as :func:`preprocess_steps` reads them off a torchvision ``Compose``.

    Raises
    ------
    ValueError
        If ``steps`` misses an entry or holds a value of the wrong kind.

    Examples
    --------
    >>> from PIL import Image
    >>> steps = {"resize": 8, "interpolation": "bilinear", "crop": [6, 6],
    ...          "mean": [0.5] * 3, "std": [0.5] * 3}
    >>> LeanPreprocess(steps)(Image.new("RGB", (20, 10))).shape
    (3, 6, 6)
    """

    def __init__(self, steps: dict):
        try:
            resize = steps["resize"]
            if isinstance(resize, int):
                self.resize: int | tuple[int, int] = int(resize)
            else:
                height, width = (int(v) for v in resize)
                self.resize = (height, width)
            self.filter = _PIL_FILTERS[str(steps["interpolation"])]
            self.crop = tuple(int(v) for v in steps["crop"])
            mean = np.asarray(steps["mean"], dtype=np.float32)
            std = np.asarray(steps["std"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a preprocessing of a start record: {steps!r} ({exc})") from exc
        if len(self.crop) != 2 or mean.shape != (3,) or std.shape != (3,) or (std == 0).any():
            raise ValueError(f"not a preprocessing of a start record: {steps!r}")
        self.steps = dict(steps)
        self.mean = mean[:, None, None]
        self.std = std[:, None, None]

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` after the resize (torchvision's rounding)."""
        if not isinstance(self.resize, int):
            return self.resize[1], self.resize[0]
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize, int(self.resize * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def __call__(self, image) -> np.ndarray:
        """A float32 array (3, crop height, crop width) of an RGB PIL ``image``."""
        size = self.resized_size(*image.size)
        if size != image.size:
            image = image.resize(size, self.filter)
        pixels = np.asarray(image, dtype=np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected an RGB image, got mode {image.mode!r}")
        pixels = _center_crop(pixels, *self.crop)
        chw = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        return np.ascontiguousarray((chw - self.mean) / self.std)


def _center_crop(pixels: np.ndarray, crop_height: int, crop_width: int) -> np.ndarray:
    """torchvision's ``center_crop`` of an (H, W, C) array: black padding, then the crop."""
    height, width = pixels.shape[:2]
    if crop_height > height or crop_width > width:
        grow_h, grow_w = max(crop_height - height, 0), max(crop_width - width, 0)
        pad = ((grow_h // 2, (grow_h + 1) // 2), (grow_w // 2, (grow_w + 1) // 2), (0, 0))
        pixels = np.pad(pixels, pad)
        height, width = pixels.shape[:2]
    top = int(round((height - crop_height) / 2.0))
    left = int(round((width - crop_width) / 2.0))
    return pixels[top : top + crop_height, left : left + crop_width]


def preprocess_steps(transform) -> dict | None:
    """The steps of a torchvision evaluation ``Compose`` that :class:`LeanPreprocess` runs.

    None for anything else (another step, an option the numpy steps do not
    reproduce): such a model keeps the torch path.
    """
    steps = getattr(transform, "transforms", None)
    if type(transform).__name__ != "Compose" or not isinstance(steps, list) or len(steps) != 4:
        return None
    resize, crop, to_tensor, normalize = steps
    names = [(type(step).__module__, type(step).__name__) for step in steps]
    if (
        names[0] != ("torchvision.transforms.transforms", "Resize")
        or names[1] != ("torchvision.transforms.transforms", "CenterCrop")
        or names[2] not in _TO_TENSOR
        or names[3] != ("torchvision.transforms.transforms", "Normalize")
    ):
        return None
    interpolation = getattr(getattr(resize, "interpolation", None), "value", None)
    if interpolation not in _PIL_FILTERS or getattr(resize, "max_size", None) is not None:
        return None
    size = resize.size
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    if isinstance(size, int):
        size_out: int | list[int] = int(size)
    elif isinstance(size, (list, tuple)) and len(size) == 2:
        size_out = [int(v) for v in size]
    else:
        return None
    crop_size = crop.size
    if isinstance(crop_size, int):
        crop_size = (crop_size, crop_size)
    if len(crop_size) != 2:
        return None

    def floats(value) -> list[float]:
        values = value.tolist() if hasattr(value, "tolist") else list(value)
        return [float(v) for v in (values if isinstance(values, list) else [values])]

    mean, std = floats(normalize.mean), floats(normalize.std)
    if len(mean) != 3 or len(std) != 3:
        return None
    return {
        "resize": size_out,
        "interpolation": interpolation,
        "crop": [int(v) for v in crop_size],
        "mean": mean,
        "std": std,
    }


# ----------------------------------------------------------- the agreement
def check_images(adapter, folder: Path) -> list:
    """The images on which the numpy steps must equal the model's own transform.

    The adapter's probe photos; random pixels at tiny, tall, wide, odd and
    exact sizes; RGBA, grey, palette, 16-bit and float inputs; a PNG as bytes;
    and a JPEG large enough for draft decoding (``jpeg_draft``), as a file in
    ``folder`` and as bytes.
    """
    from PIL import Image

    rng = np.random.default_rng(20240611)
    items = list(adapter.probe_samples() or [])
    _, height, width = adapter.data_config["input_size"]
    crop_pct = adapter.data_config.get("crop_pct") or 1.0
    scale = math.floor(min(height, width) / crop_pct)
    sizes = [
        (1, 1),
        (7, 5),
        (5, 7),
        (2, 3),
        (31, 97),
        (97, 31),
        (301, 59),
        (59, 301),
        (333, 517),
        (height, width),
        (scale, scale),
        (scale + 1, scale + 3),
        (height - 1, width + 1),
    ]
    for h, w in sizes:
        items.append(_picture(rng, max(h, 1), max(w, 1)))
    alpha = rng.integers(0, 256, (45, 61, 1), dtype=np.uint8)
    items.append(np.concatenate([_picture(rng, 45, 61), alpha], axis=2))  # RGBA
    items.append(_picture(rng, 53, 47)[:, :, 0])  # grey (H, W)
    items.append(_picture(rng, 40, 70)[:, :, :1])  # grey (H, W, 1)
    items.append(_picture(rng, 38, 90).astype(np.float32) / 255)  # float in [0, 1]
    items.append(_picture(rng, 64, 48).astype(np.uint16) * 257)  # 16-bit
    items.append(Image.fromarray(_picture(rng, 66, 99)))
    items.append(Image.fromarray(_picture(rng, 81, 57)[:, :, 1]))  # mode "L"
    palette = Image.fromarray(_picture(rng, 70, 90)).convert("P", palette=Image.Palette.ADAPTIVE)
    items.append(palette)
    png = io.BytesIO()
    Image.fromarray(_picture(rng, 77, 123)).save(png, "PNG")
    items.append(png.getvalue())
    draft = adapter.draft_min_side() or 64
    short = 2 * draft + 37  # draft decoding halves it, at least
    jpeg = Image.fromarray(_picture(rng, short, short * 4 // 3 + 11, smooth=True))
    path = folder / "large.jpg"
    jpeg.save(path, "JPEG", quality=90)
    items += [str(path), path.read_bytes()]
    return items


def _picture(rng, height: int, width: int, smooth: bool = False) -> np.ndarray:
    """A uint8 RGB picture: gradients, a disc and noise (less noise when ``smooth``)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y /= max(height - 1, 1)
    x /= max(width - 1, 1)
    disc = ((x - 0.4) ** 2 + (y - 0.6) ** 2 < 0.08) * 90.0
    base = np.stack([200 * x + disc, 180 * y + 40, 255 * (1 - x * y) - disc], axis=2)
    noise = rng.normal(0, 6 if smooth else 40, size=base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def agrees(adapter, preprocess: LeanPreprocess) -> bool:
    """Whether ``preprocess`` equals ``adapter.eval_transform`` on :func:`check_images`.

    Both see the same decoded image, decoded as ``transform`` decodes it (JPEG
    draft decoding included when the adapter uses it); the arrays must be
    equal: same shape, float32, the same bits.
    """
    from sktransfer._image_io import _decode_one

    draft = adapter.draft_min_side()
    with tempfile.TemporaryDirectory(prefix="sktransfer-check-") as folder:
        items = check_images(adapter, Path(folder))
        for index in range(len(items)):
            image = _decode_one(items, index, None, None, draft)
            expected = adapter.eval_transform(image).numpy()
            got = preprocess(image)
            if got.dtype != np.float32 or not np.array_equal(got, expected):
                return False
    return True


# ---------------------------------------------------------------- the record
def record_params(encoder) -> dict:
    """What names an image record besides the identity: parameters known before loading.

    The output parameters as given (``model`` and ``weights`` included, which
    decide how the weights are found) without the backend and precision, and
    the versions of timm (its pretrained configurations decide the
    preprocessing) and torchvision (whose transforms the check compared with).
    """
    params = encoder._output_params()
    params.pop("backend", None)
    params.pop("precision", None)
    params["timm"] = _lean.package_version("timm")
    params["torchvision"] = _lean.package_version("torchvision")
    return params


def _hint_file(records: Path, model: str) -> Path:
    key = _fingerprint.fingerprint("image-name", _lean.RECORD_FORMAT, model)
    return records / "names" / f"{key.hex()[:40]}.json"


def write_image_record(encoder, export: Path, inputs: list[str]) -> bool:
    """Write the start record of an image encoder whose export just passed its check.

    Returns whether a record is there: only for weights with a content hash,
    without ``adapt``, for an evaluation transform that
    :func:`preprocess_steps` reads and whose numpy steps :func:`agrees` with.
    A record already there with the same content is kept as it is (the check
    ran when it was written): later torch-path fits (the clones of a grid
    search, processes where the start cannot find the weights without timm)
    do not run the check again.
    """
    identity = encoder._weights_identity
    if not identity.startswith("sha256:") or getattr(encoder, "adapt", None) is not None:
        return False
    adapter = encoder._adapter
    steps = preprocess_steps(adapter.eval_transform)
    if steps is None or list(inputs) != ["input"]:
        return False
    records = _lean._records(encoder.cache)
    record_file = records / f"{_lean.record_key(encoder, identity, record_params(encoder))}.json"
    if record_file.is_file() and _WRITTEN.get(record_file) == _stamps(export, record_file):
        return True  # written or found by this process, and nothing changed since
    if _write_hint(encoder, records) is False:
        return False
    found = image_reference(encoder, records)
    if found is not None and found[1] != encoder.model_reference_:
        return False  # found otherwise without timm: a start would load other weights
    data_config = dict(encoder.data_config_)
    record = {
        "format": _lean.RECORD_FORMAT,
        "kind": "image",
        "export": export.parent.name,
        "export_sha256": _lean.export_digest(export),
        "inputs": list(inputs),
        "embedding_dim": int(encoder.embedding_dim_),
        "identity": identity,
        "model": encoder.model,
        "timm": _lean.package_version("timm"),
        "architecture": encoder._weights_context()["architecture"],
        "data_config": data_config,
        "preprocess": steps,
        "jpeg_draft": bool(encoder.jpeg_draft),
        "draft_min_side": adapter.draft_min_side(),
    }
    text = json.dumps(record, indent=1)
    if _data_config(json.loads(text)) != data_config:
        return False  # a value JSON does not give back as it was: the cache key would move
    if not _same_text(record_file, text):
        if not agrees(adapter, LeanPreprocess(steps)):
            record_file.unlink(missing_ok=True)  # an older record must not outlive the check
            return False
        _lean._write_atomic(record_file, text.encode())
    _WRITTEN[record_file] = _stamps(export, record_file)
    return True


# Record file -> stamps of the export folder and of the record when this
# process last wrote the record or found it equal to what it would write.
_WRITTEN: dict[Path, tuple] = {}


def _stamps(export: Path, record_file: Path) -> tuple:
    return _fingerprint.path_stamp(export.parent), _fingerprint.path_stamp(record_file)


def _same_text(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except (OSError, UnicodeDecodeError):
        return False


def _write_hint(encoder, records: Path) -> bool | None:
    """For a timm registry name: the Hub repository timm takes its weights from.

    Lets a later start find the Hugging Face cache file without timm. None
    when the model is not a registry name (nothing to write); False when timm
    does not know it.
    """
    from sktransfer._hub import timm_model_source

    if encoder.weights is not None or timm_model_source(encoder.model)[0] is not None:
        return None
    import timm.models

    try:
        config = timm.models.get_pretrained_cfg(encoder.model)
    except Exception:  # noqa: BLE001 - an unknown name: no hint, no record
        return False
    hint = {
        "model": encoder.model,
        "timm": _lean.package_version("timm"),
        "hf_hub_id": getattr(config, "hf_hub_id", None) if config is not None else None,
    }
    path, text = _hint_file(records, encoder.model), json.dumps(hint)
    if not _same_text(path, text):
        _lean._write_atomic(path, text.encode())
    return True


def _data_config(record: dict) -> dict:
    """The record's ``data_config`` with its lists back as tuples (as timm gives them)."""
    config = record["data_config"]
    if not isinstance(config, dict):
        raise ValueError("data_config is not a mapping")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()}


# ---------------------------------------------------------------- starting
def image_reference(encoder, records: Path) -> tuple[str, str] | None:
    """``(source, reference)`` the torch path would load, found without timm, or None.

    Follows ``sktransfer._hub.create_timm_model``: a ``weights=`` file; a
    ``local-dir:`` folder's weights; an ``hf-hub:`` repository's snapshot in
    the Hugging Face cache; for a registry name, the Hugging Face cache file of
    the repository the name's hint gives, then the packaged checkpoint when
    the Hub is off (``HF_HUB_OFFLINE``), unreachable or without the weights, in
    the torch path's order. None where the torch path would download from the
    Hub, use random weights or fail (it gives the errors).
    """
    from sktransfer import _hub

    if not encoder.pretrained and encoder.weights is None:
        return None  # random weights: no content hash, no record
    kind, target = _hub.timm_model_source(encoder.model)
    if kind is not None:
        if encoder.weights is not None or not encoder.pretrained:
            return None
        if kind == "local-dir":
            folder = Path(target).expanduser()
            weights = _hub._folder_weights(folder)
            if not (folder / "config.json").is_file() or weights is None:
                return None
            return "local", str(weights.resolve())
        repo_id, _, revision = target.partition("@")
        snapshot = _hub.hf_snapshot_folder(repo_id, revision or None)
        if snapshot is None or not (snapshot / "config.json").is_file():
            return None
        weights = _hub._folder_weights(snapshot)
        return None if weights is None else ("hf-cache", str(weights.resolve()))
    if encoder.weights is not None:
        path = Path(encoder.weights).expanduser()
        return ("file", str(path.resolve())) if path.is_file() else None
    try:
        hint = json.loads(_hint_file(records, encoder.model).read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(hint, dict)
        or hint.get("model") != encoder.model
        or hint.get("timm") != _lean.package_version("timm")
    ):
        return None
    hf_hub_id = hint.get("hf_hub_id")
    cached = _hub._cached_hub_file(hf_hub_id) if hf_hub_id else None
    if cached:
        return "hf-cache", cached
    if encoder.model not in _hub._PACKAGED_IMAGE:
        return None
    if not _hub.hub_offline() and hf_hub_id and _hub._hub_status(hf_hub_id)[0] == "ok":
        return None  # the torch path downloads it from the Hub
    checkpoint = _hub.packaged_image_checkpoint(encoder.model)
    return None if checkpoint is None else ("package", checkpoint)


def start_image(encoder):
    """``(network, source, reference, identity)`` from an image start record, or None.

    None whenever anything is missing or does not match; the caller then
    takes the torch path. Shared in the process as ``sktransfer._lean.start_text``.
    """
    if getattr(encoder, "adapt", None) is not None:
        return None
    records = _lean._records(encoder.cache)
    found = image_reference(encoder, records)
    if found is None:
        return None
    source, reference = found
    return _lean.shared_start(
        encoder, source, reference, records, lambda: _start(encoder, source, reference, records)
    )


def _start(encoder, source: str, reference: str, records: Path):
    identity = _fingerprint.model_identity(source, reference)
    if not identity.startswith("sha256:"):
        return None
    record_file = records / f"{_lean.record_key(encoder, identity, record_params(encoder))}.json"
    try:
        record = json.loads(record_file.read_text())
        if not isinstance(record, dict):
            return None
        if (
            record.get("format") != _lean.RECORD_FORMAT
            or record.get("kind") != "image"
            or record.get("identity") != identity
            or record.get("inputs") != ["input"]
        ):
            return None
        preprocess = LeanPreprocess(record["preprocess"])
        data_config = _data_config(record)
        architecture = str(record["architecture"])
        int(record["embedding_dim"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    export = _lean.verified_export(records, record)
    if export is None:
        return None
    network = _lean.LeanBody(record, export, preprocess=preprocess)
    network.data_config = data_config
    network.architecture = architecture
    network.files = (record_file, export.parent)
    network.stamps = _lean._stamps(network)
    return network, source, reference, identity
