"""Encode a list of sentences with one library in this (fresh) process; report memory.

Used by the memory and accuracy parts:

    python -m benchmarks._encode_worker LIBRARY SENTENCES.json FEATURES.npy

prints one JSON line: peak RSS after the model is loaded and warmed up, peak
RSS after encoding everything in one call, and the seconds of that call. The
features are saved after the measurement.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from benchmarks import _common

LIBRARIES = {
    "sentence-transformers": "`SentenceTransformer.encode` (direct call)",
    "embetter": "embetter `SentenceEncoder`",
    "skrub": "skrub `LLMEncoder`, default `n_components=30`, `fit_transform`",
    "sktransfer": "sktransfer `TextEncoder` (default `cache='memory'`)",
}

_WARM_UP = [f"warm-up sentence number {i}, not part of the data" for i in range(8)]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(library: str, folder: str):
    """An ``encode(list_of_str) -> ndarray`` for ``library``, loaded and warmed up."""
    if library == "sentence-transformers":
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(folder, device="cpu")
        encode = lambda texts: model.encode(texts, batch_size=_common.TEXT_BATCH)  # noqa: E731
    elif library == "embetter":
        encode = _common.embetter_sentence_encoder(folder).transform
    elif library == "skrub":
        import pandas as pd

        encoder = _common.skrub_text_encoder(folder)

        def encode(texts):
            # As its users do: fit on the sentences it encodes (the PCA learns them).
            return encoder.fit_transform(pd.Series(texts, name="text")).to_numpy()

        with _common.quiet():
            encode(_WARM_UP * 4)  # loads the model; the PCA is fitted again below
    elif library == "sktransfer":
        from sktransfer import TextEncoder

        encoder = TextEncoder(folder, progress=False).fit()
        encode = encoder.transform
    else:
        raise SystemExit(f"unknown library {library!r}; one of {sorted(LIBRARIES)}")
    with _common.quiet():
        encode(list(_WARM_UP))
    return encode


def main(argv=None) -> None:
    library, sentences_file, features_file = (argv or sys.argv[1:])[:3]
    with open(sentences_file) as fh:
        texts = json.load(fh)
    folder = _common.text_model_folder()
    encode = build(library, folder)
    loaded = _peak_mib()
    start = time.perf_counter()
    with _common.quiet():
        features = np.asarray(encode(texts), dtype=np.float32)
    seconds = time.perf_counter() - start
    peak = _peak_mib()
    np.save(features_file, features)
    print(json.dumps({"loaded_mib": loaded, "peak_mib": peak, "encode_s": seconds}))


if __name__ == "__main__":
    main()
