"""Accuracy bar of bfloat16, ``backend="onnx"`` and int8 against float32, on any CPU.

Checks the numerics only (cosine on N real VADER sentences, accuracy of
LogisticRegression on VADER binary sentiment); it forces bfloat16 even where
``fit`` would fall back to float32 because bfloat16 is emulated (slow), so run it
on a CPU without native bfloat16 to check numbers, not speed. It is the
``precision`` part of the suite (``python -m benchmarks --only precision``),
which writes its table into docs/speed.md; run alone it prints the figures.

Usage::

    python benchmarks/check_precision.py --n-text 2000 --n-accuracy 2000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _markdown as md  # noqa: E402


def run(cfg: dict, precision: str = "bfloat16") -> dict:
    """Cosine to float32 and downstream accuracy of every lossy or other-runtime variant.

    ``precision`` is forced even where bfloat16 would be emulated. The ONNX rows
    run when onnxruntime is installed: ``backend='onnx'`` (float32) and the same
    export quantised to int8 weights with ONNX Runtime's dynamic quantisation
    (measured, not offered by sktransfer unless it meets the bar).
    """
    from sktransfer import _precision

    probe = _precision.cpu_bfloat16_speedup
    _precision.cpu_bfloat16_speedup = lambda: float("inf")  # numerics, not speed
    try:
        return _run(cfg, precision)
    finally:
        _precision.cpu_bfloat16_speedup = probe


def _run(cfg: dict, precision: str) -> dict:
    from sklearn.linear_model import LogisticRegression

    from sktransfer import TextEncoder
    from sktransfer._hub import packaged_text_model_dir
    from sktransfer.datasets import load_vader

    vader = load_vader()
    score = dict(zip(vader.data, vader.target, strict=True))
    data = list(score)
    perm = np.random.default_rng(0).permutation(len(data))
    n_text, n_accuracy = cfg["n_text"], cfg["n_accuracy"]
    texts = [data[i] for i in perm[:n_text]]
    acc_texts = [data[i] for i in perm[n_text : n_text + n_accuracy]]
    y = np.asarray([score[t] > 0 for t in acc_texts], dtype=int)
    n_train = int(0.75 * len(acc_texts))
    folder = str(packaged_text_model_dir("all-MiniLM-L6-v2"))
    # The reference is float32 by name: "auto" would pick bfloat16 on a CPU with it.
    exact = TextEncoder(folder, progress=False, cache=None, precision="float32").fit()
    lossy = TextEncoder(folder, progress=False, cache=None, precision=precision).fit()
    variants = [
        ("`TextEncoder` float32", "float32", exact.transform),
        (f"`TextEncoder` {lossy.precision_} (autocast)", str(lossy.precision_), lossy.transform),
    ]
    variants += _onnx_variants(folder)
    reference = exact.transform(texts)
    rows = []
    for label, key, transform in variants:
        out = reference if key == "float32" else transform(texts)
        cos = np.sum(reference * out, 1) / (
            np.linalg.norm(reference, axis=1) * np.linalg.norm(out, axis=1)
        )
        accuracy = None
        if n_accuracy:
            X = transform(acc_texts)
            clf = LogisticRegression(max_iter=2000).fit(X[:n_train], y[:n_train])
            accuracy = 100 * clf.score(X[n_train:], y[n_train:])
        rows.append(
            {
                "label": label,
                "key": key,
                "cosine": [float(cos.mean()), float(cos.min())],
                "accuracy": accuracy,
            }
        )
    return {
        "n_text": len(texts),
        "n_train": n_train,
        "n_test": len(acc_texts) - n_train,
        "precision": lossy.precision_,
        "rows": rows,
    }


def _onnx_variants(folder: str) -> list:
    """``backend='onnx'``, its int8 quantisation and ``backend='openvino'``, where installed."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return []
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from sktransfer import TextEncoder, _onnx

    onnx = TextEncoder(folder, progress=False, cache=None, backend="onnx").fit()
    source = Path(onnx._runner().source)
    quantised = Path(tempfile.mkdtemp()) / "model-int8.onnx"
    quantize_dynamic(str(source), str(quantised), weight_type=QuantType.QInt8)

    def int8(texts):
        # The same encoder (tokenisation, batching) with the quantised file's session.
        runner = onnx._runner()
        saved = runner.session
        runner.session = _onnx._session(quantised, saved.get_session_options().intra_op_num_threads)
        try:
            return onnx.transform(texts)
        finally:
            runner.session = saved

    variants = [("`TextEncoder(backend='onnx')` float32", "onnx", onnx.transform)]
    if importlib.util.find_spec("openvino") is not None:
        for precision in ("float32", "bfloat16"):
            openvino = TextEncoder(
                folder, progress=False, cache=None, backend="openvino", precision=precision
            ).fit()
            label = f"`TextEncoder(backend='openvino')` {openvino.precision_}"
            variants.append((label, f"openvino-{openvino.precision_}", openvino.transform))
    return [
        *variants,
        (
            "ONNX export with int8 weights (ONNX Runtime dynamic quantisation; not offered)",
            "onnx-int8",
            int8,
        ),
    ]


def _meets(row: dict, reference: float | None) -> tuple[bool, float | None]:
    mean, low = row["cosine"]
    gap = None
    if row["accuracy"] is not None and reference is not None:
        gap = abs(row["accuracy"] - reference)
    return mean >= 0.999 and low >= 0.99 and (gap is None or gap <= 0.3), gap


def render(result: dict) -> str:
    rows = result["rows"]
    reference = rows[0]["accuracy"]
    cells, verdicts = [], []
    for row in rows:
        mean, low = row["cosine"]
        if row["key"] == "float32":
            cells.append([row["label"], "1 / 1", md.number(row["accuracy"], 2), "(reference)"])
            continue
        meets, gap = _meets(row, reference)
        cells.append(
            [
                row["label"],
                f"{mean:.6f} / {low:.6f}",
                md.number(row["accuracy"], 2),
                "meets" if meets else "fails",
            ]
        )
        verdicts.append(
            f"{row['label']} {'meets' if meets else 'fails'} it"
            + ("" if gap is None else f" ({gap:.2f} points apart)")
        )
    verdict = (
        "The accuracy bar is cosine mean ≥ 0.999 and min ≥ 0.99, accuracy within 0.3 points "
        "of float32: " + "; ".join(verdicts) + "."
    )
    p = result["precision"]
    return md.section(
        "bfloat16 and ONNX numerics",
        f"Each variant against `TextEncoder(precision='float32')` (numbers, not speed; "
        f"`precision='{p}'` forced on this CPU): cosine on {result['n_text']:,} VADER "
        f"sentences; accuracy of `LogisticRegression` on VADER binary sentiment (score > 0), "
        f"{result['n_train']:,} training / {result['n_test']:,} test sentences.",
        md.table(["variant", "cosine to float32 (mean / min)", "accuracy %", "bar"], cells),
        verdict,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-text", type=int, default=2000)
    parser.add_argument("--n-accuracy", type=int, default=2000)
    parser.add_argument("--precision", default="bfloat16")
    args = parser.parse_args(argv)
    result = run({"n_text": args.n_text, "n_accuracy": args.n_accuracy}, args.precision)
    print(render(result))


if __name__ == "__main__":
    main()
