"""Head-only training reads its body features through the embedding cache.

When no body block ever trains and training batches are the evaluation ones
(no augmentation), the body is a fixed function: its output for a sample is
exactly what the frozen encoder with the same settings computes
(``TextEncoder`` / ``ImageEncoder``). Computing it through that encoder puts
it in the encoders' embedding cache, so the folds and candidates of a grid
search over head-only fine-tuners -- and any frozen-encoder pipeline on the
same data -- encode each sample once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from sktransfer.exceptions import InvalidInputError, TruncationWarning


def frozen_encoder(adapter, device: str, cache="memory"):
    """The frozen encoder whose output equals ``adapter``'s body output, unfitted.

    ``None`` for a modality without a frozen encoder.

    Examples
    --------
    >>> from sktransfer._adapters.text import TextAdapter
    >>> frozen_encoder(TextAdapter("all-MiniLM-L6-v2", max_length=64), "cpu")
    TextEncoder(device='cpu', max_length=64, model='all-MiniLM-L6-v2', precision='float32',
            progress=False)
    """
    kind = getattr(adapter, "kind", None)
    if kind == "text":
        from sktransfer.text import TextEncoder

        return TextEncoder(
            adapter.model,
            max_length=adapter.max_length,
            revision=adapter.revision,
            precision="float32",  # what the training loop's body pass runs (amp aside)
            device=device,
            progress=False,
            cache=cache,
        )
    # Images are not: the frozen ImageEncoder runs convolutions channels-last, which
    # equals the fine-tuner's body pass only to float rounding, and a fine-tuner's
    # predictions must not depend on whether its features were cached.
    return None


def cached_body_features(adapter, device: str) -> Callable[[list], np.ndarray | None]:
    """``features(items)``: the body's output for ``items`` through the embedding cache.

    Returns ``None`` (the caller then runs the body itself) when there is no
    frozen encoder for the modality or the items cannot all be encoded: the
    body's own pass then raises the error that names the sample's position in
    the user's input.
    """
    encoder = None

    def features(items: list) -> np.ndarray | None:
        nonlocal encoder
        from sktransfer._adapters.image import _unwrap

        if encoder is None:
            encoder = frozen_encoder(adapter, device)
            if encoder is None:
                return None
            encoder.fit()
        values, _ = _unwrap(items)
        try:
            with warnings.catch_warnings():
                # The fine-tuner already said which texts are cut, with its own advice.
                warnings.simplefilter("ignore", TruncationWarning)
                return encoder.transform(values)
        except InvalidInputError:
            return None

    return features
