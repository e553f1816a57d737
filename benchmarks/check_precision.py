"""Accuracy bar of bfloat16, ``backend="onnx"`` and int8 against float32, on any CPU.

Checks the numerics only (cosine on N real VADER sentences, accuracy of
LogisticRegression on VADER binary sentiment); it forces bfloat16 even where
``fit`` would fall back to float32 because bfloat16 is emulated (slow), so run it
on a CPU without native bfloat16 to check numbers, not speed. It is the
``precision`` part of the suite (``python -m benchmarks --only precision``),
which writes its table into docs/speed.md; run alone it prints the figures.

int8 variants tried (measured here, none offered by sktransfer unless it meets
the bar); each quantises the float32 export of ``backend="onnx"``:

- ONNX Runtime dynamic quantisation (int8 weights, activations quantised per
  tensor at run time): of the whole export (ONNX Runtime's defaults: the 36
  weight MatMuls, per-tensor weights, and the embedding Gathers); of the weight
  MatMuls only with per-channel weights, with and without ``reduce_range``
  (7-bit weights, for CPUs without VNNI); and of the query, key and
  attention-output MatMuls only (value and feed-forward MatMuls, each of which
  fails the bar alone when quantised, left in float32). The 12
  activation x activation MatMuls of attention are never quantised (ONNX
  Runtime's ``MatMulConstBOnly``).
- ONNX Runtime static quantisation (QDQ, int8 per-channel weights, uint8
  activations with ranges from a calibration set) of the weight MatMuls: with
  ONNX Runtime's default of also quantising the MatMul outputs (MinMax), and
  with the inputs only, calibrated by MinMax, Percentile (99.999) and Entropy.
- ONNX Runtime ``MatMulNBits`` with 8-bit block-wise weights of the weight
  MatMuls: ``accuracy_level=4`` (activations quantised to int8 per block at run
  time, integer products) with blocks of 32 and of 128, and
  ``accuracy_level=0`` (weights only, float32 products).
- NNCF (where installed), run by OpenVINO: post-training quantisation
  (``nncf.quantize``, ``ModelType.TRANSFORMER``) with and without SmoothQuant
  and with the attention MatMuls excluded; int8 weight compression
  (``nncf.compress_weights``, INT8_SYM and INT8_ASYM) run with OpenVINO's
  dynamic activation quantisation in groups of 32.

The calibration sentences (``N_CALIBRATION``, the end of the same shuffle) are
disjoint from the cosine and the accuracy sentences. ONNX Runtime's static
calibration gets them in batches of 32 padded to one length (its Percentile and
Entropy histograms need one shape), NNCF one sentence per sample.

Usage::

    python benchmarks/check_precision.py --n-text 2000 --n-accuracy 2000
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _markdown as md  # noqa: E402

# Sentences that calibrate the static int8 variants (disjoint from the others).
N_CALIBRATION = 256


def run(cfg: dict, precision: str = "bfloat16") -> dict:
    """Cosine to float32 and downstream accuracy of every lossy or other-runtime variant.

    ``precision`` is forced even where bfloat16 would be emulated. The ONNX rows
    run when onnxruntime is installed: ``backend='onnx'`` (float32) and the int8
    quantisations of the same export listed in the module docstring (measured,
    not offered by sktransfer unless one meets the bar); the NNCF rows also need
    nncf and openvino.
    """
    from sktransfer import _precision

    probe = _precision.cpu_bfloat16_speedup
    _precision.cpu_bfloat16_speedup = lambda: float("inf")  # numerics, not speed
    try:
        return _run(cfg, precision)
    finally:
        _precision.cpu_bfloat16_speedup = probe


def _run(cfg: dict, precision: str) -> dict:
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
    if n_text + n_accuracy + N_CALIBRATION > len(data):
        raise ValueError(f"{n_text} + {n_accuracy} sentences leave too few for calibration")
    calibration = [data[i] for i in perm[len(data) - N_CALIBRATION :]]
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
    with tempfile.TemporaryDirectory(prefix="sktransfer-int8-") as workdir:
        variants += _onnx_variants(folder, calibration, Path(workdir))
        rows = _rows(variants, texts, acc_texts, y, n_train, exact.transform(texts))
    return {
        "n_text": len(texts),
        "n_train": n_train,
        "n_test": len(acc_texts) - n_train,
        "precision": lossy.precision_,
        "rows": rows,
    }


def _rows(variants, texts, acc_texts, y, n_train, reference) -> list[dict]:
    """Cosine to ``reference`` (float32 features of ``texts``) and accuracy per variant."""
    from sklearn.linear_model import LogisticRegression

    rows = []
    for label, key, transform in variants:
        out = reference if key == "float32" else transform(texts)
        cos = np.sum(reference * out, 1) / (
            np.linalg.norm(reference, axis=1) * np.linalg.norm(out, axis=1)
        )
        accuracy = None
        if len(acc_texts):
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
    return rows


def _onnx_variants(folder: str, calibration: list[str], workdir: Path) -> list:
    """``backend='onnx'``, ``backend='openvino'`` and the int8 variants, where installed.

    Parameters
    ----------
    folder : str
        The model folder.
    calibration : list of str
        Sentences for the static int8 variants, disjoint from those measured.
    workdir : Path
        Where the int8 variants' models are written.

    Returns
    -------
    list of (label, key, transform)
        One entry per row; ``transform`` maps a list of sentences to features.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    from sktransfer import TextEncoder

    onnx = TextEncoder(folder, progress=False, cache=None, backend="onnx").fit()
    variants = [("`TextEncoder(backend='onnx')` float32", "onnx", onnx.transform)]
    if importlib.util.find_spec("openvino") is not None:
        for precision in ("float32", "bfloat16"):
            openvino = TextEncoder(
                folder, progress=False, cache=None, backend="openvino", precision=precision
            ).fit()
            label = f"`TextEncoder(backend='openvino')` {openvino.precision_}"
            variants.append((label, f"openvino-{openvino.precision_}", openvino.transform))
    return [*variants, *int8_variants(onnx, calibration, workdir)]


