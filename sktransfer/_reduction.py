"""The encoders' optional width reduction: a PCA fitted on the training embeddings.

``TextEncoder(n_components=k)`` / ``ImageEncoder(n_components=k)`` encode the
samples given to ``fit``, fit scikit-learn's :class:`~sklearn.decomposition.PCA`
on their embeddings and return ``k`` principal components from ``transform``.
The reduction is applied *after* the embedding cache, which keeps full-width
embeddings: encoders that differ only in ``n_components`` share cached vectors.
"""

from __future__ import annotations

import numpy as np

from sktransfer import _dask
from sktransfer.exceptions import InvalidInputError


def training_rows(encoder, X, **transform_params) -> tuple[np.ndarray, object]:
    """``(rows, lazy)``: the full-width embeddings of ``fit``'s samples, for the PCA.

    ``rows`` is an array: fitting a PCA reads every training row. A dask
    collection is encoded once, kept (``persist``) and then gathered here;
    ``lazy`` is that kept result, which ``fit_transform`` projects instead of
    encoding the collection a second time (see :func:`sktransfer._dask.project`).
    ``lazy`` is None for other inputs.
    """
    name = f"{type(encoder).__name__}(n_components={encoder.n_components})"
    if X is None:
        raise InvalidInputError(
            f"{name} fits a PCA on the embeddings of the training samples, but fit got "
            "no samples; call fit(X) with the samples (or n_components=None to keep the "
            "full embedding)."
        )
    full = encoder.transform(X, **transform_params)
    if _dask.is_dask_collection(full):
        kept = full.persist()
        return np.asarray(kept.compute(), dtype=np.float32), kept
    return np.asarray(full, dtype=np.float32), None


def fit_pca(encoder, embeddings: np.ndarray):
    """A PCA with the encoder's ``n_components`` and ``random_state``, fitted on ``embeddings``.

    Rows that are not finite (images that could not be decoded, with
    ``on_error="nan"``) are left out of the fit.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import TextEncoder
    >>> pca = fit_pca(TextEncoder(n_components=2), np.eye(5, 8, dtype=np.float32))
    >>> pca.n_components_
    2
    """
    from sklearn.decomposition import PCA

    n_components = encoder.n_components
    rows = embeddings[np.isfinite(embeddings).all(axis=1)]
    n_samples, width = rows.shape
    if n_components > min(n_samples, width):
        limit = "samples" if n_samples < width else "embedding columns"
        raise InvalidInputError(
            f"{type(encoder).__name__}(n_components={n_components}) cannot fit a PCA on "
            f"{n_samples} training samples of {width} embedding columns: n_components must "
            f"be at most min(n_samples, width) = {min(n_samples, width)} (the number of "
            f"{limit}). Pass n_components <= {min(n_samples, width)}, fit on more samples, "
            "or n_components=None to keep the full embedding."
        )
    return PCA(n_components=n_components, random_state=encoder.random_state).fit(rows)


def apply_pca(pca, embeddings: np.ndarray) -> np.ndarray:
    """``embeddings`` projected on ``pca``'s components, float32; rows with NaN stay NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> pca = PCA(n_components=2).fit(np.eye(4, 3))
    >>> apply_pca(pca, np.array([[1.0, 0, 0], [np.nan, 0, 0]], dtype=np.float32)).shape
    (2, 2)
    """
    out = np.full((len(embeddings), pca.n_components_), np.nan, dtype=np.float32)
    finite = np.isfinite(embeddings).all(axis=1)
    if finite.any():
        out[finite] = pca.transform(embeddings[finite])
    return out
