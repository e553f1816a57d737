"""The image adapter: timm bodies, every image input kind, the model's own preprocessing.

Used by :class:`sktransfer.ImageEncoder` (frozen) and by ``ImageClassifier`` /
``ImageRegressor`` (fine-tuned); see :mod:`sktransfer._adapters` for the interface.
Decoding and the content keys are in ``sktransfer._image_io``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from sktransfer._adapters import Adapter
from sktransfer._hub import create_timm_model, timm_feature_width
from sktransfer._image_io import as_image_list, content_key, iter_decoded_batches, to_rgb

AUGMENTATIONS = {
    # Random resized crop of most of the image and horizontal flips.
    "light": {"scale": (0.6, 1.0), "hflip": 0.5, "color_jitter": None},
    # Wider crops, flips, RandAugment (9 magnitude) and random erasing.
    "strong": {
        "scale": (0.35, 1.0),
        "hflip": 0.5,
        "auto_augment": "rand-m9-mstd0.5-inc1",
        "re_prob": 0.25,
    },
}


class AtPosition:
    """An image item and its position in the user's input.

    Training batches are shuffled subsets of a split and cached encodings
    subsets of the input, so an item's index in a batch says nothing to the
    user; errors name this position instead.
    """

    __slots__ = ("position", "value")

    def __init__(self, position: int, value):
        self.position = position
        self.value = value


def _unwrap(items: list) -> tuple[list, list[int]]:
    """Items and their positions in the user's input (the index for bare items)."""
    values, positions = [], []
    for i, item in enumerate(items):
        if isinstance(item, AtPosition):
            values.append(item.value)
            positions.append(item.position)
        else:
            values.append(item)
            positions.append(i)
    return values, positions