def int8_variants(encoder, calibration: list[str], workdir: Path) -> list:
    """The int8 variants of ``encoder``'s float32 export (see the module docstring).

    Each is built here (quantised, calibrated on ``calibration``) and runs with
    ``encoder``'s tokenisation, batching and threads in place of its runner.

    Parameters
    ----------
    encoder : TextEncoder
        A fitted ``TextEncoder(backend="onnx")``; its export is quantised.
    calibration : list of str
        The calibration sentences of the static variants.
    workdir : Path
        Where the quantised models are written.

    Returns
    -------
    list of (label, key, transform)
        The ONNX Runtime variants, then the NNCF ones where nncf and openvino
        are installed.
    """
    from sktransfer import _onnx

    runner = encoder._runner()
    source = Path(runner.source)
    threads = runner.session.get_session_options().intra_op_num_threads
    batches = [
        _onnx._feeds(batch, runner.names)
        for _, batch in encoder._adapter.inference_batches(calibration, 32)
    ]
    ort = _OrtInt8(source, workdir, _padded(batches), runner.names, threads)
    variants = [(label, key, _through(encoder, build)) for label, key, build in ort.specs()]
    if importlib.util.find_spec("nncf") is not None and importlib.util.find_spec("openvino"):
        samples = [
            _onnx._feeds(batch, runner.names)
            for _, batch in encoder._adapter.inference_batches(calibration, 1)
        ]
        ov = _NncfInt8(source, workdir, samples, runner.names, threads)
        variants += [(label, key, _through(encoder, build)) for label, key, build in ov.specs()]
    return variants


def _through(encoder, build):
    """``encoder.transform`` with the runner ``build()`` makes (made on first call)."""
    made = []

    def transform(texts):
        if not made:
            made.append(build())
        encoder._runner = lambda precision=None: made[0]  # shadows the method
        try:
            return encoder.transform(texts)
        finally:
            del encoder._runner

    return transform


def _padded(batches: list[dict]) -> list[dict]:
    """Token batches right-padded (id 0, mask 0) to the longest one's length."""
    length = max(batch["input_ids"].shape[1] for batch in batches)
    return [
        {name: np.pad(value, ((0, 0), (0, length - value.shape[1]))) for name, value in b.items()}
        for b in batches
    ]


