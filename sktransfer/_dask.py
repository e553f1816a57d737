"""Dask collections in, lazy dask arrays out: the encoders beyond one process.

``BaseEncoder.transform`` hands any dask collection to :func:`transform`,
which builds one task per input partition. Each task receives the encoder
pickled as its *reference* (model id / path and parameters, a few hundred
bytes: the weights are never shipped) and calls the ordinary in-process
``transform`` on its partition. The network is loaded on a worker the first
time one of its tasks needs it and then kept in that process's table of loaded
networks (``sktransfer._base.LOADED_NETWORKS``), so every later task on the
same worker reuses it: one load per worker process. The embedding cache opens
on the worker too: ``cache="memory"`` is each worker's own memory, a directory
path is an SQLite store on each worker's disk at that path.

With ``set_output(transform="pandas")`` (or scikit-learn's global
``transform_output="pandas"``) the result is a lazy dask DataFrame instead,
with the encoder's feature names as columns. scikit-learn's own wrapper would
compute the whole result into one pandas DataFrame in this process, so the
encoders answer a dask collection before that wrapper sees it
(:func:`dask_before_set_output`).

Nothing here imports dask unless a dask collection was passed (a dask
collection cannot exist before dask is imported).
"""

from __future__ import annotations

import functools
import sys
import threading

import numpy as np

from sktransfer.exceptions import InvalidInputError

# One partition encodes at a time per process, so a network's tokenizer is
# never used by two threads at once (the table of loaded networks already
# makes threads that need the same model wait for one load). Parallelism comes
# from worker processes and torch's own threads.
_PROCESS_LOCK = threading.Lock()


def is_dask_collection(X) -> bool:
    """Whether ``X`` is a dask collection (without importing dask).

    Examples
    --------
    >>> is_dask_collection([1, 2, 3])
    False
    """
    if "dask" not in sys.modules:
        return False
    import dask

    return dask.is_dask_collection(X)


def dask_before_set_output(cls) -> None:
    """Give dask collections to ``cls``'s own ``transform`` / ``fit_transform`` unwrapped.

    scikit-learn wraps these methods so that ``set_output`` can turn their
    result into a pandas DataFrame; on a lazy dask array that conversion would
    compute every partition into this process's memory. For a dask collection
    the method runs without that wrapper and :func:`transform` builds the
    container (a dask array, or a dask DataFrame) itself. Applied to every
    encoder class when it is defined.

    Examples
    --------
    >>> from sktransfer import TextEncoder
    >>> TextEncoder.transform._dask_before_set_output  # applied when the class was defined
    True
    """
    for name in ("transform", "fit_transform"):
        method = cls.__dict__.get(name)
        if method is None or getattr(method, "_dask_before_set_output", False):
            continue
        # One level: the function scikit-learn's set_output wrapper wraps (functools.wraps).
        unwrapped = getattr(method, "__wrapped__", method)

        def dispatch(self, X, *args, _wrapped=method, _unwrapped=unwrapped, **kwargs):
            method = _unwrapped if is_dask_collection(X) else _wrapped
            return method(self, X, *args, **kwargs)

        dispatch = functools.wraps(method)(dispatch)
        dispatch._dask_before_set_output = True
        setattr(cls, name, dispatch)


def fit_input(X):
    """What ``fit`` validates of a dask collection: its empty pandas ``_meta`` or None.

    A frozen encoder learns nothing from the data, so ``fit`` reads no
    partition: a dask DataFrame's column names are remembered (and checked in
    ``transform``); the samples themselves are checked where they are encoded.

    Examples
    --------
    >>> fit_input(None) is None
    True
    """
    if X is None or _collection_kind(X) not in ("dataframe", "series"):
        return None
    return X._meta


