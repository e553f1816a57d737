"""Time one system of the throughput parts in this (fresh) process.

    python -m benchmarks._speed_worker SYSTEM CONFIG.json REPORT.json

``CONFIG.json`` holds the inputs (sentences or JPEG paths) and the number of
repeats. The system is built and called once untimed (first-call costs are not
throughput), then timed ``repeats`` times. The report holds every repeat's
seconds, the page faults and peak RSS of the process, and the path of the
features of the last call (``REPORT.npy``) for the cosine to the direct call.

Each system runs in its own process, started by the parent with the same
environment, so that no system inherits another's loaded libraries, threads or
allocator settings. The allocator variants set glibc's ``MALLOC_*`` variables
in the environment of their process (see ``ALLOCATOR_ENV``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import _common

# The thresholds sktransfer raises with ``mallopt`` (sktransfer/_malloc.py), as
# the environment variables glibc reads at start-up: the same setting for a peer.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(512 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}

# system -> (label, extra environment). Labels say how each system was used.
TEXT_SYSTEMS = {
    "st": ("`SentenceTransformer.encode` (direct call)", {}),
    "st-malloc": ("`SentenceTransformer.encode`, allocator thresholds raised (env)", ALLOCATOR_ENV),
    "embetter": ("embetter `SentenceEncoder`", {}),
    "skrub": ("skrub `LLMEncoder`, default `n_components=30`, fitted on these sentences", {}),
    "skrub-full": ("skrub `LLMEncoder(n_components=None)` (full embeddings)", {}),
    "ours": ("sktransfer `TextEncoder()` (default settings), `cache=None`", {}),
    "ours-memory": ("sktransfer `TextEncoder()`, empty memory cache", {}),
    "ours-float32": ("sktransfer `TextEncoder(precision='float32')`, `cache=None`", {}),
    "ours-onnx": ("sktransfer `TextEncoder(backend='onnx')`, `cache=None`", {}),
    "ours-openvino-float32": (
        "sktransfer `TextEncoder(backend='openvino', precision='float32')`, `cache=None`",
        {},
    ),
    "ours-openvino": ("sktransfer `TextEncoder(backend='openvino')`, `cache=None`", {}),
}
# Rows timed in the process of another system (warm caches need the cold call first).
TEXT_EXTRA = {
    "embetter-cached": ("embetter `cached(...)`, empty cache", "embetter"),
    "embetter-cached-warm": ("embetter `cached(...)`, warm (every sentence stored)", "embetter"),
    "ours-memory-warm": ("sktransfer `TextEncoder()`, warm memory cache", "ours-memory"),
}
IMAGE_SYSTEMS = {
    "timm": ("timm loop, NCHW, decoding in the loop (direct call)", {}),
    "timm-malloc": ("timm loop, NCHW, allocator thresholds raised (env)", ALLOCATOR_ENV),
    "timm-best": ("timm, channels-last, `DataLoader(num_workers=2)` decoding", {}),
    "timm-best-malloc": (
        "timm, channels-last, `DataLoader(num_workers=2)`, allocator thresholds raised (env)",
        ALLOCATOR_ENV,
    ),
    "embetter": ("embetter `ImageLoader` + `TimmEncoder`", {}),
    "ours-untuned": (
        "sktransfer `ImageEncoder()`, `cache=None`, `SKTRANSFER_TUNE_MALLOC=0`",
        {"SKTRANSFER_TUNE_MALLOC": "0"},
    ),
    "ours": (
        "sktransfer `ImageEncoder()` (default settings), `cache=None` (raises the thresholds "
        "itself)",
        {},
    ),
    "ours-float32": ("sktransfer `ImageEncoder(precision='float32')`, `cache=None`", {}),
    "ours-onnx": ("sktransfer `ImageEncoder(backend='onnx')`, `cache=None`", {}),
    "ours-openvino-float32": (
        "sktransfer `ImageEncoder(backend='openvino', precision='float32')`, `cache=None`",
        {},
    ),
    "ours-openvino": ("sktransfer `ImageEncoder(backend='openvino')`, `cache=None`", {}),
}
# A CPU without AVX-512 emulated on one with it: the instruction sets torch
# (ATen), oneDNN and MKL may use are capped at AVX2 through the variables they
# read, and bfloat16 is off as it is on such CPUs. ONNX Runtime has no such
# switch, so its row is not run under the cap.
AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "SKTRANSFER_BFLOAT16": "0",
}
AVX2_SYSTEMS = {
    key: (TEXT_SYSTEMS[key][0], AVX2_ENV)
    for key in ("st", "embetter", "ours", "ours-openvino-float32")
}
# The same OpenVINO system without the cap: OpenVINO's CPU plugin carries its
# own copy of oneDNN, so whether the cap reaches it is read from the two rates.
AVX2_SYSTEMS["ours-openvino-float32-uncapped"] = (
    TEXT_SYSTEMS["ours-openvino-float32"][0] + ", the cap lifted (AVX-512 on)",
    {},
)

# Large photos: the direct call (the reference), the best peer configuration,
# embetter, and ours with and without reduced-size JPEG decoding.
PHOTO_SYSTEMS = {
    key: IMAGE_SYSTEMS[key]
    for key in (
        "timm",
        "timm-best-malloc",
        "embetter",
        "ours",
        "ours-float32",
        "ours-onnx",
        "ours-openvino-float32",
        "ours-openvino",
    )
}
PHOTO_SYSTEMS["ours-full-decode"] = (
    "sktransfer `ImageEncoder(jpeg_draft=False)` (every pixel decoded), `cache=None`",
    {},
)


def _text_system(system: str, texts: list[str], tmp: Path) -> dict:
    """``{row: callable}`` for one text system; the first row is the system itself."""
    import pandas as pd

    folder = _common.text_model_folder()
    if system in ("st", "st-malloc"):
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(folder, device="cpu")
        return {system: lambda: st.encode(texts, batch_size=_common.TEXT_BATCH)}
    if system == "embetter":
        from embetter.utils import cached

        embetter = _common.embetter_sentence_encoder(folder)
        counter = iter(range(10**6))

        def cached_call(path):
            enc = cached(path, embetter)
            out = enc.transform(texts)
            del embetter.transform  # undo the instance patch for the next call
            return out

        return {
            "embetter": lambda: embetter.transform(texts),
            "embetter-cached": lambda: cached_call(f"{tmp}/embetter-{next(counter)}"),
            "embetter-cached-warm": lambda: cached_call(f"{tmp}/embetter-warm"),
        }
    if system in ("skrub", "skrub-full"):
        kwargs = {"n_components": None} if system == "skrub-full" else {}
        series = pd.Series(texts, name="text")
        encoder = _common.skrub_text_encoder(folder, **kwargs).fit(series)  # as its users do
        return {system: lambda: encoder.transform(series).to_numpy()}
    from sktransfer import TextEncoder

    ours = {
        "ours": {},
        "ours-float32": {"precision": "float32"},
        "ours-onnx": {"backend": "onnx"},
        "ours-openvino": {"backend": "openvino"},
        "ours-openvino-float32": {"backend": "openvino", "precision": "float32"},
        "ours-openvino-float32-uncapped": {"backend": "openvino", "precision": "float32"},
        "ours-bf16": {"precision": "bfloat16"},
    }
    if system in ours:
        encoder = TextEncoder(folder, progress=False, cache=None, **ours[system]).fit()
        return {system: lambda: encoder.transform(texts), "precision": encoder.precision_}
    if system == "ours-chunk":
        encoder = TextEncoder(folder, progress=False, cache=None, long_texts="chunk").fit()
        return {system: lambda: encoder.transform(texts), "precision": encoder.precision_}
    if system == "ours-memory":
        from sktransfer.cache import clear_cache

        encoder = TextEncoder(folder, progress=False).fit()

        def cold():
            clear_cache()
            return encoder.transform(texts)

        return {system: cold, "ours-memory-warm": lambda: encoder.transform(texts)}
    raise SystemExit(f"unknown text system {system!r}")


def _image_system(system: str, paths: list[str], tmp: Path) -> dict:
    import torch

    if system.startswith("timm"):
        import timm.data
        from PIL import Image

        model = _common.timm_efficientnet()
        config = timm.data.resolve_data_config(model=model)
        transform = timm.data.create_transform(**config, is_training=False)
        if system in ("timm", "timm-malloc"):

            def loop():
                out = []
                with torch.inference_mode():
                    for start in range(0, len(paths), _common.IMAGE_BATCH):
                        batch = paths[start : start + _common.IMAGE_BATCH]
                        x = torch.stack([transform(Image.open(p).convert("RGB")) for p in batch])
                        out.append(model(x).numpy())
                return np.concatenate(out)

            return {system: loop}
        # The best plain usage: channels-last weights and inputs, and a DataLoader
        # whose worker processes decode and preprocess while the model runs.
        model = model.to(memory_format=torch.channels_last)

        class Files(torch.utils.data.Dataset):
            def __len__(self):
                return len(paths)

            def __getitem__(self, i):
                return transform(Image.open(paths[i]).convert("RGB"))

        loader = torch.utils.data.DataLoader(
            Files(), batch_size=_common.IMAGE_BATCH, num_workers=2, persistent_workers=True
        )

        def best():
            out = []
            with torch.inference_mode():
                for x in loader:
                    x = x.contiguous(memory_format=torch.channels_last)
                    out.append(model(x).numpy())
            return np.concatenate(out)

        return {system: best}
    if system == "embetter":
        from embetter.vision import ImageLoader

        loader = ImageLoader(convert="RGB")
        embetter = _common.embetter_timm_encoder(_common.timm_weights_file(tmp))
        return {system: lambda: embetter.transform(loader.transform(paths))}
    from sktransfer import ImageEncoder

    ours = {
        "ours": {},
        "ours-untuned": {},
        "ours-float32": {"precision": "float32"},
        "ours-onnx": {"backend": "onnx"},
        "ours-openvino": {"backend": "openvino"},
        "ours-openvino-float32": {"backend": "openvino", "precision": "float32"},
        "ours-openvino-float32-uncapped": {"backend": "openvino", "precision": "float32"},
        "ours-bf16": {"precision": "bfloat16"},
        "ours-full-decode": {"jpeg_draft": False},
    }
    if system in ours:
        encoder = ImageEncoder(progress=False, cache=None, **ours[system]).fit()
        return {system: lambda: encoder.transform(paths), "precision": encoder.precision_}
    raise SystemExit(f"unknown image system {system!r}")


def _torch_capability() -> str | None:
    """The instruction set torch's own kernels use in this process (None: torch not loaded)."""
    torch = sys.modules.get("torch")
    return None if torch is None else str(torch.backends.cpu.get_cpu_capability())


