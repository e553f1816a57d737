"""Fine-tuning against frozen features and from-scratch baselines, on real data, in one run.

Text -- VADER sentences, binary sentiment (score > 0), the packaged
all-MiniLM-L6-v2:

1. TF-IDF (words and bigrams) + ``LogisticRegression`` (from scratch);
2. frozen ``TextEncoder`` + ``LogisticRegression``;
3. ``TextClassifier(trainable_blocks=0)``: the head alone trains;
4. ``TextClassifier(trainable_blocks=2, layer_decay=0.5)``: the top two
   transformer layers train too, at smaller learning rates.

Images -- a Fashion-MNIST subset, the packaged EfficientNet-Lite0 at a reduced
input size (``--image-size``, 64 px by default, for CPU time):

1. raw pixels (scaled to [0, 1]) + ``LogisticRegression`` (from scratch);
2. frozen ``ImageEncoder`` + ``LogisticRegression``;
3. ``ImageClassifier`` fine-tuning its top blocks.

Every row is run once per seed; a seed draws the train and test samples and is
the model's ``random_state``. The table gives test accuracy (mean ± sd over the
seeds) and wall time of ``fit`` + ``predict`` on the test set (mean over the
seeds). One-off costs (importing sentence-transformers / timm, the first model
load) are paid in a warm-up before the first timed row. The encoders run with
``cache=None`` so that no seed reuses another's embeddings; they do share one
loaded network across instances (as the clones in a grid search do), while
every fine-tuning ``fit`` loads the pretrained weights afresh -- that load is
in the fine-tuners' times.

Hyper-parameters are fixed in advance, never chosen on a test set: every
``LogisticRegression`` keeps scikit-learn's defaults (``C=1``); the fine-tuners
use the values in ``TEXT_HEAD``, ``TEXT_FINETUNE`` and ``IMAGE_FINETUNE`` below,
whose comments say why.

Loop -- the cost of the shared training loop: seconds per epoch of
``TextClassifier.fit`` / ``ImageClassifier.fit`` (``history_[i]["train_time"]``)
against a plain PyTorch loop doing the same work in the same process: the same
network (the adapter's body + ``FineTuneNet``), the same frozen blocks (and
their modules in eval mode), the same batches from the adapter's ``collate``,
AdamW with the same per-block learning rates and weight decay, the same
warm-up/decay schedule and gradient clipping, written as the textbook
``zero_grad(); loss.backward(); step()`` loop. The first epoch of each is a
warm-up; the median of the others is reported.

Usage::

    python benchmarks/bench_finetune.py                  # everything, 3 seeds
    python benchmarks/bench_finetune.py --quick          # tiny sizes, 1 seed: checks the script
    python benchmarks/bench_finetune.py --part text --seeds 5
    python benchmarks/bench_finetune.py --part image --image-size 96
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _markdown as _md  # noqa: E402

# Text, head only: a linear probe on frozen features. The problem is convex and
# the features are unit-length, so the head takes larger steps than when the
# body trains (the linear-probe convention; the same value as the doctest).
# Same epochs and batches as the fine-tuned row: the two differ in what trains.
TEXT_HEAD = {"trainable_blocks": 0, "learning_rate": 1e-2, "epochs": 3, "batch_size": 16}
# Text, fine-tuned: the estimator's defaults (head 1e-3, each layer below half
# the rate of the one above, batch 16, warm-up 10 %) for the top two layers,
# and 3 epochs, the usual 2-4 for BERT-style fine-tuning.
TEXT_FINETUNE = {
    "trainable_blocks": 2,
    "learning_rate": 1e-3,
    "layer_decay": 0.5,
    "epochs": 3,
    "batch_size": 16,
}
# Images, fine-tuned: 28 px grayscale product shots are far from ImageNet
# photos, so more of the body adapts than for text: the final convolution and
# the last 5 inverted-residual blocks (the 1/32-resolution stages, cheap at
# 64 px), with a gentler decay so the lowest of them still learns (1e-3 *
# 0.7**6 = 1.2e-4). Batch 32 keeps BatchNorm statistics stable; 5 epochs.
IMAGE_FINETUNE = {
    "trainable_blocks": 6,
    "learning_rate": 1e-3,
    "layer_decay": 0.7,
    "epochs": 5,
    "batch_size": 32,
}

FULL = {
    "seeds": 3,
    "n_text_train": 1000,
    "n_text_test": 1000,
    "n_image_train": 2000,
    "n_image_test": 1000,
    "n_loop": 512,
    "loop_epochs": 4,
}
QUICK = {
    "seeds": 1,
    "n_text_train": 160,
    "n_text_test": 160,
    "n_image_train": 200,
    "n_image_test": 200,
    "n_loop": 96,
    "loop_epochs": 3,
}
# --quick also cuts the fine-tuners to this many epochs.
QUICK_EPOCHS = 1


# ------------------------------------------------------------------ helpers
def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    sys.stdout.flush()


def _settings(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _quiet_transformers() -> None:
    """No "Loading weights" progress bar at every fit (transformers >= 5 draws one)."""
    try:
        from transformers.utils import logging
    except ImportError:  # pragma: no cover
        return
    logging.disable_progress_bar()


def _mean_sd(values: list[float], fmt: str = ".2f") -> str:
    if len(values) < 2:
        return f"{values[0]:{fmt}}"
    return f"{statistics.mean(values):{fmt}} ± {statistics.stdev(values):{fmt}}"


def _logistic_regression():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=5000)


def _run_rows(rows: dict, seeds: list[int], make_data) -> list[list[str]]:
    """Fit and score every row on every seed; rows: name -> (settings, fit_predict(data, seed))."""
    accuracy = {name: [] for name in rows}
    seconds = {name: [] for name in rows}
    for seed in seeds:
        X_train, y_train, X_test, y_test = make_data(seed)
        for name, (_, fit_predict) in rows.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=FutureWarning)
                start = time.perf_counter()
                predicted = fit_predict(X_train, y_train, X_test, seed)
                elapsed = time.perf_counter() - start
            acc = 100 * float(np.mean(np.asarray(predicted) == np.asarray(y_test)))
            accuracy[name].append(acc)
            seconds[name].append(elapsed)
            print(f"  seed {seed}  {name}: {acc:.2f} %  {elapsed:.1f} s", flush=True)
    return [
        [
            name,
            settings,
            _mean_sd(accuracy[name]),
            f"{statistics.mean(seconds[name]):.1f}",
            accuracy[name],
        ]
        for name, (settings, _) in rows.items()
    ]


# --------------------------------------------------------------------- text
def _vader_sampler(n_train: int, n_test: int):
    from sklearn.model_selection import train_test_split

    from sktransfer.datasets import load_vader

    vader = load_vader()
    texts = np.asarray(vader.data, dtype=object)
    # Distinct sentences only, so that no test sentence is also a training one.
    _, first = np.unique(texts, return_index=True)
    keep = np.sort(first)
    texts = texts[keep]
    labels = (np.asarray(vader.target)[keep] > 0).astype(int)
    strata = np.char.add(np.asarray(vader.domain)[keep].astype(str), labels.astype(str))

    def sample(seed: int):
        X_train, X_test, y_train, y_test = train_test_split(
            texts,
            labels,
            train_size=n_train,
            test_size=n_test,
            stratify=strata,
            random_state=seed,
        )
        return list(X_train), y_train, list(X_test), y_test

    return sample


def bench_text(sizes: dict, seeds: list[int], quick: bool) -> list[list[str]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    from sktransfer import TextClassifier, TextEncoder

    head = dict(TEXT_HEAD, epochs=QUICK_EPOCHS) if quick else TEXT_HEAD
    tuned = dict(TEXT_FINETUNE, epochs=QUICK_EPOCHS) if quick else TEXT_FINETUNE
    sample = _vader_sampler(sizes["n_text_train"], sizes["n_text_test"])
    print(
        f"\ntext: VADER, {sizes['n_text_train']} training / {sizes['n_text_test']} test "
        f"sentences per seed (stratified by domain and label, distinct sentences), "
        f"all-MiniLM-L6-v2, seeds {seeds}",
        flush=True,
    )
    _quiet_transformers()
    TextEncoder(progress=False, cache=None).fit().transform(["warm-up"])  # imports, first load

    def tfidf(X, y, X_test, seed):
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), _logistic_regression()
        )
        return model.fit(X, y).predict(X_test)

    def frozen(X, y, X_test, seed):
        encoder = TextEncoder(progress=False, cache=None)
        return make_pipeline(encoder, _logistic_regression()).fit(X, y).predict(X_test)

    def finetuner(params):
        def fit_predict(X, y, X_test, seed):
            return TextClassifier(**params, random_state=seed).fit(X, y).predict(X_test)

        return fit_predict

    rows = {
        "TF-IDF + LogisticRegression": ("words + bigrams, sublinear tf, C=1", tfidf),
        "TextEncoder (frozen) + LogisticRegression": ("C=1", frozen),
        "TextClassifier, head only": (_settings(head), finetuner(head)),
        "TextClassifier, fine-tuned": (_settings(tuned), finetuner(tuned)),
    }
    return [["text", *row] for row in _run_rows(rows, seeds, sample)]


# -------------------------------------------------------------------- image
def bench_image(sizes: dict, seeds: list[int], quick: bool, image_size: int) -> list[list[str]]:
    from sklearn.pipeline import make_pipeline

    from sktransfer import ImageClassifier, ImageEncoder
    from sktransfer.datasets import load_fashion_mnist

    tuned = dict(IMAGE_FINETUNE, image_size=image_size)
    if quick:
        tuned["epochs"] = QUICK_EPOCHS
    n_train, n_test = sizes["n_image_train"], sizes["n_image_test"]
    print(
        f"\nimages: Fashion-MNIST, {n_train} training images (from its training set) / "
        f"{n_test} test images (from its test set) per seed, class-stratified; "
        f"EfficientNet-Lite0 at {image_size} px; seeds {seeds}",
        flush=True,
    )

    def sample(seed: int):
        train = load_fashion_mnist(subset="train", n_samples=n_train, random_state=seed)
        test = load_fashion_mnist(subset="test", n_samples=n_test, random_state=seed)
        return train.images, train.target, test.images, test.target

    ImageEncoder(image_size=image_size, progress=False, cache=None).fit().transform(
        np.zeros((1, 28, 28), dtype=np.uint8)
    )  # imports, first load

    def pixels(X, y, X_test, seed):
        def flat(images):
            return images.reshape(len(images), -1) / 255.0

        return _logistic_regression().fit(flat(X), y).predict(flat(X_test))

    def frozen(X, y, X_test, seed):
        encoder = ImageEncoder(image_size=image_size, progress=False, cache=None)
        return make_pipeline(encoder, _logistic_regression()).fit(X, y).predict(X_test)

    def finetuned(X, y, X_test, seed):
        return ImageClassifier(**tuned, random_state=seed).fit(X, y).predict(X_test)

    rows = {
        "pixels + LogisticRegression": ("784 pixels scaled to [0, 1], C=1", pixels),
        "ImageEncoder (frozen) + LogisticRegression": (f"image_size={image_size}, C=1", frozen),
        "ImageClassifier, fine-tuned": (_settings(tuned), finetuned),
    }
    return [["image", *row] for row in _run_rows(rows, seeds, sample)]


# --------------------------------------------------------------------- loop
def _plain_epochs(adapter, items, targets, params: dict, epochs: int, seed: int, device: str):
    """Seconds per epoch of a textbook PyTorch loop on the estimator's own network."""
    import torch
    import torch.nn.functional as F

    from sktransfer.finetune._net import FineTuneNet

    torch.manual_seed(seed)
    body, _, _ = adapter.load(device)
    blocks = adapter.blocks(body)
    n_blocks = len(blocks)
    block_of = {f"body.{name}": i for i, names in enumerate(blocks) for name in names}
    net = FineTuneNet(body, int(targets.max()) + 1).to(device)

    # Freeze all but the top `trainable_blocks` blocks; the head always trains.
    lowest = n_blocks - min(params["trainable_blocks"], n_blocks)
    for name, param in net.named_parameters():
        param.requires_grad_(block_of.get(name, n_blocks) >= lowest)
    net.train()
    for module in net.modules():  # frozen layers keep BatchNorm statistics and no dropout
        own = list(module.parameters())
        if own and not any(p.requires_grad for p in own):
            module.eval()

    # AdamW, learning rate decaying by layer_decay per block below the head;
    # no weight decay on biases and normalisation weights.
    lr, decay = params["learning_rate"], params["layer_decay"]
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in net.named_parameters():
        block = block_of.get(name, n_blocks)
        if block < lowest:
            continue
        key = (block, param.ndim > 1)
        group = groups.setdefault(
            key,
            {
                "params": [],
                "lr": lr * decay ** (n_blocks - block),
                "weight_decay": 0.01 if param.ndim > 1 else 0.0,
            },
        )
        group["params"].append(param)
    optimizer = torch.optim.AdamW(list(groups.values()), lr=lr)
    trainable = [p for g in groups.values() for p in g["params"]]
    batch_size = params["batch_size"]
    n_steps = epochs * math.ceil(len(items) / batch_size)
    warmup = round(0.1 * n_steps)

    def schedule(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (n_steps - step) / max(1, n_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    targets = torch.as_tensor(targets)
    generator = torch.Generator().manual_seed(seed)

    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(items), generator=generator).numpy()
        running_loss = 0.0
        for begin in range(0, len(items), batch_size):
            rows = order[begin : begin + batch_size]
            batch = adapter.collate([items[i] for i in rows], training=True)
            batch = adapter.to_device(batch, device)
            batch_targets = targets[torch.from_numpy(rows)].to(device)
            loss = F.cross_entropy(net(batch), batch_targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            running_loss += loss.item() * len(rows)
        times.append(time.perf_counter() - start)
    return times


def _loop_row(label: str, estimator, adapter, items, targets, params, epochs, device):
    plain = _plain_epochs(adapter, items, targets, params, epochs, 0, device)
    fitted = estimator.set_params(epochs=epochs, random_state=0).fit(items, targets)
    ours = [r.get("train_time", r["time"]) for r in fitted.history_]
    plain_s, ours_s = statistics.median(plain[1:]), statistics.median(ours[1:])
    print(
        f"  {label}: plain epochs {[round(t, 2) for t in plain]} s, "
        f"ours {[round(t, 2) for t in ours]} s",
        flush=True,
    )
    return [
        label,
        f"{plain_s:.2f}",
        f"{ours_s:.2f}",
        f"{ours_s / plain_s:.3f}×",
        plain[1:],
        ours[1:],
    ]


def bench_loop(sizes: dict, image_size: int) -> list[list[str]]:
    from sktransfer import ImageClassifier, TextClassifier
    from sktransfer._device import resolve_device
    from sktransfer.datasets import load_fashion_mnist

    _quiet_transformers()
    n, epochs = sizes["n_loop"], sizes["loop_epochs"]
    device = resolve_device("auto")
    print(
        f"\nloop: {n} samples per epoch, {epochs} epochs each (the first is a warm-up), "
        f"device {device}, plain loop first, then the estimator",
        flush=True,
    )
    rows = []

    sample = _vader_sampler(n, 16)  # the test part is not used
    texts, labels, _, _ = sample(0)
    params = TEXT_FINETUNE
    estimator = TextClassifier(**params, device=device)
    label = f"TextClassifier ({_settings(params | {'epochs': epochs})})"
    adapter = estimator._make_adapter()  # the adapter fit builds: same preprocessing
    rows.append(_loop_row(label, estimator, adapter, texts, labels, params, epochs, device))

    images = load_fashion_mnist(subset="train", n_samples=n, random_state=0)
    params = IMAGE_FINETUNE
    estimator = ImageClassifier(**params, image_size=image_size, device=device)
    adapter = estimator._make_adapter()
    label = f"ImageClassifier ({_settings(params | {'epochs': epochs})}, image_size={image_size})"
    items = list(images.images)
    rows.append(_loop_row(label, estimator, adapter, items, images.target, params, epochs, device))
    return rows


# --------------------------------------------------------------------- main
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["text", "image", "loop", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 seed, 1 epoch")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--image-size", type=int, default=64, help="input size of the CNN")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.seeds is not None:
        sizes["seeds"] = args.seeds
    seeds = list(range(sizes["seeds"]))

    import torch

    command = " ".join(["python benchmarks/bench_finetune.py", *(argv or sys.argv[1:])])
    print(f"`{command}`\n")
    print(
        f"bench_finetune {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"python {platform.python_version()}",
        flush=True,
    )
    start = time.perf_counter()
    parts = ["text", "image", "loop"] if args.part == "all" else [args.part]
    results = []
    loop_rows = []
    for part in parts:
        if part == "text":
            results += bench_text(sizes, seeds, args.quick)
        elif part == "image":
            results += bench_image(sizes, seeds, args.quick, args.image_size)
        else:
            loop_rows = bench_loop(sizes, args.image_size)

    print(f"\n`{command}` -- {len(seeds)} seed(s), total {time.perf_counter() - start:.0f} s")
    if results:
        _print_table(
            "Test accuracy and wall time",
            ["data", "model", "settings", "accuracy % (mean ± sd)", "fit + predict s"],
            [row[:5] for row in results],
        )
    if loop_rows:
        _print_table(
            "One training epoch: our loop vs a plain PyTorch loop (median s per epoch)",
            ["estimator", "plain loop s", "our loop s", "ratio"],
            [row[:4] for row in loop_rows],
        )


# ---------------------------------------------------------------- the suite
def run(cfg: dict) -> dict:
    """The ``finetune`` part of ``python -m benchmarks``: accuracy and loop tables."""
    seeds = list(range(cfg["seeds"]))
    quick = cfg.get("quick", False)
    rows = bench_text(cfg, seeds, quick) + bench_image(cfg, seeds, quick, cfg["image_size"])
    loop = bench_loop(cfg, cfg["image_size"])
    return {**cfg, "rows": rows, "loop": loop}


def _versus(rows: dict, a: str, b: str) -> str:
    """ "a vs b" in accuracy points, a tie when the seeds' ranges overlap."""
    return _md.versus(a, rows[a][5], b, rows[b][5], "points")


def render(result: dict) -> str:
    rows = {row[1]: row for row in result["rows"]}
    table = _md.table(
        ["data", "model", "settings", "accuracy % (mean ± sd)", "fit + predict s"],
        [row[:5] for row in result["rows"]],
    )
    loop_table = _md.table(
        ["estimator", "plain loop s", "our loop s", "ratio"], [row[:4] for row in result["loop"]]
    )
    comparisons = [
        _versus(rows, "TextClassifier, fine-tuned", "TextEncoder (frozen) + LogisticRegression"),
        _versus(rows, "TextClassifier, head only", "TextEncoder (frozen) + LogisticRegression"),
        _versus(rows, "TextEncoder (frozen) + LogisticRegression", "TF-IDF + LogisticRegression"),
        _versus(rows, "ImageClassifier, fine-tuned", "ImageEncoder (frozen) + LogisticRegression"),
        _versus(rows, "ImageEncoder (frozen) + LogisticRegression", "pixels + LogisticRegression"),
    ]
    loops = []
    for row in result["loop"]:
        outcome = _md.compare(row[5], row[4])  # "a": ours took longer per epoch
        what = {
            "a": "slower than",
            "b": "faster than",
            "tie": "a tie with",
            "no spread": "(one timed epoch, no spread measured) compared with",
        }[outcome]
        loops.append(f"{row[0].split(' (')[0]}: our loop is {what} the plain loop ({row[3]})")
    intro = (
        f"Text: {result['n_text_train']:,} training / {result['n_text_test']:,} test VADER "
        "sentences per seed (stratified by domain and label, distinct sentences), label "
        f"`score > 0`. Images: {result['n_image_train']:,} training / "
        f"{result['n_image_test']:,} test Fashion-MNIST images per seed, fed to "
        f"EfficientNet-Lite0 at {result['image_size']} px (28 px originals, upscaled). Seeds "
        f"0–{result['seeds'] - 1}; *fit + predict s* is the mean wall time of one seed. The "
        "hyper-parameters and their reasons are in `benchmarks/bench_finetune.py`."
    )
    loop_intro = (
        "One training epoch, our loop against a plain PyTorch loop (same network, optimiser, "
        f"data and batch size; {result['n_loop']} samples per epoch, {result['loop_epochs']} "
        "epochs, the first a warm-up; median seconds per epoch; a tie when the epochs' "
        "min–max ranges overlap):"
    )
    return _md.section(
        "Fine-tuning against frozen features",
        intro,
        table + "\n\n" + loop_intro + "\n\n" + loop_table,
        "; ".join(comparisons) + ". " + "; ".join(loops) + ".",
    )


if __name__ == "__main__":
    main()
