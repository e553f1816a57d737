"""What each rewrite of ``ImageEncoder``'s CPU inference copy gives, step by step.

``ImageEncoder`` (``backend="torch"`` on a CPU) runs a copy of a convolutional
network (``sktransfer._inference``) with timm's "SAME" paddings fixed inside the
convolutions, BatchNorm folded into them and ReLU-like activations fused into
them; ``SKTRANSFER_STATIC_PADDING=0``, ``SKTRANSFER_FOLD_BATCHNORM=0`` and
``SKTRANSFER_FUSE_ACTIVATIONS=0``, read by ``fit``, turn each off. This script
fits four encoders that add one rewrite at a time (none; padding; padding and
folding; all three, the default), at the default precision and at
``precision="float32"``, in one fresh process per precision, and alternates
their ``transform`` on small JPEG files and on photos of several megapixels for
``--rounds`` rounds (median and min–max images/s), with the cosine of each to
the float32 features of the network as loaded.

Usage::

    python -m benchmarks.rewrites            # -> docs/speed.md
    python -m benchmarks.rewrites --quick    # -> build/rewrites.md
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _common
from benchmarks import _markdown as md

BLOCK = "inference-copy"
PRECISIONS = {
    "auto": "`ImageEncoder()` (default settings)",
    "float32": "`ImageEncoder(precision='float32')`",
}
INPUTS = {"small": "small JPEGs", "photos": "photos"}
SWITCHES = ("SKTRANSFER_STATIC_PADDING", "SKTRANSFER_FOLD_BATCHNORM", "SKTRANSFER_FUSE_ACTIVATIONS")
# Each step adds one rewrite: how many of SWITCHES are on.
STEPS = {
    0: "the network as loaded",
    1: "+ padding inside the convolutions",
    2: "+ BatchNorm folded",
    3: "+ activations fused (default)",
}


def _encoder(precision: str, step: int):
    from sktransfer import ImageEncoder, _inference
    from sktransfer._fused import ConvActivation
    from sktransfer._static_padding import StaticSameConv2d

    for i, name in enumerate(SWITCHES):
        os.environ[name] = "1" if i < step else "0"
    try:
        encoder = ImageEncoder(progress=False, cache=None, precision=precision).fit()
    finally:
        for name in SWITCHES:
            del os.environ[name]
    run = encoder._torch_runner(encoder._network, "float32")
    found = (
        any(isinstance(m, StaticSameConv2d) for m in run.modules()),
        _inference.folds_batchnorm(run),
        any(isinstance(m, ConvActivation) for m in run.modules()),
    )
    expected = tuple(i < step for i in range(len(SWITCHES)))
    if found != expected:
        raise RuntimeError(f"step {step}: expected rewrites {expected}, the copy has {found}")
    return encoder


def worker(cfg: dict) -> dict:
    """Time the four steps against each other for one precision in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs = _common.image_inputs(Path(tmp), cfg["n_small"], cfg["n_photos"])
        encoders = {step: _encoder(cfg["precision"], step) for step in STEPS}
        reference = _encoder("float32", 0)
        cosines = {}
        for name, paths in inputs.items():
            exact = reference.transform(paths)
            for step, encoder in encoders.items():
                cosines[f"{name}/{step}"] = _common.cosine(encoder.transform(paths), exact)
        rates: dict = {}
        for _ in range(cfg["rounds"]):
            for name, paths in inputs.items():
                for step, encoder in encoders.items():
                    start = time.perf_counter()
                    encoder.transform(paths)
                    seconds = time.perf_counter() - start
                    rates.setdefault(f"{name}/{step}", []).append(len(paths) / seconds)
        megapixels = _common.megapixels(inputs["photos"])
        return {
            "rates": rates,
            "cosines": cosines,
            "ran_in": str(encoders[3].precision_),
            "n": {name: len(paths) for name, paths in inputs.items()},
            "megapixels": [min(megapixels), max(megapixels)],
        }


def run(cfg: dict, log=print) -> dict:
    results = {}
    for precision in PRECISIONS:
        log(f"{precision} ...")
        payload = json.dumps({**cfg, "precision": precision})
        out = _common.run_worker("benchmarks.rewrites", ["--worker", payload])
        results[precision] = json.loads(out.strip().splitlines()[-1])
    return {"config": cfg, "results": results}


def render(result: dict, meta: dict) -> str:
    cfg = result["config"]
    header = ["encoder", "inference copy", *(f"{what} img/s" for what in INPUTS.values())]
    header += [f"{what}: cosine to float32 as loaded (mean / min)" for what in INPUTS.values()]
    rows, verdicts = [], []
    for precision, label in PRECISIONS.items():
        res = result["results"][precision]
        for step, what_step in STEPS.items():
            cells = [f"{label}, ran in {res['ran_in']}", what_step]
            for name in INPUTS:
                values = res["rates"][f"{name}/{step}"]
                cells.append(f"{np.median(values):.1f} ({md.spread(values)})")
            for name in INPUTS:
                mean, low = res["cosines"][f"{name}/{step}"]
                cells.append(f"{mean:.5f} / {low:.5f}")
            rows.append(cells)
        for name, what in INPUTS.items():
            parts = []
            for step in list(STEPS)[1:]:
                now, before = res["rates"][f"{name}/{step}"], res["rates"][f"{name}/{step - 1}"]
                ratio = np.median(now) / np.median(before)
                word = md.outcome(now, before)
                parts.append(f"step {step} {ratio:.2f}× step {step - 1} ({word})")
            whole, bare = res["rates"][f"{name}/3"], res["rates"][f"{name}/0"]
            ratio = np.median(whole) / np.median(bare)
            parts.append(f"all three {ratio:.2f}× none ({md.outcome(whole, bare)})")
            verdicts.append(f"{res['ran_in']}, {what}: " + ", ".join(parts))
    small, photos = result["results"]["auto"]["n"].values()
    low, high = result["results"]["auto"]["megapixels"]
    return "\n\n".join(
        [
            "### The inference copy, step by step",
            f"{small} small JPEG files (220–427 px) and {photos} photos of {low:.1f}–{high:.1f} "
            "megapixels, EfficientNet-Lite0 at 224 px, batch 32, `cache=None`. Each row adds one "
            "rewrite to the one above (steps 0–3), switched with `SKTRANSFER_STATIC_PADDING`, "
            "`SKTRANSFER_FOLD_BATCHNORM` and `SKTRANSFER_FUSE_ACTIVATIONS` at `fit`; in bfloat16 "
            "every step holds its weights in bfloat16, so the rows differ by the rewrites only. "
            "Each precision in its own fresh process, the four encoders alternating for "
            f"{cfg['rounds']} round(s): median images/s (min–max).",
            md.table(header, rows),
            "**Verdict.** " + "; ".join(verdicts) + ".",
            md.generated_note(meta),
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, few images -> build/")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    _common.large_photos()  # fail now, naming the packages, if the photos are missing
    cfg = {"rounds": 1 if args.quick else args.rounds}
    cfg.update({"n_small": 8, "n_photos": 4} if args.quick else {"n_small": 256, "n_photos": 21})
    meta = _common.script_meta("benchmarks.rewrites", argv)
    result = run(cfg, log=lambda line: print(line, flush=True))
    _common.publish(render(result, meta), BLOCK, "rewrites", to_docs=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
