"""Cold start: from a fresh Python process to the first embedding, ours against the peers.

    python -m benchmarks.cold_start             # -> docs/speed.md (generated:cold-start)
    python -m benchmarks.cold_start --quick     # 1 round -> build/cold_start.md

What the command line (``sktransfer embed``) and small jobs feel: a new
process imports the libraries, loads the weights and encodes one input. Every
system runs as ``python -c CODE`` in its own fresh process with the same
environment (no model hub: every model is the packaged copy), the systems
alternating for ``--rounds`` rounds. *process s* is the wall time of the whole
process, interpreter start and exit included, as the parent measures it;
*to first embedding s* is measured inside the process, from its first
statement to the embedding in hand. Rows marked *floor* import a library and do
nothing else: the cost that no user of that library avoids.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "cold-start"

_HEAD = "import time; _t0 = time.perf_counter()\n"
_TAIL = "\nprint('SECONDS', time.perf_counter() - _t0)\n"

TEXT = {
    "st": (
        "`SentenceTransformer(folder).encode` (direct call)",
        "from sentence_transformers import SentenceTransformer\n"
        "SentenceTransformer({folder!r}, device='cpu').encode(['a first sentence'])",
    ),
    "embetter": (
        "embetter `SentenceEncoder(folder).transform`",
        "from embetter.text import SentenceEncoder\n"
        "SentenceEncoder({folder!r}, device='cpu').transform(['a first sentence'])",
    ),
    "ours": (
        "sktransfer `TextEncoder(folder).fit_transform` (default settings)",
        "from sktransfer import TextEncoder\n"
        "TextEncoder({folder!r}).fit_transform(['a first sentence'])",
    ),
    "ours-float32": (
        "sktransfer `TextEncoder(folder, precision='float32').fit_transform`",
        "from sktransfer import TextEncoder\n"
        "TextEncoder({folder!r}, precision='float32').fit_transform(['a first sentence'])",
    ),
    "ours-onnx": (
        "sktransfer `TextEncoder(folder, backend='onnx', cache=folder)`, export stored earlier",
        "from sktransfer import TextEncoder\n"
        "enc = TextEncoder({folder!r}, backend='onnx', cache={cache!r})\n"
        "enc.fit_transform(['a first sentence'])",
    ),
    "ours-openvino": (
        "sktransfer `TextEncoder(folder, backend='openvino', cache=folder)`, export stored earlier",
        "from sktransfer import TextEncoder\n"
        "enc = TextEncoder({folder!r}, backend='openvino', cache={cache!r})\n"
        "enc.fit_transform(['a first sentence'])",
    ),
    "ours-onnx-first": (
        "sktransfer `TextEncoder(folder, backend='onnx', cache=new folder)`: first run, exports",
        "import tempfile\n"
        "from sktransfer import TextEncoder\n"
        "with tempfile.TemporaryDirectory() as new:\n"
        "    enc = TextEncoder({folder!r}, backend='onnx', cache=new)\n"
        "    enc.fit_transform(['a first sentence'])",
    ),
    "floor-st": ("*floor*: `import sentence_transformers`", "import sentence_transformers"),
}
IMAGE = {
    "timm": (
        "timm `create_model` + weights file + the model's own transform (direct call)",
        "import timm, torch\n"
        "from PIL import Image\n"
        "m = timm.create_model('tf_efficientnet_lite0', pretrained=False, num_classes=1000)\n"
        "m.load_state_dict(torch.load({weights!r})); m.reset_classifier(0); m.eval()\n"
        "cfg = timm.data.resolve_data_config({{}}, model=m)\n"
        "t = timm.data.create_transform(**cfg)\n"
        "with torch.inference_mode():\n"
        "    m(t(Image.open({image!r}).convert('RGB'))[None])",
    ),
    "embetter": (
        "embetter `ImageLoader` + `TimmEncoder` (weights file)",
        "from benchmarks import _common\n"
        "from embetter.vision import ImageLoader\n"
        "enc = _common.embetter_timm_encoder({weights!r})\n"
        "enc.transform(ImageLoader(convert='RGB').transform([{image!r}]))",
    ),
    "ours": (
        "sktransfer `ImageEncoder().fit_transform` (default settings)",
        "from sktransfer import ImageEncoder\nImageEncoder().fit_transform([{image!r}])",
    ),
    "ours-float32": (
        "sktransfer `ImageEncoder(precision='float32').fit_transform`",
        "from sktransfer import ImageEncoder\n"
        "ImageEncoder(precision='float32').fit_transform([{image!r}])",
    ),
    "ours-onnx": (
        "sktransfer `ImageEncoder(backend='onnx', cache=folder)`, export stored earlier",
        "from sktransfer import ImageEncoder\n"
        "ImageEncoder(backend='onnx', cache={cache!r}).fit_transform([{image!r}])",
    ),
    "ours-openvino": (
        "sktransfer `ImageEncoder(backend='openvino', cache=folder)`, export stored earlier",
        "from sktransfer import ImageEncoder\n"
        "ImageEncoder(backend='openvino', cache={cache!r}).fit_transform([{image!r}])",
    ),
    "ours-onnx-first": (
        "sktransfer `ImageEncoder(backend='onnx', cache=new folder)`: first run, exports",
        "import tempfile\n"
        "from sktransfer import ImageEncoder\n"
        "with tempfile.TemporaryDirectory() as new:\n"
        "    ImageEncoder(backend='onnx', cache=new).fit_transform([{image!r}])",
    ),
    "floor-timm": ("*floor*: `import timm`", "import timm"),
}
FLOORS = {
    "floor-torch": ("*floor*: `import torch`", "import torch"),
    # What any scikit-learn estimator that computes in torch imports, before a model.
    "floor-torch-sklearn": (
        "*floor*: `import torch, sklearn.base`",
        "import torch, sklearn.base",
    ),
}

# The library that builds the torch network of each modality, and its floor row.
LIBRARY = {"text": ("sentence-transformers", "floor-st"), "image": ("timm", "floor-timm")}


def _once(code: str) -> tuple[float, float]:
    """(process seconds, seconds to the first embedding inside the process)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _HEAD + code + _TAIL],
        cwd=ROOT,
        env=_common.worker_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{code!r} failed:\n{proc.stderr[-3000:]}")
    inside = [line for line in proc.stdout.splitlines() if line.startswith("SECONDS ")]
    return wall, float(inside[-1].split()[1])