def main(argv=None) -> None:
    import tempfile

    system, config_file, report_file = (argv or sys.argv[1:])[:3]
    cfg = json.loads(Path(config_file).read_text())
    with tempfile.TemporaryDirectory() as tmp, _common.quiet():
        build = _text_system if cfg["kind"] == "text" else _image_system
        calls = build(system, cfg["inputs"], Path(tmp))
        precision = calls.pop("precision", None)
        for fn in calls.values():
            fn()  # untimed: first-call costs; fills the warm caches
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times = {row: [] for row in calls}
        outputs = {}
        for _ in range(cfg["repeats"]):
            for row, fn in calls.items():
                start = time.perf_counter()
                outputs[row] = fn()
                times[row].append(time.perf_counter() - start)
        usage = resource.getrusage(resource.RUSAGE_SELF)
    rows = {}
    for row, out in outputs.items():
        features = Path(report_file).with_name(f"{Path(report_file).stem}-{row}.npy")
        np.save(features, np.asarray(out, dtype=np.float32))
        rows[row] = {"seconds": times[row], "features": str(features)}
    report = {
        "rows": rows,
        "precision": precision,
        "page_faults_per_call": (usage.ru_minflt - faults_before)
        / max(1, cfg["repeats"] * len(calls)),
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "torch_cpu_capability": _torch_capability(),
    }
    Path(report_file).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
