"""CPU throughput of the frozen encoders against their peers, measured in one run.

Text: ``SentenceTransformer.encode`` (the peer) vs ``TextEncoder`` at every
precision, on real VADER sentences: sentences/s (median of ``--repeats``), the
ratio to the peer, cosine to the peer's float32 embeddings (mean / min) and the
accuracy of ``LogisticRegression`` on VADER binary sentiment (score > 0).

Images: a plain timm loop (decode JPEG files from disk one by one, timm's eval
transform, NCHW float32 forward) vs ``ImageEncoder`` at every precision on the
packaged EfficientNet-Lite0, on JPEG files written to a temporary folder, so
decoding counts in both.

Each part runs in its own process. The image peer runs first, with the
process's default settings (before sktransfer raises the allocator
thresholds), then again interleaved with the encoders; the text peer is
interleaved with the encoders.

Usage::

    python benchmarks/bench_speed.py                 # both tables
    python benchmarks/bench_speed.py --part text --n-text 2000 --repeats 3
    python benchmarks/bench_speed.py --part image --n-images 192
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import cosine as _cosine  # noqa: E402
from benchmarks._common import timed as _timed  # noqa: E402
from benchmarks._common import write_jpegs as _write_jpegs  # noqa: E402


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def _supports(cls, name: str) -> bool:
    import inspect

    return name in inspect.signature(cls.__init__).parameters


def _precisions(cls) -> list[str]:
    if not _supports(cls, "precision"):
        return ["float32"]
    return ["float32", "bfloat16"]


# --------------------------------------------------------------------- text
def bench_text(args) -> None:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    from sktransfer import TextEncoder
    from sktransfer._hub import packaged_text_model_dir
    from sktransfer.datasets import load_vader

    vader = load_vader()
    texts = np.asarray(vader.data, dtype=object)
    labels = (np.asarray(vader.target) > 0).astype(int)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    # Distinct sentences only: TextEncoder encodes duplicates once, the peer does not.
    _, first = np.unique(texts[order], return_index=True)
    order = order[np.sort(first)]
    timed = [str(t) for t in texts[order[: args.n_text]]]
    acc_idx = order[args.n_text : args.n_text + args.n_accuracy]
    acc_texts = [str(t) for t in texts[acc_idx]]
    acc_y = labels[acc_idx]
    n_train = int(0.75 * len(acc_texts))

    folder = str(packaged_text_model_dir("all-MiniLM-L6-v2"))
    st = SentenceTransformer(folder, device="cpu")
    tokens = st.tokenizer(timed[:500])["input_ids"]
    print(
        f"text: {len(timed)} VADER sentences (mean {np.mean([len(t) for t in tokens]):.1f} "
        f"tokens), accuracy on {len(acc_texts)} ({n_train} train), batch 32, "
        f"torch threads {_torch_threads()}"
    )

    def st_encode(data):
        return st.encode(data, batch_size=32, convert_to_numpy=True)

    reference = st_encode(timed)  # also the warm-up

    variants = {}
    for precision in _precisions(TextEncoder):
        kwargs = {"precision": precision} if precision != "float32" else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            enc = TextEncoder(folder, batch_size=32, progress=False, cache=None, **kwargs).fit()
            enc.transform(timed[:64])  # warm-up
        for w in caught:
            print(f"  note ({precision}): {w.message}")
        variants[precision] = enc
    # Interleaved, so that the machine's noise hits every variant alike. (After
    # the first TextEncoder call the peer too runs with sktransfer's allocator
    # thresholds -- a few % faster, so the ratios below are if anything low.)
    peer_times = []
    times = {p: [] for p in variants}
    outputs = {}
    for _ in range(args.repeats):
        peer_times.append(_timed(lambda: st_encode(timed))[0])
        for precision, enc in variants.items():
            elapsed, outputs[precision] = _timed(lambda enc=enc: enc.transform(timed))
            times[precision].append(elapsed)

    def accuracy(embed) -> float:
        X = embed(acc_texts)
        clf = LogisticRegression(max_iter=2000).fit(X[:n_train], acc_y[:n_train])
        return 100 * clf.score(X[n_train:], acc_y[n_train:])

    peer_rate = len(timed) / statistics.median(peer_times)
    rows = [
        [
            "`SentenceTransformer.encode` fp32",
            f"{peer_rate:.0f}",
            "1.00×",
            "1 / 1",
            f"{accuracy(st_encode):.2f}",
        ]
    ]
    for precision, enc in variants.items():
        rate = len(timed) / statistics.median(times[precision])
        mean, low = _cosine(outputs[precision], reference)
        used = getattr(enc, "precision_", "float32")
        label = f"`TextEncoder` {precision}" + (f" (ran {used})" if used != precision else "")
        rows.append(
            [
                label,
                f"{rate:.0f}",
                f"{rate / peer_rate:.2f}×",
                f"{mean:.6f} / {low:.6f}",
                f"{accuracy(enc.transform):.2f}",
            ]
        )
    _print_table(
        "Text: all-MiniLM-L6-v2",
        ["variant", "sentences/s", "vs ST encode", "cosine to fp32 (mean / min)", "accuracy %"],
        rows,
    )


# -------------------------------------------------------------------- image
def bench_image(args) -> None:
    import timm
    import timm.data
    import torch
    from PIL import Image

    from sktransfer import ImageEncoder
    from sktransfer._hub import _load_packaged_efficientnet, packaged_image_checkpoint

    tmp = tempfile.TemporaryDirectory()
    paths = _write_jpegs(Path(tmp.name), args.n_images)
    print(
        f"images: {len(paths)} JPEG files (220-427 px crops of sklearn's sample photos), "
        f"EfficientNet-Lite0 224 px, batch 32, torch threads {_torch_threads()}"
    )

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    _load_packaged_efficientnet(model, packaged_image_checkpoint("tf_efficientnet_lite0"))
    model.reset_classifier(0)
    model.eval()
    config = timm.data.resolve_data_config(model=model)
    transform = timm.data.create_transform(**config, is_training=False)

    def timm_loop():
        out = []
        with torch.inference_mode():
            for start in range(0, len(paths), 32):
                batch = [transform(Image.open(p).convert("RGB")) for p in paths[start : start + 32]]
                out.append(model(torch.stack(batch)).numpy())
        return np.concatenate(out)

    reference = timm_loop()  # warm-up and reference
    peer_times = [_timed(timm_loop)[0] for _ in range(args.repeats)]
    peer_rate = len(paths) / statistics.median(peer_times)

    variants = {}
    for precision in _precisions(ImageEncoder):
        kwargs = {"precision": precision} if precision != "float32" else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            enc = ImageEncoder(batch_size=32, progress=False, cache=None, **kwargs).fit()
            enc.transform(paths[:32])  # warm-up
        for w in caught:
            print(f"  note ({precision}): {w.message}")
        variants[precision] = enc
    # The peer above ran with the process's default settings; from here on the
    # allocator thresholds are raised (ImageEncoder's first call did it) and the
    # peer runs again, interleaved with the encoders, as a second reference.
    peer_after = []
    times = {p: [] for p in variants}
    outputs = {}
    for _ in range(args.repeats):
        peer_after.append(_timed(timm_loop)[0])
        for precision, enc in variants.items():
            elapsed, outputs[precision] = _timed(lambda enc=enc: enc.transform(paths))
            times[precision].append(elapsed)

    rows = [
        ["timm loop fp32 NCHW (default process settings)", f"{peer_rate:.1f}", "1.00×", "1 / 1"]
    ]
    for precision, enc in variants.items():
        rate = len(paths) / statistics.median(times[precision])
        mean, low = _cosine(outputs[precision], reference)
        used = getattr(enc, "precision_", "float32")
        label = f"`ImageEncoder` {precision}" + (f" (ran {used})" if used != precision else "")
        rows.append([label, f"{rate:.1f}", f"{rate / peer_rate:.2f}×", f"{mean:.6f} / {low:.6f}"])
    after_rate = len(paths) / statistics.median(peer_after)
    rows.append(
        [
            "timm loop fp32 NCHW, same process after ImageEncoder ran (interleaved)",
            f"{after_rate:.1f}",
            f"{after_rate / peer_rate:.2f}×",
            "1 / 1",
        ]
    )
    _print_table(
        "Images: EfficientNet-Lite0 from JPEG files",
        ["variant", "images/s", "vs timm loop", "cosine to fp32 (mean / min)"],
        rows,
    )
    tmp.cleanup()


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["text", "image", "all"], default="all")
    parser.add_argument("--n-text", type=int, default=2000, help="sentences timed")
    parser.add_argument(
        "--n-accuracy", type=int, default=4000, help="sentences for the accuracy check"
    )
    parser.add_argument("--n-images", type=int, default=192, help="JPEG files timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median)")
    args = parser.parse_args(argv)
    print(
        f"bench_speed {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"python {platform.python_version()}"
    )
    if args.part == "all":
        # One process per part: the image peer must see the process's default
        # settings, which the text part may already have changed.
        import subprocess

        rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--part"]
        rest = [a for a in rest if a not in ("all",)]
        for part in ("text", "image"):
            subprocess.run([sys.executable, __file__, "--part", part, *rest], check=True)
        return
    if args.part == "text":
        bench_text(args)
    else:
        bench_image(args)


if __name__ == "__main__":
    main()