class _OrtInt8:
    """The ONNX Runtime int8 variants of one float32 export."""

    def __init__(self, source: Path, workdir: Path, batches: list, names: list, threads: int):
        import onnx

        self.source, self.workdir, self.batches = source, workdir, batches
        self.names, self.threads = names, threads
        graph = onnx.load(str(source), load_external_data=False).graph
        constant = {tensor.name for tensor in graph.initializer}
        matmuls = [node for node in graph.node if node.op_type in ("MatMul", "Gemm")]
        # Weight MatMuls (constant right operand), in graph order: per layer the
        # query, key, value, attention output, feed-forward in and out.
        self.weights = [node.name for node in matmuls if node.input[1] in constant]
        self.attention = [node.name for node in matmuls if node.input[1] not in constant]

    def specs(self) -> list:
        """``(label, key, build)`` per variant; ``build()`` quantises and starts it."""
        from onnxruntime.quantization import CalibrationMethod

        n = sum(len(batch["input_ids"]) for batch in self.batches)
        weights, dyn, qdq = len(self.weights), "ONNX Runtime dynamic", "ONNX Runtime static QDQ"
        qk_out = [name for i, name in enumerate(self.weights) if i % 6 in (0, 1, 3)]
        specs = [
            (
                "ONNX export with int8 weights (ONNX Runtime dynamic quantisation; not offered)",
                "onnx-int8",
                lambda: self._dynamic("dynamic-default", {}),
            ),
            (
                f"{dyn}: {weights} weight MatMuls only (attention MatMuls and embedding "
                "Gathers excluded), per-channel weights",
                "ort-dynamic-matmul-perchannel",
                lambda: self._dynamic("dynamic-pc", {"per_channel": True}),
            ),
            (
                f"{dyn}: {weights} weight MatMuls only, per-channel 7-bit weights (reduce_range)",
                "ort-dynamic-matmul-perchannel-reduce-range",
                lambda: self._dynamic("dynamic-pc-rr", {"per_channel": True, "reduce_range": True}),
            ),
            (
                f"{dyn}: query, key and attention-output MatMuls only ({len(qk_out)}; value "
                "and feed-forward MatMuls excluded), per-channel weights",
                "ort-dynamic-qk-out-perchannel",
                lambda: self._dynamic("dynamic-qko", {"per_channel": True}, qk_out),
            ),
            (
                f"{qdq}: {weights} weight MatMuls, inputs and outputs quantised, per-channel "
                f"weights, MinMax on {n} sentences",
                "ort-static-minmax-outputs",
                lambda: self._static("static-minmax-out", CalibrationMethod.MinMax, True),
            ),
        ]
        for method in ("MinMax", "Percentile", "Entropy"):
            name = "Percentile (99.999)" if method == "Percentile" else method
            specs.append(
                (
                    f"{qdq}: {weights} weight MatMuls, inputs only (outputs float32), "
                    f"per-channel weights, {name} on {n} sentences",
                    f"ort-static-{method.lower()}",
                    lambda m=method: self._static(
                        f"static-{m}", getattr(CalibrationMethod, m), False
                    ),
                )
            )
        for block, level in ((32, 4), (128, 4), (32, 0)):
            what = (
                "int8 activations per block, integer products"
                if level
                else "weights only, float32 products"
            )
            specs.append(
                (
                    f"ONNX Runtime `MatMulNBits` 8-bit weights of the {weights} weight MatMuls, "
                    f"blocks of {block}, `accuracy_level={level}` ({what})",
                    f"ort-matmulnbits8-block{block}-level{level}",
                    lambda b=block, a=level: self._nbits(b, a),
                )
            )
        return specs

    def _start(self, path: Path):
        from sktransfer import _onnx

        return _onnx._start("onnx", path, self.threads, self.names, str(path))

    def _dynamic(self, name: str, options: dict, nodes: list | None = None):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        path = self.workdir / f"{name}.onnx"
        if options:  # restricted to the weight MatMuls (else: ONNX Runtime's defaults)
            options = {"op_types_to_quantize": ["MatMul"], **options}
            options["nodes_to_quantize"] = nodes or self.weights
        with _quiet():
            quantize_dynamic(str(self.source), str(path), weight_type=QuantType.QInt8, **options)
        return self._start(path)

    def _static(self, name: str, method, outputs: bool):
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        class Reader(CalibrationDataReader):
            def __init__(self, batches):
                self.batches = iter(batches)

            def get_next(self):
                return next(self.batches, None)

        extra = {"MatMulConstBOnly": True, "CalibPercentile": 99.999}
        if not outputs:
            extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
        path = self.workdir / f"{name}.onnx"
        with _quiet():
            quantize_static(
                str(self.source),
                str(path),
                Reader(self.batches),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=self.weights,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                extra_options=extra,
            )
        return self._start(path)

    def _nbits(self, block: int, level: int):
        import onnx
        from onnxruntime.quantization import matmul_nbits_quantizer as nbits

        config = nbits.DefaultWeightOnlyQuantConfig(
            block_size=block, is_symmetric=True, accuracy_level=level, bits=8
        )
        quantizer = nbits.MatMulNBitsQuantizer(
            onnx.load(str(self.source)), nodes_to_include=self.weights, algo_config=config
        )
        with _quiet():
            quantizer.process()
        path = self.workdir / f"matmulnbits8-b{block}-a{level}.onnx"
        quantizer.model.save_model_to_file(str(path), False)
        return self._start(path)


