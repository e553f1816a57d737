"""The part of the encoders that adapts their pretrained body to target data.

``TextEncoder(adapt="contrastive")`` and ``ImageEncoder(adapt="batchnorm" |
"tent")`` take ``fit(X, y, sample_domain=...)``: negative ``sample_domain``
entries mark the target samples (skada's convention), on which the body is
adapted; every later ``transform`` uses the adapted body. ``sample_domain`` is
requested through scikit-learn's metadata routing by default, so
``skada.make_da_pipeline`` (and any router with routing enabled) passes it on.

The loaded network is shared between encoders with equal parameters, so the
adaptation runs on a private copy. The tensors it changed are kept (and
pickled) with the encoder, and their digest enters the model fingerprint: the
adapted body has its own cache keys, and an unadapted encoder's keys are what
they were.
"""

from __future__ import annotations

import contextlib
import copy

import numpy as np

from sktransfer import _dask, _fingerprint
from sktransfer._base import BaseEncoder
from sktransfer.adapt import _body
from sktransfer.exceptions import InvalidInputError

# Parameters that only shape the adaptation: they are left out of the model
# fingerprint and of the shared-network key (the digest of the adapted tensors
# stands for them), so an encoder with ``adapt=None`` keeps its cache keys.
ADAPT_PARAMS = ("adapt", "adapt_steps", "random_state")

_ADAPTED_ATTRS = (
    "_adapted_state",
    "_adapted_digest",
    "adaptation_",
    "_source_network",
    "_source_state",
    "_source_fingerprint",
)


