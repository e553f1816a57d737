"""Starting an ONNX/OpenVINO encoder from its stored export, without torch.

With ``backend="onnx"`` or ``"openvino"`` the first ``fit`` loads the torch
model, exports it and checks the export (``sktransfer._onnx``). It then also
writes a *start record* beside the export: what ``fit`` learned from the torch
model that ``transform`` needs (output width, token limit, prompts, the
tokenizer's own ``tokenizer.json`` and padding settings), the hash of the
export's files and the model's identity (the hash of its weights). A later
``fit`` of an equal encoder, in any process, finds the record and starts from
it: the tokenizer runs through the ``tokenizers`` library, the export through
ONNX Runtime or OpenVINO, and neither torch, transformers nor
sentence-transformers is imported. That is what makes a fresh process quick
(the CLI, small jobs).

What makes this safe
    - A record is written only after the export passed its check against the
      torch forward pass, and only when the stand-in tokenizer gives exactly
      the token ids, masks, lengths and chunk windows that the model's own
      preprocessing gives on a fixed set of awkward texts (empty, padded with
      spaces, accents, CJK, emoji, literal special tokens, texts far past the
      token limit), with the encoder's prompt. Otherwise nothing is written and
      every ``fit`` takes the torch path.
    - The record's name hashes the weights' identity, every parameter that
      changes the numbers and the torch version that made the export; the
      identity is the weights' content hash, taken anew at every start (a
      model folder rewritten in place, or a Hub reference that moved, misses).
    - The export's files are hashed at every start and must match the record,
      so a damaged or replaced file is never run; such a start falls back to
      the torch path, which checks the export again.
    - Where the model name does not resolve to files on disk without the
      network (a Hub id not in the Hugging Face cache, with the Hub allowed),
      the torch path is taken.

Images (``sktransfer._lean_image``)
    An ``ImageEncoder`` writes its own kind of record (``"kind": "image"``)
    under the same folder and the same rules: what ``transform`` needs is
    timm's resolved ``data_config``, the output width, the architecture (for
    the cache key) and the model's evaluation transform written out as steps
    (resize, centre crop, scale to [0, 1], normalise). Started from the record,
    images are decoded by ``sktransfer._image_io`` as always, and resized with
    PIL and cropped, scaled and normalised with numpy, without torch, timm or
    torchvision. A record is written only when that numpy preprocessing gives
    arrays *equal* (bit for bit) to timm's own ``eval_transform`` on a fixed
    set of images (the probe photos, tiny, tall, wide and odd sizes, RGBA,
    grey, palette, 16-bit and float inputs, and a large JPEG decoded at a
    reduced scale when ``jpeg_draft`` is on), and only for the transforms it
    knows (a shorter-side or exact resize, a centre crop, ``ToTensor``,
    ``Normalize``); anything else keeps the torch path. The weights file is
    found without timm: a ``weights=`` file, a ``local-dir:`` folder, an
    ``hf-hub:`` snapshot in the Hugging Face cache, or for a timm registry name
    the Hugging Face cache file of the Hub repository timm named when the
    record was written (kept beside the records, per timm version), then the
    packaged checkpoint when the Hub is off (``HF_HUB_OFFLINE``). The record's
    name also holds the versions of timm, whose pretrained configurations
    decide the preprocessing, and of torchvision, whose transforms the check
    compared with.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from sktransfer import _fingerprint

# Bumped whenever the record's content or meaning changes.
RECORD_FORMAT = 1

# Inputs a text export may take that the stand-in tokenizer can produce.
_TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Texts on which the stand-in tokenizer must agree with the model's own
# preprocessing before a record is written (the probe texts are added).
_CHECK_TEXTS = (
    "",
    " ",
    "  leading and trailing spaces  ",
    "UPPER lower MiXeD CaSe",
    "naïve café — déjà vu, Ångström, straße",
    "中文文本和日本語のテキスト、한국어",
    "emoji 😀👍🏽 and symbols © ® ™ ½ ∑",
    "tabs\tand\nnewlines\r\nand\u00a0no-break space",
    "[CLS] [SEP] [PAD] [MASK] [UNK] <s> </s> <pad> literal special tokens",
    "url https://example.com/a?b=c&d=e and mail a.b@c.io",
    "numbers 3.14159 1,000,000 -42 1e-9",
)


def check_texts() -> list[str]:
    """The agreement check's texts: the fixed ones, the probe texts and two long ones."""
    from sktransfer._precision import PROBE_TEXTS

    long_plain = " ".join(PROBE_TEXTS) * 12
    long_mixed = " ".join(_CHECK_TEXTS) * 10
    return [*_CHECK_TEXTS, *PROBE_TEXTS, long_plain, long_mixed]