class ImageAdapter(Adapter):
    """timm bodies (classifier removed: pooled features) over images of every input kind.

    Parameters
    ----------
    model : str
        timm architecture name, optionally with a pretrained tag.
    pretrained : bool
        Load pretrained weights (else seeded random weights).
    weights : str, path-like or None
        A local state-dict file; overrides ``pretrained``.
    image_size : int or None
        Square input size instead of the model's pretrained one.
    augmentation : {"none", "light", "strong"}
        Training-time augmentation (see ``AUGMENTATIONS``).
    n_workers : int
        Threads decoding images.
    jpeg_draft : bool
        Decode large JPEG files at a reduced scale in evaluation batches (see
        :meth:`draft_min_side`).
    """

    kind = "image"

    def __init__(
        self,
        model: str,
        *,
        pretrained: bool = True,
        weights: str | os.PathLike | None = None,
        image_size: int | None = None,
        augmentation: str = "none",
        n_workers: int = 1,
        jpeg_draft: bool = False,
    ):
        self.model = model
        self.pretrained = pretrained
        self.weights = weights
        self.image_size = image_size
        self.augmentation = augmentation
        self.n_workers = n_workers
        self.jpeg_draft = jpeg_draft
        self.data_config = None

    @property
    def augments(self) -> bool:
        """Whether training batches differ from evaluation batches."""
        return self.augmentation != "none"

    def check_X(self, X) -> list:
        # Each item keeps its position, for errors raised later while decoding.
        return [AtPosition(i, item) for i, item in enumerate(as_image_list(X))]

    def content_key(self, item) -> bytes:
        return content_key(item.value if isinstance(item, AtPosition) else item)

    def load(self, device: str, pretrained: bool = True):
        model, source, reference = create_timm_model(
            self.model,
            pretrained=self.pretrained and pretrained,
            weights=self.weights if pretrained else None,
            num_classes=0,
        )
        self.attach(model)
        return model.to(device), source, reference

    def output_dim(self, body) -> int:
        # MobileNetV3/V4 return head_hidden_size features, not num_features.
        return timm_feature_width(body)

    def attach(self, body) -> None:
        """The model's own preprocessing (timm's pretrained config), and the training one.

        A body started from a start record (``sktransfer._lean_image``) brings
        its ``data_config`` and its numpy evaluation transform (float32 arrays,
        not tensors); it is only evaluated, so it has no training transform.
        """
        self.__dict__.pop("_pixel_batches", None)  # split from the transform set here
        if getattr(body, "lean", False) is True:
            if self.augments:
                raise ValueError("a body started from a start record cannot be trained")
            self.data_config = dict(body.data_config)
            self.eval_transform = self.train_transform = body.preprocess
            return
        import timm.data

        args = None if self.image_size is None else {"input_size": (3,) + (self.image_size,) * 2}
        config = timm.data.resolve_data_config(args=args, model=body)
        self.data_config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()}
        self.eval_transform = timm.data.create_transform(**self.data_config, is_training=False)
        if self.augmentation == "none":
            self.train_transform = self.eval_transform
        else:
            drop = ("crop_pct", "crop_mode")  # eval-time cropping; training crops at random
            config = {k: v for k, v in self.data_config.items() if k not in drop}
            self.train_transform = timm.data.create_transform(
                **config, is_training=True, **AUGMENTATIONS[self.augmentation]
            )

    def probe_samples(self) -> list:
        """scikit-learn's two sample photos (see ``sktransfer._precision``)."""
        from sktransfer._precision import probe_images

        return probe_images()

    def blocks(self, body) -> list[list[str]]:
        """The blocks timm's own layer-wise decay uses (``group_matcher(coarse=False)``)."""
        from timm.models import group_parameters

        names = [name for name, _ in body.named_parameters()]
        if not hasattr(body, "group_matcher"):
            return [names]
        layer_of = group_parameters(body, body.group_matcher(coarse=False), reverse=True)
        top = max(layer_of.values(), default=0)
        blocks: list[list[str]] = [[] for _ in range(top + 1)]
        for name in names:
            blocks[layer_of.get(name, top)].append(name)
        return [block for block in blocks if block]

    def collate(self, items: list, training: bool):
        import torch

        transform = self.train_transform if training else self.eval_transform
        values, positions = _unwrap(items)
        return torch.stack(
            [transform(to_rgb(v, p)) for v, p in zip(values, positions, strict=True)]
        )

    def decoded_batches(
        self,
        items: list,
        batch_size: int,
        on_error: str = "raise",
        transform=None,
        *,
        ahead: bool = True,
    ):
        """``(start, tensors, failed)`` per batch; ``None`` tensors where decoding failed.

        With ``on_error="zero"`` a failed item is reported in ``failed`` (its
        index in ``items``) instead of raising; errors name the user's position.
        ``transform`` replaces ``eval_transform`` (see :meth:`pixel_batches`).
        ``ahead``: decode the next batch while the caller works on this one
        (see :func:`sktransfer._threads.decode_ahead` for when not to).
        """
        values, positions = _unwrap(items)
        return iter_decoded_batches(
            values,
            batch_size,
            self.eval_transform if transform is None else transform,
            on_error=on_error,
            n_workers=self.n_workers,
            labels=positions,
            draft_min_side=self.draft_min_side(),
            ahead=ahead,
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_pixel_batches", None)  # functions of this process; made again on use
        return state

    def pixel_batches(self):
        """``(per_image, to_batch)``: ``eval_transform`` split before ``ToTensor``, or None.

        ``per_image`` maps an RGB PIL image to its resized and cropped pixels
        (uint8, height x width x 3); ``to_batch`` turns a list of those into the
        float batch that ``eval_transform`` and ``torch.stack`` would give, with
        the same operations (``ToTensor``'s division by 255, ``Normalize``'s
        subtraction and division) run once on the whole batch, and channels-last
        in memory. The decoding threads then skip two passes per image and the
        batch is not converted to channels-last afterwards. None when the
        transform does not end in ``ToTensor`` / ``MaybeToTensor`` and
        ``Normalize``, or when the split did not give the transform's numbers
        bit for bit on the probe photos.
        """
        if "_pixel_batches" not in self.__dict__:
            self._pixel_batches = self._split_eval_transform()
        return self._pixel_batches

    def _split_eval_transform(self):
        import torch

        steps = list(getattr(self.eval_transform, "transforms", None) or [])
        if len(steps) < 2:
            return None
        to_tensor, normalize = steps[-2], steps[-1]
        if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor"):
            return None
        if type(normalize).__name__ != "Normalize" or not type(normalize).__module__.startswith(
            "torchvision."
        ):
            return None
        head = steps[:-2]
        mean = torch.as_tensor(normalize.mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.as_tensor(normalize.std, dtype=torch.float32).reshape(1, -1, 1, 1)

        def per_image(image):
            for step in head:
                image = step(image)
            return np.asarray(image)

        def to_batch(arrays):
            pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # channels-last
            return pixels.to(torch.float32).div_(255).sub_(mean).div_(std)

        samples = [to_rgb(v, i) for i, v in enumerate(self.probe_samples())]
        expected = torch.stack([self.eval_transform(image) for image in samples])
        arrays = [per_image(image) for image in samples]
        if any(a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3 for a in arrays):
            return None
        got = to_batch(arrays)
        if got.shape != expected.shape or not torch.equal(got, expected):
            return None
        return per_image, to_batch

    def draft_min_side(self) -> int | None:
        """Twice the shorter side the model's resize produces (None: no draft decoding)."""
        if not self.jpeg_draft or self.data_config is None:
            return None
        _, height, width = self.data_config["input_size"]
        crop_pct = self.data_config.get("crop_pct") or 1.0
        return 2 * math.ceil(max(height, width) / crop_pct)

    def probe_batch(self):
        """The probe photos as one batch, channels-last: what checks an inference copy.

        See ``sktransfer._inference``: the copy's rewrites are found and checked
        on this batch.
        """
        import torch

        items = self.check_X(self.probe_samples())
        ((_, batch),) = self.inference_batches(items, len(items))
        return torch.as_tensor(batch).contiguous(memory_format=torch.channels_last)

    def inference_batches(self, items: list, batch_size: int, *, ahead: bool = True):
        """``(rows, batch)`` of ``eval_transform``'s tensors, stacked.

        Where the transform splits (see :meth:`pixel_batches`), the decoding
        threads stop at the cropped pixels and the batch is normalised at once,
        channels-last: the same numbers. ``ahead`` as in :meth:`decoded_batches`.
        """
        split = self.pixel_batches() if hasattr(self.eval_transform, "transforms") else None
        per_image, to_batch = split or (None, None)
        batches = self.decoded_batches(items, batch_size, transform=per_image, ahead=ahead)
        for start, outputs, _ in batches:
            rows = np.arange(start, start + len(outputs))
            if to_batch is not None:
                yield rows, to_batch(outputs)
                continue
            if outputs and isinstance(outputs[0], np.ndarray):  # a start record's numpy transform
                yield rows, np.stack(outputs)
                continue
            import torch

            yield rows, torch.stack(outputs)

    @staticmethod
    def to_device(batch, device: str):
        return batch.to(device, non_blocking=True)

    def save_body(self, body, folder: Path) -> None:
        pass  # the whole net's weights are saved; the architecture is rebuilt by name