class AdaptiveEncoder(BaseEncoder):
    """A frozen encoder whose body can be adapted to unlabelled target samples."""

    # skada's convention: adapters request ``sample_domain`` for ``fit`` by default.
    __metadata_request__fit = {"sample_domain": True}
    __metadata_request__transform = {"sample_domain": True}

    def _output_params(self) -> dict:
        params = super()._output_params()
        for name in ADAPT_PARAMS:
            params.pop(name, None)
        return params

    def _fingerprint(self, identity: str | None = None, **kwargs) -> str:
        base = super()._fingerprint(identity, **kwargs)
        network = self.__dict__.get("_network")
        if kwargs.get("export") and network is not None:
            if network is self.__dict__.get("_source_network"):  # inside _source_body()
                digest = _body.state_digest(self._source_state)
                return _fingerprint.fingerprint("adapted-source", base, digest).hex()
        digest = getattr(self, "_adapted_digest", None)
        if digest is None:
            return base
        return _fingerprint.fingerprint("adapted", base, digest).hex()

    # ------------------------------------------------------------ sklearn API
    def fit(self, X=None, y=None, sample_domain=None):
        """Load the pretrained model and, with ``adapt``, adapt it to the target samples.

        Parameters
        ----------
        X : sequence of samples, optional
            Validated. With ``adapt``, the samples whose ``sample_domain`` is
            negative are the target data the body is adapted to.
        y : array-like of shape (n_samples,), optional
            Only ``adapt="tent"`` reads it: the labels of the source samples
            (target entries are ignored, e.g. skada's masked -1).
        sample_domain : array-like of int of shape (n_samples,), optional
            Domain of each sample: negative for target, positive for source
            (skada's convention). Requested through metadata routing.

        Returns
        -------
        self
        """
        self._fit(X, y, sample_domain)
        return self

    def _fit(self, X, y=None, sample_domain=None):
        """Load, adapt, then fit the reduction; the full-width training rows, or None."""
        for attr in _ADAPTED_ATTRS:
            self.__dict__.pop(attr, None)
        self._validate_params()
        plan = None
        if self.adapt is not None:
            plan = self._plan_adaptation(X, y, sample_domain)
        elif sample_domain is not None and X is not None:
            _check_sample_domain(sample_domain, len(self._prepare_input(X)), type(self).__name__)
        # With an adaptation, what runs the forward pass is made for the adapted
        # body only (an export of the pretrained one would be thrown away).
        self._fit_network(X, make_runner=plan is None)
        if plan is not None:
            self._run_adaptation(*plan)
            self._runner()  # no start record: it would stand for the pretrained weights
        if sample_domain is None or getattr(self, "_source_state", None) is None:
            return self._fit_reduction(X)
        return self._fit_reduction(X, sample_domain=sample_domain)

    def fit_transform(self, X, y=None, sample_domain=None):
        """Fit (adapting the body with ``adapt``) and encode ``X``.

        Parameters
        ----------
        X : sequence of samples
        y : array-like, optional
            See :meth:`fit`.
        sample_domain : array-like of int, optional
            See :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), dtype float32
        """
        full = self._fit(X, y, sample_domain)
        if full is None:
            return self.transform(X, sample_domain=sample_domain)
        if _dask.is_dask_collection(X):  # stays lazy: the kept full-width result, projected
            return _dask.project(self, full)
        return self._reduce(full)

    # --------------------------------------------------------------- helpers
    def _plan_adaptation(self, X, y, sample_domain):
        """Check the data an adaptation needs; return (target items, source items, labels)."""
        name = f"{type(self).__name__}(adapt={self.adapt!r})"
        if X is None or sample_domain is None:
            raise InvalidInputError(
                f"{name} adapts its body to unlabelled target samples: call "
                "fit(X, sample_domain=...) with a negative domain for every target sample and "
                "a positive one for every source sample (skada's convention). In a pipeline, "
                "sample_domain is routed by metadata routing (skada.make_da_pipeline does it)."
            )
        items = self._prepare_input(X)
        domains = _check_sample_domain(sample_domain, len(items), type(self).__name__)
        target = np.flatnonzero(domains < 0)
        if len(target) == 0:
            raise InvalidInputError(
                f"{name} got no target samples: sample_domain has no negative entry "
                f"(domains seen: {sorted(set(domains.tolist()))[:10]}). Mark the unlabelled "
                "target samples with a negative domain, e.g. -1."
            )
        source = np.flatnonzero(domains >= 0)
        labels = None
        if self.adapt == "tent":
            if y is None or len(source) == 0:
                raise InvalidInputError(
                    f"{name} trains a classifier on the labelled source samples to adapt to "
                    "the target, but got no source labels: pass fit(X, y, sample_domain=...) "
                    "with y given for the samples of positive sample_domain."
                )
            labels = np.asarray(y)[source]
            if len(labels) != len(source) or len(np.unique(labels)) < 2:
                raise InvalidInputError(
                    f"{name} needs source labels of at least 2 classes; the source samples "
                    f"(positive sample_domain) have {len(np.unique(labels))} distinct label(s)."
                )
        return [_value(items[i]) for i in target], [_value(items[i]) for i in source], labels

    def _run_adaptation(self, target, source, labels) -> None:
        import torch

        seed = int(np.random.RandomState(self.random_state).randint(2**31 - 1))
        timer = _body.Timer()
        base = self._body()  # the encoder's whole body (a text body wraps its model)
        network = copy.deepcopy(base)
        before = _body.snapshot(network)
        source_state = None
        with self._inference_context(), torch.inference_mode(False):
            if self.adapt == "contrastive":
                steps = self.adapt_steps
                if steps is None:
                    steps = min(_body.DEFAULT_CONTRASTIVE_STEPS, -(-len(target) // self.batch_size))
                done = _body.adapt_contrastive(
                    getattr(network, "st", network),
                    target,
                    batch_size=self.batch_size,
                    steps=steps,
                    seed=seed,
                    device=self.device_,
                )
            else:
                if not _body.batchnorm_layers(network):
                    raise InvalidInputError(
                        f"{type(self).__name__}(adapt={self.adapt!r}) adapts BatchNorm layers, "
                        f"but {self.model!r} has none (e.g. a vision transformer uses "
                        "LayerNorm). Use a convolutional model, or adapt=None with a "
                        "feature-level method (skada's CORAL, SubspaceAlignment)."
                    )
                if source:
                    # Domain-specific statistics (AdaBN): source samples are encoded
                    # with statistics of the source, target samples with the target's.
                    source_network = copy.deepcopy(base)
                    source_batches = _image_batches(self, source_network, source)
                    _body.adapt_batchnorm(source_network, source_batches)
                    source_state = _body.changed_state(before, source_network)
                if self.adapt == "batchnorm":
                    done = _body.adapt_batchnorm(network, _image_batches(self, network, target))
                else:
                    if source_state is not None:
                        self._set_source_body(source_network, source_state)
                    with self._source_body():
                        features = self.transform(source)
                    head_weight, head_bias = _source_head(features, labels, seed)
                    steps = self.adapt_steps
                    if steps is None:
                        steps = -(-len(target) // self.batch_size)
                    done = _body.adapt_tent(
                        network,
                        _image_batches(self, network, target),
                        head_weight,
                        head_bias,
                        steps=steps,
                        seed=seed,
                    )
        changed = _body.changed_state(before, network)
        self._network = network
        self._after_load(network)
        self._adapted_state = changed
        self._adapted_digest = _body.state_digest(changed)
        self.model_fingerprint_ = self._fingerprint(self._weights_identity)
        if source_state is not None:
            self._set_source_body(source_network, source_state)
        self.adaptation_ = {
            "method": self.adapt,
            "n_target": len(target),
            "n_source": len(source),
            "steps": int(done),
            "changed_tensors": len(changed),
            "seconds": round(timer(), 3),
        }

    def _set_source_body(self, network, state: dict) -> None:
        self._source_network = network
        self._source_state = state
        base = BaseEncoder._fingerprint(self, self._weights_identity)
        digest = _body.state_digest(state)
        self._source_fingerprint = _fingerprint.fingerprint("adapted-source", base, digest).hex()

    @contextlib.contextmanager
    def _source_body(self):
        """Encode with the body of source statistics (and its cache keys) inside the block."""
        network, fingerprint = self._body(), self.model_fingerprint_
        if getattr(self, "_source_state", None) is None:
            yield
            return
        if getattr(self, "_source_network", None) is None:
            base = self._shared_load(self.device_)[0]  # the pretrained body, unadapted
            self._source_network = _with_state(base, self._source_state, self)
        self._network, self.model_fingerprint_ = self._source_network, self._source_fingerprint
        try:
            yield
        finally:
            self._network, self.model_fingerprint_ = network, fingerprint

    def transform(self, X, sample_domain=None):
        """Encode ``X`` into a float32 array of shape (n_samples, n_features_out_).

        Parameters
        ----------
        X : sequence of samples
            See the class docstring for the accepted types.
        sample_domain : array-like of int of shape (n_samples,), optional
            Only read after ``fit`` with ``adapt="batchnorm"`` or ``"tent"`` on
            data with source samples: samples of non-negative domain are
            encoded with BatchNorm statistics of the source (AdaBN), the others
            with the adapted target body. Without it every sample is encoded
            as target data.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out_), dtype float32
            Row *i* is the embedding of sample *i*.
        """
        if sample_domain is None or getattr(self, "_source_state", None) is None:
            return super().transform(X)
        self._check_input_columns(X)
        items = self._prepare_input(X)
        domains = _check_sample_domain(sample_domain, len(items), type(self).__name__)
        source = np.flatnonzero(domains >= 0)
        if len(source) == 0:
            return super().transform(X)
        target = np.flatnonzero(domains < 0)
        out = np.empty((len(items), self.n_features_out_), dtype=np.float32)
        with self._source_body():
            out[source] = np.asarray(super().transform([_value(items[i]) for i in source]))
        if len(target):
            out[target] = np.asarray(super().transform([_value(items[i]) for i in target]))
        return out

    def _reload(self):
        network = super()._reload()
        state = getattr(self, "_adapted_state", None)
        if state:
            network = _with_state(network, state, self)
            self._network = network
            self._after_load(network)
        return network

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_source_network", None)
        return state

    def __setstate__(self, state):
        # Encoders pickled before adaptation existed: no adaptation, as they were.
        for name in ADAPT_PARAMS:
            state.setdefault(name, None)
        super().__setstate__(state)


def _value(item):
    """A prepared item as the user gave it (images carry their position; see _adapters)."""
    from sktransfer._adapters.image import AtPosition

    return item.value if isinstance(item, AtPosition) else item


def _with_state(network, state: dict, owner):
    """A copy of ``network`` with the tensors of ``state`` loaded."""
    network = copy.deepcopy(network)
    result = network.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise InvalidInputError(
            f"{type(owner).__name__}: the pickled adaptation has tensors the reloaded "
            f"model lacks ({result.unexpected_keys[:5]}); refit the encoder."
        )
    return network.eval()


def _check_sample_domain(sample_domain, n: int, owner: str) -> np.ndarray:
    """``sample_domain`` as an int array (skada's convention: negative = target), checked."""
    domains = np.asarray(sample_domain)
    if domains.ndim != 1 or len(domains) != n:
        raise InvalidInputError(
            f"{owner}: sample_domain has shape {domains.shape} but X has {n} samples; pass "
            "one integer domain per sample (negative = target, positive = source)."
        )
    if domains.dtype.kind not in "iu":
        if domains.dtype.kind == "f" and np.isfinite(domains).all():
            whole = domains == np.round(domains)
        else:
            whole = np.zeros(len(domains), dtype=bool)
        if not whole.all():
            bad = np.flatnonzero(~whole)[0]
            raise InvalidInputError(
                f"{owner}: sample_domain must hold integers (skada's convention: negative = "
                f"target, non-negative = source); position {bad} holds {domains[bad]!r}. Map "
                "your domain names to integers, e.g. np.where(names == 'tweets', -1, 1)."
            )
        domains = domains.astype(np.int64)
    return domains


def _source_head(features: np.ndarray, labels: np.ndarray, seed: int):
    """A linear classifier on source features, as (n_classes, d) weights and biases."""
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(max_iter=1000, random_state=seed).fit(features, labels)
    weight, bias = head.coef_, head.intercept_
    if weight.shape[0] == 1:  # binary: logits (0, w.x + b) give the same probabilities
        weight = np.vstack([np.zeros_like(weight), weight])
        bias = np.concatenate([[0.0], bias])
    return weight.astype(np.float32), bias.astype(np.float32)


def _image_batches(encoder, network, items: list):
    """A callable yielding the decoded, preprocessed images as input batches."""
    import torch

    channels_last = any(isinstance(m, torch.nn.Conv2d) for m in network.modules())
    device = encoder.device_
    adapter = encoder._adapter
    on_error = "raise" if encoder.on_error == "raise" else "zero"

    def batches():
        for _, tensors, _ in adapter.decoded_batches(items, encoder.batch_size, on_error):
            ok = [t for t in tensors if t is not None]
            if not ok:
                continue
            batch = torch.stack(ok).to(device)
            if channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield batch

    return batches