def transform(encoder, X):
    """Encode a dask collection lazily: a dask array, one block per partition.

    Parameters
    ----------
    encoder : a fitted TextEncoder or ImageEncoder
    X : dask DataFrame (one column), dask Series, dask Bag or dask Array
        A dask Array holds one sample per row along its first axis (texts or
        paths in a 1-D array, or images as an ``(n, height, width[, 3])``
        array); it is rechunked so that only the first axis is split.

    Returns
    -------
    dask.array.Array of shape (n_samples, n_features_out_), dtype float32
        Rows line up with the input. The row count of a partition is unknown
        (``nan``) until computed when the input does not know it either
        (DataFrame, Series, Bag). With ``set_output(transform="pandas")``: a
        dask DataFrame with the columns ``get_feature_names_out()``, float32,
        one partition per input partition; a DataFrame or Series keeps its
        index and divisions (join the embeddings back to it), an Array gets
        the positions 0 to n-1, and each partition of a Bag counts from 0 (its
        lengths are unknown until computed, as in ``Bag.to_dataframe()``).

    Examples
    --------
    >>> import dask.bag as db
    >>> from sktransfer import TextEncoder
    >>> enc = TextEncoder(progress=False).fit()  # doctest: +SKIP
    >>> enc.transform(db.from_sequence(["a", "b"], npartitions=2))  # doctest: +SKIP
    dask.array<concatenate, shape=(nan, 384), dtype=float32, ...>
    """
    dim = int(encoder.n_features_out_)
    kind = _collection_kind(X)
    container = _output_container(encoder)
    if kind == "dataframe":
        _check_frame(encoder, X)
    if container == "pandas":
        return _transform_to_frame(encoder, X, dim, kind)
    if kind == "array":
        return _transform_array(encoder, X, dim)
    return _transform_parts(encoder, X, dim, kind)


def project(encoder, full):
    """``full`` (the lazy full-width result of a fitted encoder) through its PCA, lazily.

    What ``fit_transform`` returns for a dask collection with ``n_components``:
    ``fit`` has already encoded the collection to fit the PCA and kept the
    result (``persist``), so the projection reads those blocks instead of
    encoding every partition again. The container is the one ``transform``
    gives: a dask array, or a dask DataFrame named by
    ``get_feature_names_out()`` on the same index and divisions.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.decomposition import PCA
    >>> from sktransfer import TextEncoder
    >>> enc = TextEncoder(n_components=2)
    >>> enc.pca_ = PCA(n_components=2).fit(np.eye(4, 3))
    >>> project(enc, da.ones((5, 3), chunks=2, dtype=np.float32)).compute().shape
    (5, 2)
    """
    from sktransfer._reduction import apply_pca

    pca = encoder.pca_
    width = int(pca.n_components_)
    if is_dask_collection(full) and hasattr(full, "map_partitions"):  # a dask DataFrame
        import pandas as pd

        columns = [str(c) for c in encoder.get_feature_names_out()]
        meta = pd.DataFrame(
            np.empty((0, width), dtype=np.float32), columns=columns, index=full._meta.index
        )
        return full.map_partitions(_reduce_frame, pca, columns, meta=meta)
    if len(full.chunks[1]) > 1:  # a block must hold whole rows
        full = full.rechunk({1: -1})
    return full.map_blocks(
        functools.partial(apply_pca, pca),
        dtype=np.float32,
        chunks=(full.chunks[0], (width,)),
        meta=np.empty((0, width), dtype=np.float32),
    )


def _reduce_frame(part, pca, columns):
    import pandas as pd

    from sktransfer._reduction import apply_pca

    out = apply_pca(pca, part.to_numpy(dtype=np.float32))
    return pd.DataFrame(out, index=part.index, columns=columns)


def _transform_parts(encoder, X, dim: int, kind: str):
    """One block per partition of a DataFrame, Series or Bag (row counts unknown)."""
    import dask
    import dask.array as da

    parts = X.to_delayed()
    encode = dask.delayed(encode_partition, pure=True)
    blocks = [
        da.from_delayed(encode(encoder, part, number, kind), shape=(np.nan, dim), dtype=np.float32)
        for number, part in enumerate(parts)
    ]
    if not blocks:
        return da.zeros((0, dim), dtype=np.float32)
    return da.concatenate(blocks, axis=0)


def _output_container(encoder) -> str:
    """What ``set_output`` asked for: "default" (a dask array) or "pandas" (a dask DataFrame)."""
    from sklearn.utils._set_output import _get_output_config

    container = _get_output_config("transform", encoder)["dense"]
    if container not in ("default", "pandas"):
        raise InvalidInputError(
            f"{type(encoder).__name__} has set_output(transform={container!r}), which has no "
            "dask counterpart: a dask collection gives a lazy dask array, or a dask DataFrame "
            "with set_output(transform='pandas'). Use one of these, or compute the input "
            "first to get an in-memory result."
        )
    return container


