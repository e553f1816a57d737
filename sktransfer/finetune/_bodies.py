"""The pretrained bodies the fine-tuning estimators train: one small backend per modality.

A backend knows six things about its kind of model, and nothing about training:

``check_X(X) -> list``
    Validate the container of samples; one item per sample.
``load(device, pretrained=True) -> (body, source, reference)``
    Build the body (an ``nn.Module`` mapping a batch to pooled features, with a
    ``num_features`` attribute), on ``device``.
``blocks(body) -> list[list[str]]``
    The body's parameter names grouped into blocks, from the input to the
    output. Freezing, gradual unfreezing and layer-wise learning-rate decay
    all count blocks from the top.
``collate(items, training) -> batch``
    Turn a list of items into one batch (on the CPU); ``training=True``
    applies the training-time augmentation.
``inference_batches(items, batch_size) -> iterator of (positions, batch)``
    Batches for prediction, in any order; ``positions`` says which items each
    batch holds.
``warn_if_truncated(items, owner)``
    Warn when items will be cut to fit the body (texts beyond the token limit).

plus ``to_device(batch, device)`` and ``save_body`` / ``load_saved_body`` for
:meth:`save` / :meth:`load`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sktransfer._hub import create_timm_model, load_sentence_transformer
from sktransfer._image_io import as_image_list, iter_decoded_batches, to_rgb
from sktransfer.text import (
    _token_lengths,
    apply_max_length,
    check_texts,
    measure_tokens,
    warn_truncated,
)

# --------------------------------------------------------------------- text


class SentenceTransformerBody(nn.Module):
    """A sentence-transformers model seen as a body: tokenized batch -> sentence embedding."""

    def __init__(self, model):
        super().__init__()
        self.st = model
        get_dim = getattr(model, "get_embedding_dimension", None)
        if get_dim is None:  # sentence-transformers < 5
            get_dim = model.get_sentence_embedding_dimension
        self.num_features = int(get_dim())

    def forward(self, features):
        return self.st(features)["sentence_embedding"]


class TextAdapter:
    """Hooks for sentence-transformers bodies."""

    kind = "text"
    augments = False  # training batches are the evaluation batches

    def __init__(self, model: str, *, max_length: int | None = None, revision: str | None = None):
        self.model = model
        self.max_length = max_length
        self.revision = revision
        self._st = None

    def check_X(self, X) -> list:
        return check_texts(X)

    def warn_if_truncated(self, items: list, owner: str) -> None:
        """One ``TruncationWarning`` when texts exceed the body's token limit.

        Training batches (``collate``) and prediction batches are cut to
        ``max_seq_length`` tokens by sentence-transformers; this says so, with
        the count and the first positions. Needs the loaded body.
        """
        counts = measure_tokens(self._st, items)
        if counts.truncated.any():
            positions = np.flatnonzero(counts.truncated).tolist()
            warn_truncated(owner, positions, self._st, encoder=False)

    def load(self, device: str, pretrained: bool = True):
        st, source, reference = load_sentence_transformer(
            self.model, device=device, revision=self.revision
        )
        self._configure(st, reference)
        return SentenceTransformerBody(st).to(device), source, reference

    def _configure(self, st, reference: str) -> None:
        apply_max_length(st, self.max_length, reference)
        self._st = st

    def blocks(self, body: nn.Module) -> list[list[str]]:
        """Embeddings, then one block per transformer layer (the top one keeps what follows).

        The layers are the longest ``nn.ModuleList`` of the model (BERT's
        ``encoder.layer``, GPT's ``h``, T5's ``block``...). Parameters before
        the first layer (the embeddings) form block 0; parameters after the
        last layer (a final norm, an unused pooler, a Dense module after
        pooling) join the last layer's block.
        """
        names = [name for name, _ in body.named_parameters()]
        layer_lists = [
            (name, module)
            for name, module in body.named_modules()
            if isinstance(module, nn.ModuleList) and len(module) > 0
        ]
        if not layer_lists:
            return [names]
        prefix, layers = max(layer_lists, key=lambda item: len(item[1]))
        n_layers = len(layers)
        layer_of = {}
        for name in names:
            if name.startswith(prefix + "."):
                layer_of[name] = int(name[len(prefix) + 1 :].split(".", 1)[0])
        blocks: list[list[str]] = [[] for _ in range(n_layers + 1)]
        seen_layer = False
        for name in names:
            if name in layer_of:
                seen_layer = True
                blocks[layer_of[name] + 1].append(name)
            elif not seen_layer:
                blocks[0].append(name)
            else:
                blocks[-1].append(name)
        return [block for block in blocks if block]

    def collate(self, items: list, training: bool):
        return self._st.preprocess(list(items))

    def inference_batches(self, items: list, batch_size: int):
        # Sorted by token length: less padding, same numbers.
        lengths = _token_lengths(self._st, items)
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(items), batch_size):
            rows = order[start : start + batch_size]
            yield rows, self._st.preprocess([items[i] for i in rows])

    @staticmethod
    def to_device(batch, device: str):
        from sentence_transformers.util import batch_to_device

        return batch_to_device(batch, device)

    def save_body(self, body: nn.Module, folder: Path) -> None:
        body.st.save(str(folder / "body"))

    def load_saved_body(self, folder: Path, device: str):
        st, _, _ = load_sentence_transformer(str(folder / "body"), device=device)
        self._configure(st, str(folder / "body"))
        return SentenceTransformerBody(st).to(device)


# -------------------------------------------------------------------- image

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


class _AtPosition:
    """An image item and its position in the user's input.

    Training batches are shuffled subsets of a split, so an item's index in
    a batch says nothing to the user; errors name this position instead.
    """

    __slots__ = ("position", "value")

    def __init__(self, position: int, value):
        self.position = position
        self.value = value


def _unwrap(items: list) -> tuple[list, list[int]]:
    """Items and their positions in the user's input (the index for bare items)."""
    values, positions = [], []
    for i, item in enumerate(items):
        if isinstance(item, _AtPosition):
            values.append(item.value)
            positions.append(item.position)
        else:
            values.append(item)
            positions.append(i)
    return values, positions