class _NncfInt8:
    """The NNCF int8 variants of one float32 export, run by OpenVINO."""

    def __init__(self, source: Path, workdir: Path, samples: list, names: list, threads: int):
        self.source, self.workdir, self.samples = source, workdir, samples
        self.names, self.threads = names, threads

    def specs(self) -> list:
        """``(label, key, build)`` per variant; ``build()`` quantises and starts it."""
        n, ptq = len(self.samples), "NNCF `quantize` (TRANSFORMER), OpenVINO"
        specs = [
            (
                f"{ptq}: every MatMul, SmoothQuant (alpha 0.95), {n} sentences",
                "nncf-ptq-smoothquant",
                lambda: self._quantize(smooth=True, attention=True),
            ),
            (
                f"{ptq}: every MatMul, no SmoothQuant, {n} sentences",
                "nncf-ptq",
                lambda: self._quantize(smooth=False, attention=True),
            ),
            (
                f"{ptq}: attention MatMuls excluded, SmoothQuant (alpha 0.95), {n} sentences",
                "nncf-ptq-smoothquant-no-attention",
                lambda: self._quantize(smooth=True, attention=False),
            ),
        ]
        for mode in ("INT8_SYM", "INT8_ASYM"):
            specs.append(
                (
                    f"NNCF `compress_weights` {mode} (per-channel int8 weights), OpenVINO "
                    "dynamic activation quantisation in groups of 32",
                    f"nncf-weights-{mode.lower().replace('_', '-')}",
                    lambda m=mode: self._compress(m),
                )
            )
        return specs

    def _compile(self, model, **config):
        import openvino

        from sktransfer import _onnx

        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            **config,
        }
        compiled = openvino.Core().compile_model(model, "CPU", config)
        return _onnx.OpenVinoRunner(compiled, self.names, str(self.source))

    def _quantize(self, smooth: bool, attention: bool):
        import nncf
        import openvino
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            AdvancedSmoothQuantParameters,
        )

        model = openvino.Core().read_model(str(self.source))
        options = {}
        if not smooth:
            alphas = AdvancedSmoothQuantParameters(matmul=-1)
            options["advanced_parameters"] = AdvancedQuantizationParameters(
                smooth_quant_alphas=alphas
            )
        if not attention:
            options["ignored_scope"] = nncf.IgnoredScope(names=_attention_matmuls(model))
        with _quiet():
            quantised = nncf.quantize(
                model,
                nncf.Dataset(self.samples),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(self.samples),
                **options,
            )
        return self._compile(quantised)

    def _compress(self, mode: str):
        import nncf
        import openvino

        model = openvino.Core().read_model(str(self.source))
        with _quiet():
            compressed = nncf.compress_weights(model, mode=getattr(nncf.CompressWeightsMode, mode))
        return self._compile(compressed, DYNAMIC_QUANTIZATION_GROUP_SIZE=32)


def _attention_matmuls(model) -> list[str]:
    """Names of an OpenVINO model's MatMuls of two activations (no constant operand)."""
    names = []
    for op in model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        sources = [op.input_value(i).get_node().get_type_name() for i in range(2)]
        if not any(kind in ("Constant", "Convert") for kind in sources):
            names.append(op.get_friendly_name())
    return names


@contextlib.contextmanager
def _quiet():
    """The quantisers' logging, progress bars and prints kept off the output."""
    loggers = [logging.getLogger(), logging.getLogger("nncf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


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
