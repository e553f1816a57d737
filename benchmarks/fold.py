"""What folding BatchNorm into the convolutions gives ``ImageEncoder`` on a CPU.

``ImageEncoder`` (``backend="torch"`` on a CPU) runs a copy of a convolutional
network with each BatchNorm that reads a convolution's output folded into that
convolution (``sktransfer._fold``); ``SKTRANSFER_FOLD_BATCHNORM=0``, read by
``fit``, runs the network unchanged. This script fits both, at the default
precision and at ``precision="float32"``, in one fresh process per precision,
and alternates their ``transform`` on small JPEG files and on photos of several
megapixels for ``--rounds`` rounds (median and min–max images/s), with the
cosine of each to the unfolded float32 features.

Usage::

    python -m benchmarks.fold            # -> docs/speed.md
    python -m benchmarks.fold --quick    # -> build/fold.md
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

BLOCK = "batchnorm-folding"
PRECISIONS = {
    "auto": "`ImageEncoder()` (default settings)",
    "float32": "`ImageEncoder(precision='float32')`",
}
INPUTS = {"small": "small JPEGs", "photos": "photos"}


def _encoder(precision: str, fold: bool):
    from sktransfer import ImageEncoder

    os.environ["SKTRANSFER_FOLD_BATCHNORM"] = "1" if fold else "0"
    try:
        encoder = ImageEncoder(progress=False, cache=None, precision=precision).fit()
    finally:
        del os.environ["SKTRANSFER_FOLD_BATCHNORM"]
    folded = encoder._torch_runner(encoder._network, "float32") is not encoder._network
    if fold != folded:
        raise RuntimeError(f"folding {'on' if fold else 'off'} but the runner says otherwise")
    return encoder


def worker(cfg: dict) -> dict:
    """Time folded against unfolded for one precision in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {
            "small": _common.write_jpegs(Path(tmp), cfg["n_small"]),
            "photos": _common.large_photos()[: cfg["n_photos"]],
        }
        encoders = {fold: _encoder(cfg["precision"], fold) for fold in (False, True)}
        reference = _encoder("float32", False)
        cosines = {}
        for name, paths in inputs.items():
            exact = reference.transform(paths)
            for fold, encoder in encoders.items():
                cosines[f"{name}/{int(fold)}"] = _common.cosine(encoder.transform(paths), exact)
        rates: dict = {}
        for _ in range(cfg["rounds"]):
            for name, paths in inputs.items():
                for fold, encoder in encoders.items():
                    start = time.perf_counter()
                    encoder.transform(paths)
                    seconds = time.perf_counter() - start
                    rates.setdefault(f"{name}/{int(fold)}", []).append(len(paths) / seconds)
        megapixels = _common.megapixels(inputs["photos"])
        return {
            "rates": rates,
            "cosines": cosines,
            "ran_in": str(encoders[True].precision_),
            "n": {name: len(paths) for name, paths in inputs.items()},
            "megapixels": [min(megapixels), max(megapixels)],
        }


def run(cfg: dict, log=print) -> dict:
    results = {}
    for precision in PRECISIONS:
        log(f"{precision} ...")
        payload = json.dumps({**cfg, "precision": precision})
        out = _common.run_worker("benchmarks.fold", ["--worker", payload])
        results[precision] = json.loads(out.strip().splitlines()[-1])
    return {"config": cfg, "results": results}


def render(result: dict, meta: dict) -> str:
    cfg = result["config"]
    header = ["encoder", "BatchNorm", *(f"{what} img/s" for what in INPUTS.values())]
    header += [f"{what}: cosine to unfolded float32 (mean / min)" for what in INPUTS.values()]
    rows, verdicts = [], []
    for precision, label in PRECISIONS.items():
        res = result["results"][precision]
        for fold in (0, 1):
            cells = [f"{label}, ran in {res['ran_in']}", "folded (default)" if fold else "unfolded"]
            for name in INPUTS:
                values = res["rates"][f"{name}/{fold}"]
                cells.append(f"{np.median(values):.1f} ({md.spread(values)})")
            for name in INPUTS:
                mean, low = res["cosines"][f"{name}/{fold}"]
                cells.append(f"{mean:.5f} / {low:.5f}")
            rows.append(cells)
        for name, what in INPUTS.items():
            folded, unfolded = res["rates"][f"{name}/1"], res["rates"][f"{name}/0"]
            speedup = np.median(folded) / np.median(unfolded)
            outcome = {
                "a": "faster beyond the run-to-run spread",
                "b": "slower beyond the run-to-run spread",
                "tie": "a tie (within the min–max of the rounds)",
                "no spread": "one round: no spread measured",
            }[md.compare(folded, unfolded)]
            verdicts.append(f"{res['ran_in']}, {what}: folded {speedup:.2f}× unfolded, {outcome}")
    small, photos = result["results"]["auto"]["n"].values()
    low, high = result["results"]["auto"]["megapixels"]
    return "\n\n".join(
        [
            "### BatchNorm folding",
            f"{small} small JPEG files (220–427 px) and {photos} photos of {low:.1f}–{high:.1f} "
            "megapixels, EfficientNet-Lite0 at 224 px, batch 32, `cache=None`. "
            "*Unfolded* is the same encoder fitted with `SKTRANSFER_FOLD_BATCHNORM=0` (in bfloat16 "
            "both hold their weights in bfloat16, so the rows differ by the folding only). Each "
            "precision in its own fresh process, folded and unfolded alternating for "
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
    cfg.update({"n_small": 8, "n_photos": 4} if args.quick else {"n_small": 64, "n_photos": 21})
    meta = _common.script_meta("benchmarks.fold", argv)
    result = run(cfg, log=lambda line: print(line, flush=True))
    _common.publish(render(result, meta), BLOCK, "fold", to_docs=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
