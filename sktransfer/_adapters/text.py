"""The text adapter: sentence-transformers bodies, text input checks, token-length batches.

Used by :class:`sktransfer.TextEncoder` (frozen) and by ``TextClassifier`` /
``TextRegressor`` (fine-tuned); see :mod:`sktransfer._adapters` for the interface.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sktransfer._adapters import Adapter
from sktransfer._hub import load_sentence_transformer
from sktransfer._validation import is_missing
from sktransfer._warn import outside_stacklevel
from sktransfer.exceptions import InvalidInputError, TruncationWarning

_MAX_LISTED = 10

# Positions listed in a TruncationWarning (the count is always complete).
_WARN_LISTED = 5


@functools.cache
def sentence_transformer_body() -> type:
    """The ``SentenceTransformerBody`` class (defined on first use: it imports torch)."""
    from torch import nn

    class SentenceTransformerBody(nn.Module):
        """A sentence-transformers model as a body: tokenized batch -> sentence embedding."""

        def __init__(self, model):
            super().__init__()
            self.st = model
            get_dim = getattr(model, "get_embedding_dimension", None)
            if get_dim is None:  # sentence-transformers < 5
                get_dim = model.get_sentence_embedding_dimension
            self.num_features = int(get_dim())

        def forward(self, features):
            return self.st(features)["sentence_embedding"]

    return SentenceTransformerBody


class TextAdapter(Adapter):
    """Sentence-transformers bodies over lists of str.

    Parameters
    ----------
    model : str
        Hub id or local sentence-transformers folder.
    max_length : int or None
        Token limit (``None``: the model's own).
    revision : str or None
        Hub revision.
    on_missing : {"raise", "empty"}
        Missing entries raise, or become "".
    model_kwargs : dict or None
        Keyword arguments for the underlying ``transformers`` model.
    trust_remote_code : bool
        Let the model folder run its own code.

    The attribute ``prompt`` (``None`` until set) is put in front of every text
    of the evaluation batches.
    """

    kind = "text"
    # Batch and sequence length vary between batches (see sktransfer._onnx).
    onnx_dynamic_axes = (0, 1)

    def __init__(
        self,
        model: str,
        *,
        max_length: int | None = None,
        revision: str | None = None,
        on_missing: str = "raise",
        model_kwargs: dict | None = None,
        trust_remote_code: bool = False,
    ):
        self.model = model
        self.max_length = max_length
        self.revision = revision
        self.on_missing = on_missing
        self.model_kwargs = model_kwargs
        self.trust_remote_code = trust_remote_code
        self.prompt: str | None = None
        self._st = None

    def check_X(self, X) -> list:
        return check_texts(X, on_missing=self.on_missing)

    def content_key(self, text) -> bytes:
        return text.encode("utf-8", "surrogatepass")

    def load(self, device: str, pretrained: bool = True):
        st, source, reference = load_sentence_transformer(
            self.model,
            device=device,
            revision=self.revision,
            model_kwargs=self.model_kwargs,
            trust_remote_code=self.trust_remote_code,
        )
        apply_max_length(st, self.max_length, reference)
        body = sentence_transformer_body()(st).to(device)
        self.attach(body)
        return body, source, reference

    def attach(self, body) -> None:
        self._st = body.st

    def probe_samples(self) -> list:
        """Short and long, plain and noisy texts (see ``sktransfer._precision``)."""
        from sktransfer._precision import PROBE_TEXTS

        return list(PROBE_TEXTS)

    def warn_if_truncated(self, items: list, owner: str) -> None:
        """One ``TruncationWarning`` when texts exceed the body's token limit.

        Training batches (``collate``) and prediction batches are cut to
        ``max_seq_length`` tokens by sentence-transformers; this says so, with
        the count and the first positions. Needs the loaded body.
        """
        counts = measure_tokens(self._st, items)
        if counts.truncated.any():
            positions = np.flatnonzero(counts.truncated).tolist()
            warn_truncated(owner, positions, self._st, encoder=False)

    def blocks(self, body) -> list[list[str]]:
        """Embeddings, then one block per transformer layer (the top one keeps what follows).

        The layers are the longest ``nn.ModuleList`` of the model (BERT's
        ``encoder.layer``, GPT's ``h``, T5's ``block``...). Parameters before
        the first layer (the embeddings) form block 0; parameters after the
        last layer (a final norm, an unused pooler, a Dense module after
        pooling) join the last layer's block.
        """
        from torch import nn

        names = [name for name, _ in body.named_parameters()]
        layer_lists = [
            (name, module)
            for name, module in body.named_modules()
            if isinstance(module, nn.ModuleList) and len(module) > 0
        ]
        if not layer_lists:
            return [names]
        prefix, layers = max(layer_lists, key=lambda item: len(item[1]))
        n_layers = len(layers)
        layer_of = {}
        for name in names:
            if name.startswith(prefix + "."):
                layer_of[name] = int(name[len(prefix) + 1 :].split(".", 1)[0])
        blocks: list[list[str]] = [[] for _ in range(n_layers + 1)]
        seen_layer = False
        for name in names:
            if name in layer_of:
                seen_layer = True
                blocks[layer_of[name] + 1].append(name)
            elif not seen_layer:
                blocks[0].append(name)
            else:
                blocks[-1].append(name)
        return [block for block in blocks if block]

    def collate(self, items: list, training: bool):
        return self._st.preprocess(list(items))

    def inference_batches(self, items: list, batch_size: int, lengths=None):
        """Batches sorted by token length, longest first: less padding, same numbers.

        ``lengths`` (token counts, from :func:`measure_tokens`) are measured
        here when not given. Longest first, so the first batch shows the peak
        memory at once.
        """
        if lengths is None:
            lengths = measure_tokens(self._st, items).lengths
        order = np.argsort(-lengths, kind="stable")
        extra = {"prompt": self.prompt} if self.prompt else {}
        for start in range(0, len(items), batch_size):
            rows = order[start : start + batch_size]
            yield rows, self._st.preprocess([items[i] for i in rows], **extra)

    @staticmethod
    def to_device(batch, device: str):
        from sentence_transformers.util import batch_to_device

        return batch_to_device(batch, device)

    def save_body(self, body, folder: Path) -> None:
        # The saved folder's README.md is sktransfer's own model card (finetune/_card.py).
        body.st.save(str(folder / "body"), create_model_card=False)

    def load_saved_body(self, folder: Path, device: str):
        st, _, _ = load_sentence_transformer(str(folder / "body"), device=device)
        apply_max_length(st, self.max_length, str(folder / "body"))
        body = sentence_transformer_body()(st).to(device)
        self.attach(body)
        return body


# ------------------------------------------------------------------ helpers
def apply_max_length(network, max_length: int | None, reference: str) -> None:
    """Truncate a sentence-transformers model's input to ``max_length`` tokens.

    ``None`` keeps the model's own limit; a value beyond what the model's
    position embeddings can read is an error, not a silent cut.
    """
    if max_length is None:
        return
    limit = _position_limit(network)
    if limit is not None and max_length > limit:
        raise ValueError(
            f"max_length={max_length} exceeds what {reference!r} can read "
            f"({limit} tokens); use max_length <= {limit} or None."
        )
    network.max_seq_length = max_length


def _position_limit(network) -> int | None:
    known = getattr(network, "position_limit", None)  # a stand-in (sktransfer._lean)
    if isinstance(known, int):
        return known
    try:
        return int(network[0].auto_model.config.max_position_embeddings)
    except (AttributeError, IndexError, TypeError, KeyError):
        return None


# Texts tokenized per call when measuring lengths: the tokenizer's output for a
# whole data set (ids, offsets, masks of every text) costs ~7 KiB per sentence of
# peak memory, 138 MiB for 20,000 tweets; chunks keep that bounded.
_LENGTH_CHUNK = 1024
# Whole long texts with their character offsets (a pair per token, no truncation)
# cost far more per text; windows are found in smaller slices.
_WINDOW_CHUNK = 64


@dataclass
class Window:
    """One window of a long text: its text, its text tokens, and what the model reads."""

    text: str
    n_tokens: int  # tokens of the text in the window
    length: int  # with the model's special tokens: the batching key


@dataclass
class TokenCounts:
    """What one tokenizer pass says about a list of texts.

    ``lengths`` are token counts as the model reads them (at most its limit:
    the key of length-sorted batching), ``truncated`` marks the texts longer
    than the limit, and ``windows`` holds, when asked for, the windows of
    each such text (by its index).
    """

    lengths: np.ndarray
    truncated: np.ndarray
    windows: dict[int, list[Window]] = field(default_factory=dict)


def measure_tokens(
    network, texts: list[str], *, overlap: float | None = None, reserved: int = 0
) -> TokenCounts:
    """Token counts of ``texts`` for ``network``, and which texts exceed its limit.

    The texts are tokenized once, in slices (bounded memory). Without
    ``overlap`` each text is tokenized up to one token past the model's limit
    (enough to tell that it is too long). With ``overlap`` (a share of the
    window, as ``TextEncoder.chunk_overlap``) texts are tokenized whole and each
    one longer than the limit is split into windows (:func:`split_windows`).
    A model without a usable tokenizer gets character counts (an ordering
    only; nothing is reported as cut), unless windows were asked for.
    ``reserved`` tokens of the limit are taken by a prompt put in front of
    every text.
    """
    limit = getattr(network, "max_seq_length", None)
    if limit is not None and reserved:
        limit = max(1, limit - reserved)
    tokenizer = getattr(network, "tokenizer", None)
    if tokenizer is None or not callable(tokenizer):
        if overlap is not None:
            raise ValueError(
                "long_texts='chunk' splits texts by tokens, but this model has no tokenizer "
                "that sktransfer can call; use long_texts='truncate'."
            )
        return _character_counts(texts)
    lengths = np.empty(len(texts), dtype=np.int64)
    windows: dict[int, list[Window]] = {}
    step = _LENGTH_CHUNK if overlap is None else _WINDOW_CHUNK
    try:
        for start in range(0, len(texts), step):
            part = texts[start : start + step]
            if overlap is None or limit is None:
                encoded = tokenizer(
                    part,
                    add_special_tokens=True,
                    truncation=True,
                    # One token past the limit tells a text that was cut from one that fits.
                    max_length=None if limit is None else limit + 1,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                )["input_ids"]
                lengths[start : start + len(encoded)] = [len(ids) for ids in encoded]
                continue
            encoded = _tokenize_whole(tokenizer, part)
            for j, ids in enumerate(encoded["input_ids"]):
                lengths[start + j] = len(ids)
                if len(ids) > limit:
                    windows[start + j] = split_windows(
                        part[j], encoded, j, tokenizer, limit, overlap
                    )
    except Exception:
        if overlap is not None:
            raise
        return _character_counts(texts)  # a tokenizer we cannot drive: a cheaper ordering
    if limit is None:
        return TokenCounts(lengths, np.zeros(len(texts), dtype=bool))
    return TokenCounts(np.minimum(lengths, limit), lengths > limit, windows)


def _character_counts(texts: list[str]) -> TokenCounts:
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return TokenCounts(lengths, np.zeros(len(texts), dtype=bool))


def _tokenize_whole(tokenizer, texts: list[str]):
    """Token ids of whole texts, which tokens are special, and (fast tokenizers) offsets."""
    common = dict(
        add_special_tokens=True,
        truncation=False,
        return_special_tokens_mask=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,  # no "sequence longer than the model" message: windows handle it
    )
    try:
        return tokenizer(texts, return_offsets_mapping=True, **common)
    except NotImplementedError:  # a pure-Python tokenizer: windows are decoded from the ids
        return tokenizer(texts, **common)


def split_windows(text: str, encoded, j: int, tokenizer, limit: int, overlap: float):
    """The windows of text ``j`` of a batch tokenized by :func:`_tokenize_whole`.

    A window holds ``limit`` minus the special tokens of text tokens; each
    next window starts ``round((1 - overlap) * size)`` tokens later (at least
    one), and the last one ends with the text. A window's text is the slice of
    the original text from its first token to its last (from the tokenizer's
    character offsets), so the model reads it through its usual preprocessing.
    """
    ids = encoded["input_ids"][j]
    special = encoded["special_tokens_mask"][j]
    content = [k for k, is_special in enumerate(special) if not is_special]
    n_special = len(ids) - len(content)
    size = max(1, limit - n_special)
    step = max(1, size - int(round(overlap * size)))
    offsets = encoded["offset_mapping"][j] if "offset_mapping" in encoded else None
    windows = []
    start = 0
    while True:
        end = min(start + size, len(content))
        tokens = content[start:end]
        if offsets is not None:
            piece = text[offsets[tokens[0]][0] : offsets[tokens[-1]][1]]
        else:
            piece = tokenizer.decode([ids[k] for k in tokens])
        windows.append(Window(piece, end - start, end - start + n_special))
        if end >= len(content):
            return windows
        start += step


def warn_truncated(owner: str, positions: list[int], network, *, encoder: bool) -> None:
    """One ``TruncationWarning``: how many texts were cut, where, and what to do.

    ``positions`` are 0-based positions in the caller's input (one per distinct
    text). ``encoder`` says whether the remedy is ``TextEncoder``'s chunking
    (else the fine-tuners' advice).
    """
    limit = network.max_seq_length
    readable = _position_limit(network)
    more_room = readable is not None and readable > limit
    n = len(positions)
    shown = ", ".join(str(p) for p in positions[:_WARN_LISTED])
    more = f" and {n - _WARN_LISTED} more" if n > _WARN_LISTED else ""
    if encoder:
        remedy = (
            "Pass long_texts='chunk' to encode long texts whole (overlapping windows pooled "
            "into one row)"
        )
        if more_room:
            remedy += f", or raise max_length (this model reads up to {readable} tokens)"
    else:
        remedy = "Split long texts into parts"
        if more_room:
            remedy = f"Raise max_length (this model reads up to {readable} tokens), or split them"
        remedy += (
            "; TextEncoder(long_texts='chunk') features with a linear model read long texts whole"
        )
    message = (
        f"{owner}: {n} {'text was' if n == 1 else 'texts were'} longer than the model's limit "
        f"of {limit} tokens and cut to it (position{'' if n == 1 else 's'} {shown}{more}); "
        f"texts that differ only after their first {limit} tokens are read as the same text. "
        f"{remedy}."
    )
    warnings.warn(message, TruncationWarning, stacklevel=outside_stacklevel())


def _index_labels(X):
    """The pandas index labels of ``X``, or None when they are just the positions."""
    index = getattr(X, "index", None)
    if index is None or not hasattr(X, "iloc"):
        return None
    if type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1:
        return None
    labels = list(index)
    if labels == list(range(len(labels))):
        return None
    return labels


def _where(i: int, labels) -> str:
    """``"3"`` or ``"3 (index 'c')"``: the position, plus the label a pandas user sees."""
    return str(i) if labels is None else f"{i} (index {labels[i]!r})"


def _first_surrogate(text: str) -> int | None:
    """Offset of the first lone surrogate (U+D800..U+DFFF) in ``text``, else None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def check_texts(X, *, on_missing: str = "raise") -> list[str]:
    """Validate a text container and return the texts as a list of str.

    Lone surrogates (code points U+D800..U+DFFF not part of a pair, e.g. from
    ``bytes.decode(errors="surrogateescape")`` or a JSON ``"\\ud800"``) are not
    valid Unicode text: no tokenizer can read them. They raise, naming the
    position and the character, rather than being replaced silently, because
    a replacement would change the text the model sees (and its cache key)
    without the user knowing; clean them first, e.g.
    ``text.encode("utf-8", "replace").decode("utf-8")``.

    Parameters
    ----------
    X : list, tuple, 1-D ndarray, pandas Series or one-column DataFrame
    on_missing : {"raise", "empty"}
        Whether missing entries raise or become "".

    Returns
    -------
    list of str

    Raises
    ------
    InvalidInputError
        For a container of the wrong kind, entries that are not text,
        missing entries (with ``on_missing="raise"``) and lone surrogates.
        Positions are 0-based; for a pandas input whose index is not
        ``0 .. n-1`` the index label is named too.

    Examples
    --------
    >>> check_texts(["a", None], on_missing="empty")
    ['a', '']
    """
    if isinstance(X, (str, bytes)):
        raise InvalidInputError(
            "TextEncoder expects a sequence of texts but got a single "
            f"{type(X).__name__}; wrap it in a list: [text]."
        )
    if hasattr(X, "iloc") and hasattr(X, "columns"):  # DataFrame
        if X.shape[1] != 1:
            raise InvalidInputError(
                f"TextEncoder expects one column of text but got a DataFrame with "
                f"{X.shape[1]} columns {list(X.columns)[:10]}; select the text column, "
                "e.g. X['text'], or use a ColumnTransformer."
            )
        values = X.iloc[:, 0].tolist()
    elif hasattr(X, "iloc"):  # Series
        values = X.tolist()
    elif isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise InvalidInputError(
                f"TextEncoder expects a 1-D array of texts but got shape {X.shape}."
            )
        values = X.tolist()
    elif isinstance(X, (list, tuple)):
        values = list(X)
    elif isinstance(X, (set, frozenset, dict)):
        raise InvalidInputError(
            f"TextEncoder needs an ordered sequence of texts, got a {type(X).__name__}; "
            "rows would not line up with the input. Pass a list."
        )
    else:
        raise InvalidInputError(
            f"TextEncoder expects a list, tuple, 1-D array, pandas Series or one-column "
            f"DataFrame of str, got {type(X).__name__}."
        )

    labels = _index_labels(X)
    missing = []
    wrong = []
    for i, value in enumerate(values):
        if isinstance(value, str):
            offset = _first_surrogate(value)
            if offset is not None:
                raise InvalidInputError(
                    f"TextEncoder: the text at position {_where(i, labels)} holds a lone "
                    f"surrogate U+{ord(value[offset]):04X} (character {offset}), which is not "
                    "valid Unicode and no tokenizer can read it. Clean the text first, e.g. "
                    "text.encode('utf-8', 'replace').decode('utf-8') (or fix how it was "
                    "decoded from bytes)."
                )
            continue
        if isinstance(value, np.str_):
            values[i] = str(value)
        elif is_missing(value):
            missing.append(i)
        else:
            wrong.append(i)
    if wrong:
        shown = ", ".join(
            f"{_where(i, labels)} ({type(values[i]).__name__})" for i in wrong[:_MAX_LISTED]
        )
        more = f" and {len(wrong) - _MAX_LISTED} more" if len(wrong) > _MAX_LISTED else ""
        raise InvalidInputError(
            f"TextEncoder expects str entries; {len(wrong)} entries are not text, at "
            f"positions {shown}{more}. Convert them first (bytes: .decode(); numbers: str())."
        )
    if missing:
        if on_missing == "empty":
            for i in missing:
                values[i] = ""
        else:
            shown = ", ".join(_where(i, labels) for i in missing[:_MAX_LISTED])
            more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            raise InvalidInputError(
                f"TextEncoder got {len(missing)} missing entries (None/NaN) at positions "
                f"{shown}{more}. Fill or drop them, or pass on_missing='empty' to encode "
                "them as the empty string."
            )
    return values