def _transform_to_frame(encoder, X, dim: int, kind: str):
    """The lazy result as a dask DataFrame named by ``get_feature_names_out()``."""
    import dask.dataframe as dd
    import pandas as pd

    columns = [str(c) for c in encoder.get_feature_names_out()]
    if kind in ("dataframe", "series"):
        # Partition by partition, each keeping its index: the divisions stay those of X.
        meta = pd.DataFrame(
            np.empty((0, dim), dtype=np.float32), columns=columns, index=X._meta.index
        )
        return X.map_partitions(_encode_frame, encoder, columns, kind, meta=meta)
    if kind == "array":
        array = _transform_array(encoder, X, dim)
    else:
        array = _transform_parts(encoder, X, dim, kind)
    return dd.from_dask_array(array, columns=columns)


def _encode_frame(part, encoder, columns, kind, partition_info=None):
    import pandas as pd

    number = None if partition_info is None else partition_info["number"]
    out = encode_partition(encoder, part, number, kind)
    return pd.DataFrame(out, index=part.index, columns=columns)


def _collection_kind(X) -> str:
    import dask.array as da
    import dask.bag as db

    if isinstance(X, da.Array):
        return "array"
    if isinstance(X, db.Bag):
        return "bag"
    try:
        import dask.dataframe as dd
    except ImportError:  # pragma: no cover - dask without its dataframe extra
        dd = None
    if dd is not None and isinstance(X, dd.DataFrame):
        return "dataframe"
    if dd is not None and isinstance(X, dd.Series):
        return "series"
    raise InvalidInputError(
        f"Encoders accept a dask DataFrame (one column), Series, Bag or Array, got "
        f"{type(X).__module__}.{type(X).__name__}; convert it to one of these "
        "(e.g. collection.to_bag() or dask.bag.from_delayed(...))."
    )


def _check_frame(encoder, X) -> None:
    """The column checks of an in-process DataFrame, done before anything runs."""
    columns = [str(c) for c in X.columns]
    name = type(encoder).__name__
    if len(columns) != 1:
        raise InvalidInputError(
            f"{name} expects one column but got a dask DataFrame with {len(columns)} "
            f"columns {columns[:10]}; select the column, e.g. ddf['text']."
        )
    expected = getattr(encoder, "feature_names_in_", None)
    if expected is not None and columns != list(expected):
        raise InvalidInputError(
            f"{name} was fitted on column {list(expected)} but transform got columns "
            f"{columns}; pass the same column."
        )


def _transform_array(encoder, X, dim: int):
    if X.ndim == 0:
        raise InvalidInputError(
            f"{type(encoder).__name__} expects one sample per row, got a 0-d dask array."
        )
    if X.ndim > 1 and any(len(c) > 1 for c in X.chunks[1:]):
        # A block must hold whole samples: split the rows only.
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    return X.map_blocks(
        _encode_block,
        encoder,
        X.ndim,
        dtype=np.float32,
        chunks=(X.chunks[0], (dim,)),
        drop_axis=list(range(1, X.ndim)),
        new_axis=[1],
        meta=np.empty((0, dim), dtype=np.float32),
    )


def _encode_block(block, encoder, ndim: int, block_info=None):
    number = None if block_info is None else block_info[0]["chunk-location"][0]
    if ndim > 1 and block.ndim < ndim:  # pragma: no cover - dask passes full-rank blocks
        block = block.reshape((-1,) + block.shape[1:])
    return encode_partition(encoder, block, number, "array")


def encode_partition(encoder, part, number=None, kind: str = "bag") -> np.ndarray:
    """Encode one partition in this process (what a dask task runs).

    Parameters
    ----------
    encoder : fitted encoder (usually a freshly unpickled copy)
    part : the partition: a pandas DataFrame / Series, a list, or an ndarray
    number : int or None
        The partition's number, named in errors.
    kind : str
        The collection it came from (for the error text).

    Returns
    -------
    ndarray of shape (len(part), n_features_out_), dtype float32

    Examples
    --------
    >>> from sktransfer import TextEncoder
    >>> enc = TextEncoder(progress=False).fit()  # doctest: +SKIP
    >>> encode_partition(enc, ["a", "b"]).shape  # doctest: +SKIP
    (2, 384)
    """
    if kind == "bag" and not isinstance(part, (list, tuple)):
        part = list(part)
    try:
        with _PROCESS_LOCK:
            out = encoder.transform(part)
    except InvalidInputError as exc:
        if number is None:
            raise
        raise InvalidInputError(
            f"In partition {number} of the dask {kind} (positions count from the start "
            f"of the partition): {exc}"
        ) from exc
    return np.asarray(out, dtype=np.float32)
