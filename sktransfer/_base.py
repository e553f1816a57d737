"""The base every frozen encoder shares.

A backend (text, image) is a small subclass that provides four hooks:

``_load_model(device) -> (network, source, reference)``
    Load the pretrained network (already in eval mode, on ``device``).
``_output_dim(network) -> int``
    Width of one embedding.
``_prepare_input(X) -> list``
    Validate the container and return one item per sample (not yet decoded).
``_encode(items) -> np.ndarray``
    Batched forward pass returning a float32 array, row *i* for item *i*.

Everything else -- parameter validation, lazy loading, the device, the sklearn
contract, feature names, pickling of the model *reference* instead of its
weights -- lives here once.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from sktransfer._device import device_after_unpickling, resolve_device
from sktransfer._malloc import tune_malloc
from sktransfer._precision import resolve_precision
from sktransfer._threads import torch_threads
from sktransfer.exceptions import InvalidInputError

# Inputs at least this long show a progress bar when ``progress="auto"``.
PROGRESS_AUTO_MIN_ITEMS = 1024


class BaseEncoder(TransformerMixin, BaseEstimator):
    """Shared machinery of the frozen encoders. Not meant to be used directly."""

    # Attributes holding the loaded network; never pickled (see __getstate__).
    _network_attrs = ("_network",)

    # ------------------------------------------------------------------ hooks
    def _load_model(self, device: str) -> tuple[Any, str, str]:  # pragma: no cover
        raise NotImplementedError

    def _output_dim(self, network: Any) -> int:  # pragma: no cover
        raise NotImplementedError

    def _prepare_input(self, X: Any) -> list:  # pragma: no cover
        raise NotImplementedError

    def _encode(self, items: list) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------ sklearn API
    def fit(self, X=None, y=None):
        """Load the pretrained model; the data is only validated.

        Parameters
        ----------
        X : sequence of samples, optional
            Validated (types, missing values) but not encoded: a frozen encoder
            learns nothing from the data.
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        if X is not None:
            self._prepare_input(X)
            self._remember_input_columns(X)
        else:
            self.n_features_in_ = 1
        self.device_ = resolve_device(self.device)
        self.precision_ = self._resolve_precision(self.device_)
        network, source, reference = self._load_model(self.device_)
        self._network = network
        self.model_source_ = source
        self.model_reference_ = reference
        self.n_features_out_ = int(self._output_dim(network))
        return self

    def transform(self, X) -> np.ndarray:
        """Encode ``X`` into a float32 array of shape (n_samples, n_features_out_).

        Parameters
        ----------
        X : sequence of samples
            See the class docstring for the accepted types.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), dtype float32
            Row *i* is the embedding of sample *i*.
        """
        check_is_fitted(self)
        self._check_input_columns(X)
        items = self._prepare_input(X)
        if len(items) == 0:
            return np.empty((0, self.n_features_out_), dtype=np.float32)
        embeddings = self._encode(items)
        assert embeddings.shape == (len(items), self.n_features_out_), embeddings.shape
        return embeddings

    def fit_transform(self, X, y=None, **fit_params):
        """Load the model and encode ``X``; same result as ``fit(X).transform(X)``."""
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the output columns: ``<classname>0`` ... ``<classname>{d-1}``.

        Parameters
        ----------
        input_features : ignored except for validation against ``feature_names_in_``.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            expected = getattr(self, "feature_names_in_", None)
            if len(input_features) != 1 or (
                expected is not None and list(input_features) != list(expected)
            ):
                raise ValueError(
                    f"input_features should be {list(expected) if expected is not None else 1} "
                    f"(one text/image column), got {list(input_features)}."
                )
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_source_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    # ---------------------------------------------------------------- helpers
    @property
    def model_(self):
        """The loaded network (reloaded from its reference after unpickling)."""
        check_is_fitted(self)
        network = getattr(self, "_network", None)
        if network is None:
            network = self._reload()
        return network

    def _reload(self):
        device = device_after_unpickling(self.device, self.device_)
        network, source, reference = self._load_model(device)
        if source != self.model_source_ or reference != self.model_reference_:
            warnings.warn(
                f"{type(self).__name__} was fitted with {self.model_reference_!r} "
                f"({self.model_source_}) but after unpickling it loaded {reference!r} "
                f"({source}); features may differ from the pickled run.",
                UserWarning,
                stacklevel=3,
            )
        if int(self._output_dim(network)) != self.n_features_out_:
            raise InvalidInputError(
                f"The reloaded model gives {self._output_dim(network)} features but the "
                f"estimator was fitted with {self.n_features_out_}; refit it."
            )
        self.device_ = device
        self.precision_ = self._resolve_precision(device)
        self._network = network
        return network

    def _resolve_precision(self, device: str) -> str:
        """The precision that runs on ``device`` ("float32" after a warning if unsupported)."""
        return resolve_precision(
            getattr(self, "precision", "float32"), device, owner=type(self).__name__
        )

    def _inference_context(self):
        """Process settings for one ``transform``: torch threads, allocator thresholds.

        ``n_threads`` applies only inside the block (restored afterwards, also on
        an error); the allocator thresholds are raised once per process (see
        ``sktransfer._malloc``).
        """
        if self.device_.startswith("cpu"):
            tune_malloc()
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
    def __getstate__(self):
        state = super().__getstate__()
        # A frozen encoder pickles the reference to its model, not its weights:
        # the network is reloaded on first use after unpickling.
        for attr in self._network_attrs:
            state.pop(attr, None)
        return state
