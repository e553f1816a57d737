"""The base every frozen encoder shares, thin over a modality adapter.

An encoder names its adapter (``sktransfer._adapters``) in one hook,
``_make_adapter()``, which reads the encoder's parameters. The adapter loads the
body, checks the input, makes the batches and gives each sample's cache key;
this base runs the body over the batches (eval mode, ``torch.inference_mode``,
the precision asked for) in :meth:`BaseEncoder._encode`. An encoder may
override:

``_encode(items, failed, labels=None) -> np.ndarray``
    Batched forward pass returning a float32 array, row *i* for item *i*;
    positions of items that could not be encoded (and were filled) are
    appended to ``failed`` so that they are never cached. ``labels[i]`` is
    item *i*'s position in the user's input, for messages.
``_load_model(device)`` / ``_after_load(network)``
    Adjust the loaded body (e.g. a memory format) / derive fitted state from it.
``_report_failures(positions)``
    Tell the user which samples were filled instead of encoded.

Everything else -- parameter validation, lazy loading, the device, the sklearn
contract, feature names, the embedding cache (one call to the store, see
``sktransfer._stores``), sharing one loaded network between clones, pickling of
the model *reference* instead of its weights -- lives here once.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import threading
import warnings
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from sktransfer import _dask, _fingerprint, _reduction
from sktransfer._device import device_after_unpickling, resolve_device
from sktransfer._doclink import DocLinkMixin
from sktransfer._malloc import tune_malloc
from sktransfer._precision import backend_precision, resolve_precision
from sktransfer._stores import CacheStats, open_store
from sktransfer._threads import resolve_n_threads, torch_threads
from sktransfer._validation import one_column_tags
from sktransfer._warn import outside_stacklevel
from sktransfer.exceptions import InvalidInputError

# Inputs at least this long show a progress bar when ``progress="auto"``.
PROGRESS_AUTO_MIN_ITEMS = 1024

# Parameters that change how the work is done but never the numbers produced.
# Every other parameter is part of the model fingerprint (cache key) and of the
# key under which a loaded network is shared, so a new parameter is safe by
# default: it can only cause a cache miss, never a wrong hit.
RUNTIME_ONLY_PARAMS = frozenset(
    {"batch_size", "progress", "cache", "on_missing", "on_error", "n_threads", "device"}
)


# Parameters applied to the embeddings after the cache (a reduction fitted on the
# training rows): the cache stores full-width embeddings, shared by every value.
AFTER_CACHE_PARAMS = frozenset({"n_components"})


# Parameters added after caches existed, left out of the fingerprint at their
# default so that stored embeddings keep their keys.
OMITTED_AT_DEFAULT = {"backend": "torch"}
_NO_DEFAULT = object()


class _LoadedNetworks:
    """A small LRU of loaded networks, shared by encoders with equal parameters.

    Frozen encoders never modify their network, so the clones that
    ``GridSearchCV`` fits -- one per fold and candidate -- load the model once.
    Threads that ask for the same key at once (the tasks of a multi-threaded
    Dask worker, joblib's threading backend) load it once: the first loads
    while the others wait for it; other keys load meanwhile.
    """

    def __init__(self, maxsize: int = 3):
        self.maxsize = maxsize
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict = {}  # key -> the lock held by the thread loading it

    def get_or_load(self, key, load):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._items:  # loaded by the thread this one waited for
                    self._items.move_to_end(key)
                    return self._items[key]
            try:
                loaded = load()
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:
                self._items[key] = loaded
                self._loading.pop(key, None)  # in the same step: no gap for a second load
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


LOADED_NETWORKS = _LoadedNetworks()

# One lock per loaded network: the encoders that share a network (clones in a
# grid search, the tasks of a multi-threaded Dask worker) encode one at a time,
# because a Hugging Face fast tokenizer keeps its padding and truncation
# settings in shared state that concurrent calls overwrite.
_NETWORK_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NETWORK_LOCKS_GUARD = threading.Lock()


def network_lock(network) -> threading.RLock:
    """The lock that serialises inference on ``network`` across threads."""
    with _NETWORK_LOCKS_GUARD:
        lock = _NETWORK_LOCKS.get(network)
        if lock is None:
            lock = _NETWORK_LOCKS[network] = threading.RLock()
        return lock


class BaseEncoder(DocLinkMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared machinery of the frozen encoders. Not meant to be used directly.

    The parameters are those every encoder has; a subclass that only names its
    adapter (``_make_adapter``) is a working encoder with them. ``TextEncoder``
    and ``ImageEncoder`` add their own.
    """

    _parameter_constraints: dict = {
        "model": [str],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str],
        "progress": ["boolean", StrOptions({"auto"})],
        "cache": [str, os.PathLike, None],
    }

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        device: str = "auto",
        progress: bool | str = "auto",
        cache: str | os.PathLike | None = "memory",
    ):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self.cache = cache

    # Attributes holding the loaded network; never pickled (see __getstate__).
    _network_attrs = ("_network", "_adapter")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)  # where scikit-learn wraps transform for set_output
        _dask.dask_before_set_output(cls)

    # ------------------------------------------------------------------ hooks
    def _make_adapter(self):  # pragma: no cover - every encoder names its adapter
        """The modality's adapter, configured by this encoder's parameters."""
        raise NotImplementedError

    def _load_model(self, device: str) -> tuple[Any, str, str]:
        """The body (in eval mode, on ``device``), its source and its reference."""
        body, source, reference = self._make_adapter().load(device)
        return body.eval(), source, reference

    def _after_load(self, network: Any) -> None:
        """Attach an adapter to the loaded body (its preprocessing; optional hook)."""
        self._adapter = self._make_adapter()
        self._adapter.attach(network)

    def _output_dim(self, network: Any) -> int:
        return self._make_adapter().output_dim(network)

    def _prepare_input(self, X: Any) -> list:
        return self._make_adapter().check_X(X)

    def _content_key(self, item: Any) -> bytes:
        return self._adapter.content_key(item)

    def _encode(self, items: list, failed: list, labels=None) -> np.ndarray:
        """The body over the adapter's evaluation batches; row *i* for item *i*."""
        import torch

        from sktransfer._precision import autocast

        body, adapter = self._runner(), self._adapter
        out = np.empty((len(items), self.embedding_dim_), dtype=np.float32)
        batches = self._progress(adapter.inference_batches(items, self.batch_size), len(items))
        with torch.inference_mode(), autocast(self.precision_, self.device_):
            for rows, batch in batches:
                out[rows] = body(adapter.to_device(batch, self.device_)).float().cpu().numpy()
        return out

    def _runner(self, precision: str | None = None):
        """What computes a batch's features: the torch body, or its ONNX export.

        With ``backend="onnx"`` or ``"openvino"`` the body is exported (and
        checked) on first use per process, then reused; see ``sktransfer._onnx``.
        ``precision`` (default ``precision_``) is the runtime's, for OpenVINO.
        """
        network = self._body()
        backend = self._backend_in_use()
        if backend == "torch":
            return self._torch_runner(network, str(precision or self.precision_))
        from sktransfer import _lean, _onnx

        threads = resolve_n_threads(getattr(self, "n_threads", None))
        precision = str(precision or self.precision_)
        if _lean.is_lean(network):  # started from a start record: no torch
            return _onnx.stored_runner(
                network.export, network.export_key, network.inputs, backend, threads, precision
            )
        import torch

        identity = getattr(self, "_weights_identity", None) or ""
        return _onnx.runner(
            network,
            self._adapter,
            self._fingerprint(identity or None, export=True),
            cache=self.cache,
            threads=threads or torch.get_num_threads(),
            on_disk=identity.startswith("sha256:"),
            backend=backend,
            precision=precision,
        )

    def _torch_runner(self, network, precision: str):
        """What runs ``network``'s forward pass with the torch backend (hook: itself)."""
        return network

    def _backend_in_use(self) -> str:
        """The backend ``fit`` set up (``backend_``); a later ``set_params`` needs a refit."""
        return self.__dict__.get("backend_") or getattr(self, "backend", "torch")

    def _progress(self, batches, n_items: int):
        """``batches``, behind a tqdm bar when ``progress`` asks for one."""
        if not self._show_progress(n_items):
            return batches
        from tqdm.auto import tqdm

        total = -(-n_items // self.batch_size)
        return tqdm(batches, total=total, desc=type(self).__name__, unit="batch")

    # ------------------------------------------------------ identity & loads
    def _output_params(self) -> dict:
        """The parameters that can change the numbers this encoder produces."""
        return {
            k: v
            for k, v in sorted(self.get_params().items())
            if k not in RUNTIME_ONLY_PARAMS
            and k not in AFTER_CACHE_PARAMS
            and OMITTED_AT_DEFAULT.get(k, _NO_DEFAULT) != v
        }

    # Parameters naming the weights: when the weights' content is hashed into
    # the identity, their value (an id or a path) is left out of the
    # fingerprint, so the same weights reached two ways share cached vectors.
    _weights_params: tuple[str, ...] = ()

    def _weights_context(self) -> dict:
        """What, besides the weights' content, decides the numbers (hook).

        Added to the fingerprint in place of the ``_weights_params`` (say the
        architecture the weights are loaded into, when ``model`` names both).
        """
        return {}

    def _shared_load(self, device: str):
        """Load the network, or reuse the one an equal encoder loaded in this process.

        Returns ``(network, source, reference, identity)``. The identity (a hash
        of the weights' content, see ``sktransfer._fingerprint``) is taken once
        per load, right after the weights were read. A local file or folder in
        the parameters is stamped (inode, size, mtime, ctime), so one rewritten
        in place is loaded -- and hashed -- again.
        """
        params = self._output_params()
        params.pop("backend", None)  # one torch network, whichever backend runs it
        stamps = tuple(_fingerprint.path_stamp(v) for v in params.values() if _is_pathish(v))
        key = (type(self).__name__, device, repr(params), stamps)

        def load():
            network, source, reference = self._load_model(device)
            return network, source, reference, _fingerprint.model_identity(source, reference)

        return LOADED_NETWORKS.get_or_load(key, load)

    def _fingerprint(self, identity: str | None = None, *, export: bool = False) -> str:
        """Hex key prefix: weights identity + every output-affecting parameter.

        ``export=True``: the key of the network's float32 ONNX export, which
        every backend and precision share (see ``sktransfer._onnx``).
        """
        if identity is None:
            identity = getattr(self, "_weights_identity", None) or _fingerprint.model_identity(
                self.model_source_, self.model_reference_
            )
        return _fingerprint.fingerprint(
            type(self).__name__,
            identity,
            self.embedding_dim_,
            self._fingerprint_params(identity, export=export),
        ).hex()

    def _fingerprint_params(self, identity: str, *, export: bool = False) -> dict:
        """The parameters in the fingerprint, given the weights' identity."""
        params = self._output_params()
        if identity.startswith("sha256:"):
            for name in self._weights_params:
                params.pop(name, None)
            params.update(self._weights_context())
        if export:
            params.pop("precision", None)
            params.pop("backend", None)
        elif "precision" in params:  # the precision that runs ("auto" and fallbacks resolved)
            params["precision"] = str(self.precision_)
        return params

    # ------------------------------------------------------------ sklearn API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Load the pretrained model; the data is only validated.

        Parameters
        ----------
        X : sequence of samples, optional
            Validated (types, missing values) but not encoded: a frozen encoder
            learns nothing from the data -- except with ``n_components``, where
            the samples are encoded and a PCA is fitted on their embeddings.
        y : ignored

        Returns
        -------
        self
        """
        self._fit(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None, **fit_params):
        """Load the model and encode ``X``; same result as ``fit(X).transform(X)``."""
        full = self._fit(X, y)
        if full is None:
            return self.transform(X)
        if _dask.is_dask_collection(X):  # stays lazy: the kept full-width result, projected
            return _dask.project(self, full)
        return self._reduce(full)

    def _fit(self, X, y=None):
        """Load the body, then fit the reduction; the full-width training rows, or None."""
        self._fit_network(X)
        return self._fit_reduction(X)

    def _fit_network(self, X, make_runner: bool = True) -> None:
        """Load the pretrained body and set the fitted state that depends on it.

        ``make_runner=False`` leaves what runs the forward pass (an export, an
        inference copy) to be made later: for a body that will change before
        it encodes anything (an adaptation), one made now would be thrown away.
        """
        self.__dict__.pop("pca_", None)  # until refitted, transform gives full width
        self.__dict__.pop("_cache_counts", None)  # cache_info() counts from this fit on
        if _dask.is_dask_collection(X):  # only its columns are checked: nothing is computed
            X = _dask.fit_input(X)
        if X is not None:
            self._prepare_input(X)
            self._remember_input_columns(X)
        else:
            self.n_features_in_ = 1
            self._input_name = None
        self.device_ = self._resolve_device()
        self.backend_ = getattr(self, "backend", "torch")
        network, source, reference, identity = self._load_network(self.device_)
        self._network = network
        self.model_source_ = source
        self.model_reference_ = reference
        self._weights_identity = identity
        self.embedding_dim_ = self.n_features_out_ = int(self._output_dim(network))
        self._after_load(network)
        self.precision_ = self._resolve_precision(self.device_, network)
        self.model_fingerprint_ = self._fingerprint(identity)
        if make_runner:
            self._make_runner(network)

    def _make_runner(self, network) -> None:
        """Make what runs the forward pass of ``network`` now (an export, an inference copy).

        Its cost and its errors belong to ``fit``, not to the first ``transform``;
        with an export, the start record for later processes is written too.
        """
        self._runner()
        identity = self._weights_identity
        if self.backend_ != "torch":
            from sktransfer import _lean

            if not _lean.is_lean(network) and identity.startswith("sha256:"):
                self._write_start_record(network)

    def _load_network(self, device: str):
        """``(network, source, reference, identity)``: from a start record, else loaded.

        With ``backend="onnx"`` / ``"openvino"`` on the CPU, an encoder whose
        export was made and checked before starts from its start record
        without importing torch (see ``sktransfer._lean``).
        """
        if self._backend_in_use() != "torch" and device == "cpu":
            started = self._start_from_record()
            if started is not None:
                return started
        return self._shared_load(device)

    def _start_from_record(self):
        """``(network, source, reference, identity)`` from a start record, or None (hook)."""
        return None

    def _write_start_record(self, network) -> None:
        """Write the start record of the export just checked (see ``sktransfer._lean``)."""
        from sktransfer import _onnx

        key = _onnx.export_key(self._fingerprint(self._weights_identity, export=True))
        export = _onnx.export_folder(self.cache) / key / "model.onnx"
        runner = self._runner(precision="float32")
        if export.is_file() and getattr(runner, "source", None) == str(export):
            self._write_record(network, export, runner.names)

    def _write_record(self, network, export, inputs: list[str]) -> None:
        """Write the modality's start record for ``export`` (hook; none by default)."""

    def _resolve_device(self) -> str:
        """``device`` resolved; the ONNX backends run on the CPU (``"auto"`` picks it)."""
        backend = getattr(self, "backend", "torch")
        if backend == "torch":
            return resolve_device(self.device)
        from sktransfer import _onnx

        _onnx.check_runtime(backend)
        if self.device in ("auto", "cpu"):
            return "cpu"  # without asking torch: a start from a record never imports it
        device = resolve_device(self.device)
        if not device.startswith("cpu"):
            raise ValueError(
                f"backend={backend!r} runs on the CPU, but device={self.device!r} "
                f"resolves to {device!r}. Pass device='cpu' (or 'auto'), or "
                "backend='torch' to run on that device."
            )
        return device

    def _fit_reduction(self, X, **transform_params):
        """With ``n_components``: fit the PCA on the encoded ``X``; its full-width rows.

        Returns ``None`` without ``n_components`` (nothing was encoded). For a
        dask collection, the full-width result as a kept (persisted) dask
        collection, for ``fit_transform`` to project without encoding again.
        """
        self.n_features_out_ = self.embedding_dim_
        if getattr(self, "n_components", None) is None:
            return None
        rows, lazy = _reduction.training_rows(self, X, **transform_params)
        self.pca_ = _reduction.fit_pca(self, rows)
        self.n_features_out_ = int(self.pca_.n_components_)
        return rows if lazy is None else lazy

    def _reduce(self, embeddings: np.ndarray) -> np.ndarray:
        """``embeddings`` through the fitted PCA (unchanged without ``n_components``)."""
        pca = getattr(self, "pca_", None)
        return embeddings if pca is None else _reduction.apply_pca(pca, embeddings)

    def transform(self, X) -> np.ndarray:
        """Encode ``X`` into a float32 array of shape (n_samples, n_features_out_).

        Parameters
        ----------
        X : sequence of samples
            See the class docstring for the accepted types. A dask collection
            gives a lazy dask array instead (see docs/scale.md).

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), dtype float32
            Row *i* is the embedding of sample *i* (its ``n_components``
            principal components, with ``n_components``).
        """
        check_is_fitted(self)
        if _dask.is_dask_collection(X):  # lazy: one task per partition
            return _dask.transform(self, X)
        return self._reduce(self._embeddings(X))

    def _embeddings(self, X) -> np.ndarray:
        """The full-width embeddings of ``X`` (through the cache), before any reduction."""
        self._check_input_columns(X)
        items = self._prepare_input(X)
        if len(items) == 0:
            return np.empty((0, self.embedding_dim_), dtype=np.float32)
        network = self._body()  # (re)load first: the fingerprint may change after unpickling
        store = open_store(self.cache)
        failed: list[int] = []
        with network_lock(network), self._inference_context():
            if store is None:
                out = self._encode(items, failed)
            else:
                prefix = bytes.fromhex(self.model_fingerprint_)
                keys = [self._cache_key(prefix, item) for item in items]
                encode = self._encoder_of(items)
                misses: list[int] = []

                def compute(positions: list[int]):
                    misses.extend(p for p in positions if keys[p] is not None)
                    return encode(positions)

                out, failed = store.rows_for(keys, self.embedding_dim_, compute)
                n_distinct = len({key for key in keys if key is not None})
                self._count_cache_lookups(hits=n_distinct - len(misses), misses=len(misses))
        if failed:
            self._report_failures(sorted(failed))
        return out

    def _encoder_of(self, items: list):
        """``compute(positions) -> (vectors, failed)`` over ``items``, for the cache."""

        def compute(positions: list[int]):
            failed: list[int] = []
            vectors = self._encode([items[i] for i in positions], failed, labels=positions)
            return vectors, failed

        return compute

    def _report_failures(self, positions: list[int]) -> None:
        """Tell the user which samples were filled instead of encoded (hook)."""

    def _cache_key(self, prefix: bytes, item) -> bytes | None:
        try:
            content = self._content_key(item)
        except InvalidInputError:
            # Unreadable: encoded without the cache, where the error (or the
            # fill value, per on_error) is produced with the item's position.
            return None
        return _fingerprint.sample_key(prefix, content)

    def _count_cache_lookups(self, hits: int, misses: int) -> None:
        counts = self.__dict__.setdefault("_cache_counts", [0, 0])
        counts[0] += hits
        counts[1] += misses

    def cache_info(self) -> CacheStats:
        """This encoder's cache hits and misses, and the size of the store it uses.

        ``hits`` and ``misses`` count this encoder's lookups only (per distinct
        sample per ``transform`` call, since its last ``fit``): a clone, or
        another encoder sharing the store, keeps its own counts. ``entries``
        and ``nbytes`` describe the whole store, which every encoder with the
        same ``cache`` shares; the store's own counts (all encoders together)
        are in ``extra["store_hits"]`` and ``extra["store_misses"]``.

        Returns
        -------
        CacheStats

        Raises
        ------
        ValueError
            With ``cache=None``: there is no store.

        Examples
        --------
        >>> from sktransfer import TextEncoder
        >>> encoder = TextEncoder().fit()
        >>> _ = encoder.transform(["a film", "a film", "a book"])
        >>> _ = encoder.transform(["a film"])
        >>> info = encoder.cache_info()
        >>> info.hits, info.misses
        (1, 2)
        """
        from sktransfer.cache import cache_info

        store = cache_info(self.cache)
        hits, misses = self.__dict__.get("_cache_counts", (0, 0))
        extra = dict(store.extra, store_hits=store.hits, store_misses=store.misses)
        return CacheStats(
            hits=hits,
            misses=misses,
            entries=store.entries,
            nbytes=store.nbytes,
            rejected=store.rejected,
            extra=extra,
        )

    @property
    def _n_features_out(self) -> int:  # read by ClassNamePrefixFeaturesOutMixin
        return self.n_features_out_

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output columns, after the input column when it has a name.

        ``<column>_0`` ... ``<column>_{d-1}`` (as skrub names them) when the
        encoder was fitted on a named column -- a one-column DataFrame or a
        named pandas Series, as a ColumnTransformer passes it -- or when
        ``input_features`` names it; else ``<classname>0`` ... ``<classname>{d-1}``.
        With ``n_components`` the columns are principal components, named
        ``<column>_pca0`` ... or ``<classname>_pca0`` ...

        Parameters
        ----------
        input_features : array-like of str, optional
            The one input column's name; checked against ``feature_names_in_``.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features, generate_names=False)
        column = names[0] if names is not None else getattr(self, "_input_name", None)
        if getattr(self, "pca_", None) is not None:
            prefix = f"{column if column is not None else type(self).__name__.lower()}_pca"
        elif column is None:
            return super().get_feature_names_out()
        else:
            prefix = f"{column}_"
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_source_")

    def __sklearn_tags__(self):
        tags = one_column_tags(super().__sklearn_tags__())
        tags.transformer_tags.preserves_dtype = []
        return tags

    # ---------------------------------------------------------------- helpers
    @property
    def model_(self):
        """The loaded network (reloaded from its reference after unpickling).

        An encoder started from its export's start record (``backend="onnx"``
        or ``"openvino"``, see ``sktransfer._lean``) has not loaded it; it is
        loaded here, on first use.
        """
        return self._torch_network()

    def _torch_network(self):
        """The torch body, loaded now for an encoder started from a start record."""
        from sktransfer import _lean

        network = self._body()
        if _lean.is_lean(network):
            network = self._shared_load(self.device_)[0]
        return network

    def _body(self):
        """The loaded body (reloaded from its reference after unpickling)."""
        check_is_fitted(self)
        network = getattr(self, "_network", None)
        if network is None or getattr(self, "_adapter", None) is None:
            network = self._reload()
        return network

    def _reload(self):
        if self._backend_in_use() != "torch" and self.device_ == "cpu":
            device = "cpu"  # the runtimes' CPU, found without importing torch
        else:
            device = device_after_unpickling(self.device, self.device_)
        network, source, reference, identity = self._load_network(device)
        if int(self._output_dim(network)) != self.embedding_dim_:
            raise InvalidInputError(
                f"The reloaded model gives {self._output_dim(network)} features but the "
                f"estimator was fitted with {self.embedding_dim_}; refit it."
            )
        self.device_ = device
        self._network = network
        self._after_load(network)
        self.precision_ = self._resolve_precision(device, network)
        # The same weights may live at another path on another machine (a
        # packaged copy, another cache folder): only other weights count.
        fingerprint = self._fingerprint(identity)
        before = getattr(self, "_weights_identity", None)
        if (identity != before) if before is not None else (fingerprint != self.model_fingerprint_):
            warnings.warn(
                f"{type(self).__name__} was fitted with {self.model_reference_!r} "
                f"({self.model_source_}) but after unpickling it loaded {reference!r} "
                f"({source}), whose weights differ; features may differ from the "
                "pickled run.",
                UserWarning,
                stacklevel=outside_stacklevel(),
            )
        # Other weights or another precision: never cached under the old key.
        self.model_fingerprint_ = fingerprint
        self.model_source_, self.model_reference_ = source, reference
        self._weights_identity = identity
        return network

    def _precision_probe(self, network):
        """``probe(precision)`` -> outputs on the adapter's probe batch, for "auto" (hook).

        ``None`` (an adapter without probe samples) means no probe: "auto" then
        stays at float32.
        """
        return precision_probe(network, self._adapter, self.device_)

    def _resolve_precision(self, device: str, network=None) -> str:
        """The precision that runs on ``device`` (see ``sktransfer._precision``)."""
        precision = getattr(self, "precision", "float32")
        backend = self._backend_in_use()
        if backend == "openvino":
            # OpenVINO computes bfloat16 where the CPU has it: the same rules as
            # torch, the probe comparing the runtime's own float32 and bfloat16.
            exact = self._runner(precision="float32")
            return resolve_precision(
                precision,
                device,
                owner=type(self).__name__,
                probe=self._runtime_probe,
                probe_key=exact,
            )
        if backend != "torch":
            return backend_precision(precision, backend, owner=type(self).__name__)
        probe = None
        if precision == "auto" and network is not None:
            probe = self._precision_probe(network)
        return resolve_precision(
            precision, device, owner=type(self).__name__, probe=probe, probe_key=network
        )

    def _runtime_probe(self, precision: str) -> np.ndarray:
        """The runtime's outputs on the adapter's probe batch at ``precision`` (OpenVINO)."""
        adapter = self._adapter
        items = adapter.check_X(adapter.probe_samples())
        run = self._runner(precision=precision)
        out = np.empty((len(items), self.embedding_dim_), dtype=np.float32)
        for rows, batch in adapter.inference_batches(items, len(items)):
            out[rows] = run.numpy(batch)
        return out

    def _inference_context(self):
        """Process settings for one ``transform``: torch threads, allocator thresholds.

        ``n_threads`` applies only inside the block (restored afterwards, also on
        an error); the allocator thresholds are raised once per process (see
        ``sktransfer._malloc``).
        """
        if self.device_.startswith("cpu"):
            tune_malloc()
        from sktransfer import _lean

        if _lean.is_lean(self.__dict__.get("_network")):  # the runtime has its own threads
            return contextlib.nullcontext()
        return torch_threads(getattr(self, "n_threads", None))

    def _show_progress(self, n_items: int) -> bool:
        if self.progress == "auto":
            return n_items >= PROGRESS_AUTO_MIN_ITEMS
        return bool(self.progress)

    def _remember_input_columns(self, X) -> None:
        """Record ``n_features_in_`` / ``feature_names_in_`` (one column of text/images)."""
        self.n_features_in_ = 1
        columns = getattr(X, "columns", None)
        if columns is not None and hasattr(X, "iloc"):
            self.feature_names_in_ = np.asarray([str(c) for c in columns], dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        # A named Series (what a ColumnTransformer passes for one column) names the outputs.
        name = getattr(X, "name", None) if hasattr(X, "iloc") and columns is None else None
        self._input_name = name if isinstance(name, str) else None

    def _check_input_columns(self, X) -> None:
        expected = getattr(self, "feature_names_in_", None)
        columns = getattr(X, "columns", None)
        if expected is None or columns is None or not hasattr(X, "iloc"):
            return
        got = [str(c) for c in columns]
        if got != list(expected):
            raise InvalidInputError(
                f"{type(self).__name__} was fitted on column {list(expected)} but "
                f"transform got columns {got}; pass the same column."
            )

    # --------------------------------------------------------------- pickling
    # Parameters added after release: the value that reproduces what an older
    # pickle (which lacks them) computed.
    _added_params: dict[str, Any] = {}

    def __setstate__(self, state):
        for name, value in self._added_params.items():
            state.setdefault(name, value)
        if "n_components" in self._get_param_names():  # pickled before it existed: off
            state.setdefault("n_components", None)
        if "n_features_out_" in state:  # pickled before the reduction: one width
            state.setdefault("embedding_dim_", state["n_features_out_"])
        super().__setstate__(state)

    def __getstate__(self):
        state = super().__getstate__()
        # A frozen encoder pickles the reference to its model, not its weights:
        # the network is reloaded on first use after unpickling.
        for attr in self._network_attrs:
            state.pop(attr, None)
        return state


_dask.dask_before_set_output(BaseEncoder)


def precision_probe(body, adapter, device: str):
    """``probe(precision)``: ``body``'s outputs on ``adapter``'s fixed probe batch.

    ``None`` when the adapter has no probe samples. Used by ``precision="auto"``
    of the encoders and of the fine-tuners (see ``sktransfer._precision``).
    """
    samples = adapter.probe_samples()
    if samples is None:
        return None
    items = adapter.check_X(samples)

    def probe(precision: str) -> np.ndarray:
        import torch

        from sktransfer._precision import autocast

        out = np.empty((len(items), adapter.output_dim(body)), dtype=np.float32)
        with torch.inference_mode(), autocast(precision, device):
            for rows, batch in adapter.inference_batches(items, len(items)):
                out[rows] = body(adapter.to_device(batch, device)).float().cpu().numpy()
        return out

    return probe


def _is_pathish(value) -> bool:
    return isinstance(value, (str, os.PathLike)) and os.path.exists(value)