def run(rounds: int, workdir: Path, log=print) -> dict:
    folder = _common.text_model_folder()
    weights = _common.timm_weights_file(workdir)
    image = _common.write_jpegs(workdir, 1)[0]
    cache = workdir / "cache"
    cache.mkdir()
    groups = {"text": TEXT, "image": IMAGE, "floors": FLOORS}
    codes = {
        (group, key): code.format(folder=folder, weights=weights, image=image, cache=str(cache))
        for group, systems in groups.items()
        for key, (_, code) in systems.items()
    }
    _once(codes["floors", "floor-torch"])  # untimed: the first process reads files from disk
    for group in ("text", "image"):  # untimed: the exports (and start records) made once
        _once(codes[group, "ours-onnx"])
        _once(codes[group, "ours-openvino"])
    results = {f"{g}/{k}": [] for g, k in codes}
    for r in range(rounds):
        order = list(codes) if r % 2 == 0 else list(codes)[::-1]
        for group, key in order:
            wall, inside = _once(codes[group, key])
            results[f"{group}/{key}"].append({"process_s": wall, "inside_s": inside})
            log(f"  round {r} {group}/{key}: process {wall:.2f} s, first embedding {inside:.2f} s")
    return {"rounds": rounds, "results": results}


def render(result: dict, meta: dict) -> str:
    res = result["results"]
    sections = []
    verdicts = []
    for group, systems, peer in (("text", TEXT, "embetter"), ("image", IMAGE, "embetter")):
        rows = []
        peer_s = [r["process_s"] for r in res[f"{group}/{peer}"]]
        for key, (label, _) in {**systems, **FLOORS}.items():
            name = f"{group}/{key}" if key in systems else f"floors/{key}"
            walls = [r["process_s"] for r in res[name]]
            insides = [r["inside_s"] for r in res[name]]
            rows.append(
                [
                    label,
                    f"{statistics.median(walls):.2f}",
                    md.spread(walls),
                    f"{statistics.median(insides):.2f}",
                    f"{statistics.median(walls) / statistics.median(peer_s):.2f}×",
                ]
            )
        header = ["system", "process s (median)", "min–max", "to first embedding s", "vs embetter"]
        sections.append(f"**{group.capitalize()}**\n\n" + md.table(header, rows))
        for key, how in (
            ("ours", "default settings"),
            ("ours-onnx", "backend='onnx'"),
            ("ours-openvino", "backend='openvino'"),
        ):
            ours = [r["process_s"] for r in res[f"{group}/{key}"]]
            ratio = statistics.median(ours) / statistics.median(peer_s)
            word = md.outcome(ours, peer_s, "embetter", larger="slower")  # times
            goal = "met" if ratio <= 0.5 else "not met"
            verdicts.append(
                f"{group}, {how}: ours takes {ratio:.2f}× embetter's time, {word} "
                f"(goal ≤ 0.5×: {goal})"
            )
        # What a torch-backend start cannot avoid: torch and scikit-learn, then the
        # model library (sentence-transformers or timm) that builds the network.
        library, library_key = LIBRARY[group]
        base, lib = (
            statistics.median(r["process_s"] for r in res[name]) / statistics.median(peer_s)
            for name in ("floors/floor-torch-sklearn", f"{group}/{library_key}")
        )
        verdicts.append(
            f"{group}, the floors of a torch backend: importing torch and scikit-learn takes "
            f"{base:.2f}× embetter's time, importing {library} {lib:.2f}×"
            + (" (above the goal by itself)" if lib > 0.5 else "")
        )
    intro = (
        f"Every system in its own fresh process, alternating for {result['rounds']} round(s), "
        "packaged models, one input (a sentence, or one 220–427 px JPEG file). The "
        "`backend='onnx'` and `'openvino'` rows with the export stored earlier find the export "
        "and its start "
        "record that an untimed process made in the same cache folder, as every run after "
        "the first does; the *first run* rows make them (export and check included). "
        "*process s*: "
        "the whole process as the parent times it (interpreter start and exit included); "
        "*to first embedding s*: inside the process, from its first statement. *floor* rows "
        "only import a library."
    )
    return "\n\n".join(
        [
            "### Cold start: a fresh process to the first embedding",
            intro,
            *sections,
            "**Verdict.** " + "; ".join(verdicts) + ".",
            md.generated_note(meta),
        ]
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round -> build/")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    meta = _common.script_meta("benchmarks.cold_start", argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(rounds, Path(tmp), log=lambda line: print(line, flush=True))
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "cold_start.json").write_text(json.dumps(result, indent=1))
    _common.publish(render(result, meta), BLOCK, "cold_start", to_docs=not args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