class ImageAdapter:
    """Hooks for timm bodies."""

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
    ):
        self.model = model
        self.pretrained = pretrained
        self.weights = weights
        self.image_size = image_size
        self.augmentation = augmentation
        self.n_workers = n_workers
        self.data_config = None

    @property
    def augments(self) -> bool:
        """Whether training batches differ from evaluation batches."""
        return self.augmentation != "none"

    def check_X(self, X) -> list:
        # Each item keeps its position, for errors raised later while decoding.
        return [_AtPosition(i, item) for i, item in enumerate(as_image_list(X))]

    def warn_if_truncated(self, items: list, owner: str) -> None:
        """Images are resized to the input size, never cut: nothing to report."""

    def load(self, device: str, pretrained: bool = True):
        model, source, reference = create_timm_model(
            self.model,
            pretrained=self.pretrained and pretrained,
            weights=self.weights if pretrained else None,
            num_classes=0,
        )
        self._configure(model)
        return model.to(device), source, reference

    def _configure(self, model) -> None:
        import timm.data

        args = None if self.image_size is None else {"input_size": (3,) + (self.image_size,) * 2}
        config = timm.data.resolve_data_config(args=args, model=model)
        self.data_config = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items()}
        self._eval_transform = timm.data.create_transform(**self.data_config, is_training=False)
        if self.augmentation == "none":
            self._train_transform = self._eval_transform
        else:
            drop = ("crop_pct", "crop_mode")  # eval-time cropping; training crops at random
            config = {k: v for k, v in self.data_config.items() if k not in drop}
            self._train_transform = timm.data.create_transform(
                **config, is_training=True, **AUGMENTATIONS[self.augmentation]
            )

    def blocks(self, body: nn.Module) -> list[list[str]]:
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
        transform = self._train_transform if training else self._eval_transform
        values, positions = _unwrap(items)
        return torch.stack(
            [transform(to_rgb(v, p)) for v, p in zip(values, positions, strict=True)]
        )

    def inference_batches(self, items: list, batch_size: int):
        values, positions = _unwrap(items)
        batches = iter_decoded_batches(
            values, batch_size, self._eval_transform, n_workers=self.n_workers, labels=positions
        )
        for start, tensors, _ in batches:
            yield np.arange(start, start + len(tensors)), torch.stack(tensors)

    @staticmethod
    def to_device(batch, device: str):
        return batch.to(device, non_blocking=True)

    def save_body(self, body: nn.Module, folder: Path) -> None:
        pass  # the whole net's weights are saved; the architecture is rebuilt by name

    def load_saved_body(self, folder: Path, device: str):
        body, _, _ = self.load(device, pretrained=False)
        return body
