"""Modality adapters: everything that depends on the kind of input, in one object each.

An adapter knows its kind of sample and its family of pretrained networks, and
nothing about estimators or training:

``check_X(X) -> list``
    Validate the container of samples (positions named in errors); one item
    per sample.
``load(device, pretrained=True) -> (body, source, reference)``
    Build the body -- an ``nn.Module`` mapping a batch to pooled features, with
    a ``num_features`` attribute (the output width) -- on ``device``, through
    the hub helpers, and configure the adapter from it (:meth:`Adapter.attach`).
``attach(body)``
    Configure the adapter from a body loaded elsewhere (a network shared by
    equal encoders): preprocessing config, tokenizer.
``blocks(body) -> list[list[str]]``
    The body's parameter names grouped into blocks, input to output; freezing,
    gradual unfreezing and layer-wise learning rates count blocks from the top.
``collate(items, training) -> batch``
    A list of items as one batch on the CPU; ``training=True`` may augment.
``inference_batches(items, batch_size) -> iterator of (positions, batch)``
    Evaluation batches, in any order; ``positions`` says which items each holds.
``to_device(batch, device)``
``content_key(item) -> bytes``
    The bytes that identify a sample's content (the embedding cache's key).
``probe_samples() -> list or None``
    A fixed batch of samples on which ``precision="auto"`` compares bfloat16
    with float32 (``None``: no probe, "auto" stays at float32); also the
    example inputs of ``backend="onnx"``'s export and its check.
``onnx_dynamic_axes``
    The axes of a batch's tensors whose size varies (batch, sequence length).

plus ``warn_if_truncated``, ``augments`` and ``save_body`` / ``load_saved_body``
for the fine-tuners' ``save`` / ``load``, with defaults here.

The frozen encoders (``sktransfer._base.BaseEncoder``) and the fine-tuners
(``sktransfer.finetune``) are thin over an adapter: a new modality is one
adapter plus a few lines that name it in an encoder and a fine-tuner class
(``tests/test_new_modality.py`` does it for numeric sequences).
"""

from __future__ import annotations

import numpy as np


class Adapter:
    """Defaults of the adapter interface; a modality overrides what differs."""

    kind = "generic"
    augments = False  # whether training batches differ from evaluation batches
    # The axes of a batch's tensors whose size varies between batches (the
    # ONNX export's dynamic axes; see sktransfer._onnx). Batch size by default.
    onnx_dynamic_axes: tuple[int, ...] = (0,)

    def check_X(self, X) -> list:  # pragma: no cover - every modality has its own
        raise NotImplementedError

    def load(self, device: str, pretrained: bool = True):  # pragma: no cover
        raise NotImplementedError

    def attach(self, body) -> None:
        """Configure preprocessing from a loaded body (nothing to do by default)."""

    def output_dim(self, body) -> int:
        return int(body.num_features)

    def blocks(self, body) -> list[list[str]]:
        """One block per top-level child module that has parameters, input first."""
        blocks = []
        for name, child in body.named_children():
            names = [f"{name}.{p}" for p, _ in child.named_parameters()]
            if names:
                blocks.append(names)
        return blocks or [[name for name, _ in body.named_parameters()]]

    def collate(self, items: list, training: bool):  # pragma: no cover
        raise NotImplementedError

    def inference_batches(self, items: list, batch_size: int):
        for start in range(0, len(items), batch_size):
            rows = np.arange(start, min(start + batch_size, len(items)))
            yield rows, self.collate(items[start : start + batch_size], training=False)

    @staticmethod
    def to_device(batch, device: str):
        return batch.to(device)

    def content_key(self, item) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def probe_samples(self) -> list | None:
        """The fixed probe batch of ``precision="auto"`` (none by default)."""
        return None

    def warn_if_truncated(self, items: list, owner: str) -> None:
        """Warn when samples are cut to fit the body (nothing is, by default)."""

    def save_body(self, body, folder) -> None:
        """Write what :meth:`load_saved_body` needs besides the weights (nothing by default)."""

    def load_saved_body(self, folder, device: str):
        """The body's architecture, for weights saved by a fine-tuner's ``save``."""
        body, _, _ = self.load(device, pretrained=False)
        return body