# ------------------------------------------------------------- stand-ins
class LeanTokenizer:
    """A Hugging Face fast tokenizer's calls, answered by the ``tokenizers`` library.

    Answers the calls sktransfer makes (token ids with or without special
    tokens, truncation to a length, offsets, special-token masks) with the
    same lists a ``PreTrainedTokenizerFast`` returns. One configured
    ``tokenizers.Tokenizer`` is kept per (truncation length, padding), never
    reconfigured, so threads can share it.
    """

    def __init__(self, spec: str, settings: dict):
        self._spec = spec
        self.settings = dict(settings)
        self._made: dict = {}
        self._lock = threading.Lock()

    def configured(self, max_length: int | None, padding: bool):
        key = (max_length, padding)
        with self._lock:
            made = self._made.get(key)
            if made is None:
                from tokenizers import Tokenizer

                made = Tokenizer.from_str(self._spec)
                made.no_truncation()
                made.no_padding()
                if max_length is not None:
                    made.enable_truncation(
                        max_length,
                        stride=0,
                        strategy="longest_first",
                        direction=self.settings["truncation_side"],
                    )
                if padding:
                    made.enable_padding(
                        direction=self.settings["padding_side"],
                        pad_id=self.settings["pad_id"],
                        pad_type_id=self.settings["pad_type_id"],
                        pad_token=self.settings["pad_token"],
                    )
                self._made[key] = made
        return made

    def __call__(
        self,
        texts,
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
        **ignored,
    ) -> dict:
        if truncation and max_length is None:
            raise ValueError("LeanTokenizer truncates to an explicit max_length only.")
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        tokenizer = self.configured(max_length if truncation else None, False)
        encodings = tokenizer.encode_batch(batch, add_special_tokens=add_special_tokens)
        out = {"input_ids": [e.ids for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [list(e.offsets) for e in encodings]
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if single:
            return {name: value[0] for name, value in out.items()}
        return out


class LeanText:
    """What the text adapter reads of a sentence-transformers model, without torch.

    ``preprocess`` gives the padded, truncated batch (int64 arrays of the
    export's inputs); ``tokenizer``, ``max_seq_length``, ``position_limit``,
    ``prompts``, ``default_prompt_name`` and ``normalizes`` answer what the
    model itself would.
    """

    def __init__(self, record: dict, tokenizer_spec: str):
        self.inputs = list(record["inputs"])
        self.max_seq_length = int(record["max_seq_length"])
        self.position_limit = record.get("position_limit")
        self.prompts = dict(record.get("prompts") or {})
        self.default_prompt_name = record.get("default_prompt_name")
        self.normalizes = bool(record.get("normalizes"))
        self.tokenizer = LeanTokenizer(tokenizer_spec, record["tokenizer"])

    def preprocess(self, texts, prompt: str | None = None) -> dict[str, np.ndarray]:
        texts = [prompt + text for text in texts] if prompt else list(texts)
        tokenizer = self.tokenizer.configured(self.max_seq_length, True)
        encodings = tokenizer.encode_batch(texts, add_special_tokens=True)
        fields = {
            "input_ids": lambda e: e.ids,
            "attention_mask": lambda e: e.attention_mask,
            "token_type_ids": lambda e: e.type_ids,
        }
        return {
            name: np.asarray([fields[name](e) for e in encodings], dtype=np.int64)
            for name in self.inputs
        }


class LeanBody:
    """Stands where the torch body stands in an encoder started from a record.

    ``st`` is the :class:`LeanText` of a text encoder (None for images);
    ``export`` the checked export's file; ``preprocess`` an image encoder's
    numpy evaluation transform (``sktransfer._lean_image.LeanPreprocess``).
    """

    lean = True

    def __init__(self, record: dict, export: Path, st=None, *, preprocess=None):
        self.record = record
        self.export = export
        self.export_key = record["export"]
        self.num_features = int(record["embedding_dim"])
        self.inputs = list(record["inputs"])
        self.st = st
        self.preprocess = preprocess

    def eval(self):
        return self


def is_lean(network) -> bool:
    """Whether ``network`` is a :class:`LeanBody` (an encoder started without torch)."""
    return getattr(network, "lean", False) is True


# --------------------------------------------------------------- the record
def record_key(encoder, identity: str, params: dict | None = None) -> str:
    """The record's name: weights identity, every output parameter, the exporter.

    ``params`` are the parameters named (default: those of the export's
    fingerprint, ``encoder._fingerprint_params(identity, export=True)``); an
    image encoder passes its own, which it can know before loading anything.
    """
    from sktransfer._onnx import EXPORT_FORMAT

    if params is None:
        params = encoder._fingerprint_params(identity, export=True)
    parts = (
        "start-record",
        RECORD_FORMAT,
        EXPORT_FORMAT,
        package_version("torch"),
        type(encoder).__name__,
        identity,
        params,
    )
    return _fingerprint.fingerprint(*parts).hex()[:40]


def package_version(name: str) -> str:
    """An installed distribution's version, read without importing it ("none" if absent)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def _records(cache) -> Path:
    from sktransfer._onnx import export_folder

    return export_folder(cache) / "start"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, aside = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(aside, path)
    except BaseException:
        Path(aside).unlink(missing_ok=True)
        raise


def export_digest(export: Path) -> str:
    """SHA-256 of the export's folder (the graph and any external weights)."""
    return _fingerprint.weights_digest(export.parent)


def write_text_record(encoder, network, export: Path, inputs: list[str]) -> bool:
    """Write the start record of a text encoder whose export just passed its check.

    Returns whether a record was written: only when the stand-in tokenizer
    agrees with the model's own preprocessing (see the module docstring).
    """
    identity = encoder._weights_identity
    if not identity.startswith("sha256:") or getattr(encoder, "adapt", None) is not None:
        return False
    st = network.st
    tokenizer = getattr(st, "tokenizer", None)
    max_seq_length = getattr(st, "max_seq_length", None)
    if (
        tokenizer is None
        or not getattr(tokenizer, "is_fast", False)
        or max_seq_length is None
        or not set(inputs) <= set(_TEXT_INPUTS)
    ):
        return False
    from sktransfer._adapters.text import _position_limit
    from sktransfer.text import _normalizes

    record = {
        "format": RECORD_FORMAT,
        "kind": "text",
        "export": export.parent.name,
        "export_sha256": export_digest(export),
        "inputs": list(inputs),
        "embedding_dim": int(encoder.embedding_dim_),
        "identity": identity,
        "max_seq_length": int(max_seq_length),
        "position_limit": _position_limit(st),
        "prompts": dict(getattr(st, "prompts", None) or {}),
        "default_prompt_name": getattr(st, "default_prompt_name", None),
        "normalizes": _normalizes(st),
        "tokenizer": {
            "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
            "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
            "pad_token": str(tokenizer.pad_token if tokenizer.pad_token is not None else ""),
            "padding_side": str(tokenizer.padding_side),
            "truncation_side": str(tokenizer.truncation_side),
        },
    }
    spec = tokenizer.backend_tokenizer.to_str()
    lean = LeanText(record, spec)
    if not agrees(encoder, st, lean):
        return False
    folder = _records(encoder.cache)
    key = record_key(encoder, identity)
    _write_atomic(folder / f"{key}.tokenizer.json", spec.encode())
    _write_atomic(folder / f"{key}.json", json.dumps(record, indent=1).encode())
    return True


def agrees(encoder, st, lean: LeanText) -> bool:
    """Whether ``lean`` preprocesses :func:`check_texts` exactly as ``st`` does.

    A model whose tokenizer raises on the check (one that sktransfer drives
    through the torch path only) does not agree: no record, the torch path.
    """
    try:
        return _agrees(encoder, st, lean)
    except Exception:  # noqa: BLE001 - any failure of the check means "no record"
        return False


def _agrees(encoder, st, lean: LeanText) -> bool:
    from sktransfer._adapters.text import TextAdapter, measure_tokens
    from sktransfer._prompts import prompt_tokens

    prompt = getattr(encoder, "prompt_", None)
    if prompt_tokens(st, prompt) != prompt_tokens(lean, prompt):
        return False
    reserved = prompt_tokens(st, prompt)
    texts = check_texts()
    for overlap in (None, float(getattr(encoder, "chunk_overlap", 0.25))):
        ours = measure_tokens(lean, texts, overlap=overlap, reserved=reserved)
        theirs = measure_tokens(st, texts, overlap=overlap, reserved=reserved)
        if not (
            np.array_equal(ours.lengths, theirs.lengths)
            and np.array_equal(ours.truncated, theirs.truncated)
            and ours.windows == theirs.windows
        ):
            return False
    pieces = list(texts) + [w.text for windows in theirs.windows.values() for w in windows]
    lengths = measure_tokens(st, pieces, reserved=reserved).lengths
    adapters = []
    for stand in (st, lean):
        adapter = TextAdapter("check")
        adapter._st = stand
        adapter.prompt = prompt
        adapters.append(adapter)
    for batch_size in (len(pieces), 7, 1):
        expected = adapters[0].inference_batches(pieces, batch_size, lengths=lengths)
        got = adapters[1].inference_batches(pieces, batch_size, lengths=lengths)
        for (rows_a, batch_a), (rows_b, batch_b) in zip(expected, got, strict=True):
            if not np.array_equal(rows_a, rows_b):
                return False
            for name in lean.inputs:
                if name not in batch_a:
                    return False
                if not np.array_equal(batch_a[name].cpu().numpy(), batch_b[name]):
                    return False
    return True


# ---------------------------------------------------------------- starting
def text_reference(model: str, revision: str | None) -> tuple[str, str] | None:
    """``(source, reference)`` the torch path would load, found without torch, or None.

    A local folder; the Hugging Face cache's snapshot; the packaged copy when
    the Hub is off (``HF_HUB_OFFLINE``), unreachable or without the model, in
    the torch path's order. A model the Hub would download, and a path that
    does not exist, are left to the torch path (which also gives the errors).
    """
    from sktransfer import _hub

    path = Path(model).expanduser()
    if path.is_dir():
        return "local", str(path.resolve())
    if _hub._looks_like_path(model) or path.exists():
        return None
    snapshot = _hub.hf_snapshot_folder(model, revision)
    if snapshot is not None:
        return "hf-cache", str(snapshot)
    if model not in _hub._PACKAGED_TEXT:
        return None
    if not _hub.hub_offline() and _hub._hub_status(model, revision)[0] == "ok":
        return None  # the torch path downloads it from the Hub
    folder = _hub.packaged_text_model_dir(model)
    return None if folder is None else ("package", str(folder))


def start_text(encoder):
    """``(network, source, reference, identity)`` from a start record, or None.

    None whenever anything is missing or does not match; the caller then
    takes the torch path. A start is shared by equal encoders of the process
    (the clones of a grid search hash the files once) while the model's files,
    the record and the export keep their stamps (inode, size, times).
    """
    if getattr(encoder, "adapt", None) is not None:
        return None
    found = text_reference(encoder.model, getattr(encoder, "revision", None))
    if found is None:
        return None
    source, reference = found
    records = _records(encoder.cache)
    return shared_start(
        encoder,
        source,
        reference,
        records,
        lambda: _start_text(encoder, source, reference, records),
    )


def shared_start(encoder, source: str, reference: str, records: Path, start):
    """``start()``, shared by equal encoders of the process while nothing changed on disk.

    The key holds the encoder's output parameters, the reference's stamp and
    the records' folder; a start whose record or export files changed since is
    made again (and verified again) by ``start()``.
    """
    from sktransfer._base import LOADED_NETWORKS

    key = (
        "start-record",
        type(encoder).__name__,
        repr(encoder._output_params()),
        source,
        reference,
        _fingerprint.path_stamp(reference),
        str(records),
    )
    started = LOADED_NETWORKS.get_or_load(key, start)
    if started is not None and _stamps(started[0]) != started[0].stamps:
        started = start()  # changed on disk
    return started


def _stamps(network: LeanBody) -> tuple:
    return tuple(_fingerprint.path_stamp(path) for path in network.files)


def _start_text(encoder, source: str, reference: str, records: Path):
    identity = _fingerprint.model_identity(source, reference)
    if not identity.startswith("sha256:"):
        return None
    key = record_key(encoder, identity)
    record_file = records / f"{key}.json"
    tokenizer_file = records / f"{key}.tokenizer.json"
    try:
        record = json.loads(record_file.read_text())
        spec = tokenizer_file.read_text()
    except (OSError, ValueError):
        return None
    if record.get("format") != RECORD_FORMAT or record.get("identity") != identity:
        return None
    export = verified_export(records, record)
    if export is None:
        return None
    network = LeanBody(record, export, LeanText(record, spec))
    network.files = (record_file, tokenizer_file, export.parent)
    network.stamps = _stamps(network)
    return network, source, reference, identity


def verified_export(records: Path, record: dict) -> Path | None:
    """The record's export file when its folder hashes to the recorded digest, else None."""
    export = records.parent / str(record.get("export")) / "model.onnx"
    if not export.is_file() or export_digest(export) != record.get("export_sha256"):
        return None
    return export
