"""Throughput of the frozen encoders and their peers, every system in its own fresh process.

Text: VADER sentences, sentences/s, ratio to ``SentenceTransformer.encode`` and
cosine to its features. Images: JPEG files on disk, images/s, ratio to a plain
timm loop, cosine to its features. Each system (``_speed_worker.py``) runs in
a fresh process started with the same environment, is called once untimed,
then timed ``repeats`` times; the table gives the median and the min–max of the
repeats, and a verdict names a winner only when the ranges do not overlap.

glibc's allocator thresholds matter as much as the code for CNNs (see
docs/speed.md): sktransfer raises them itself on its first ``transform``, so
each peer is also run with the same thresholds set through glibc's
``MALLOC_*`` environment variables, and sktransfer also with its tuning off.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import _common
from benchmarks import _markdown as md
from benchmarks._speed_worker import (
    AVX2_ENV,
    AVX2_SYSTEMS,
    IMAGE_SYSTEMS,
    PHOTO_SYSTEMS,
    TEXT_EXTRA,
    TEXT_SYSTEMS,
)


def _timing(cfg: dict) -> dict:
    """A part's ``repeats`` and ``rounds`` (default 1), as its result records them."""
    return {"repeats": cfg["repeats"], "rounds": cfg.get("rounds", 1)}


def _measure(
    kind: str, systems: dict, inputs: list[str], cfg: dict, workdir: Path, modality=None
) -> dict:
    """Run every system's worker on ``inputs``; ``modality`` ("text" or "images") is ``kind``'s.

    ``cfg`` is the part's configuration (see :func:`_timing`). With ``rounds``
    above 1 every system runs again in a new process per round,
    the systems' order reversed every other round, so that a change in the
    machine's speed during the run reaches every system alike; a row's timed
    calls are those of all rounds, its page faults and peak memory the first
    round's.
    """
    timing = _timing(cfg)
    config = workdir / f"speed-{kind}.json"
    config.write_text(
        json.dumps({"kind": modality or kind, "inputs": inputs, "repeats": timing["repeats"]})
    )
    reports: dict = {}
    for index in range(timing["rounds"]):
        order = list(systems.items())
        for system, (_, env) in order if index % 2 == 0 else reversed(order):
            report = workdir / f"speed-{kind}-{system}.json"
            _common.run_worker(
                "benchmarks._speed_worker", [system, str(config), str(report)], extra_env=env
            )
            got = json.loads(report.read_text())
            if system not in reports:
                reports[system] = got
                continue
            for key, row in got["rows"].items():
                reports[system]["rows"][key]["seconds"] += row["seconds"]
    return {system: reports[system] for system in systems}


def _procedure(result: dict) -> str:
    """How each system was timed, for a table's introduction."""
    rounds = result.get("rounds", 1)
    calls = f"one untimed call, then {result['repeats']} timed calls"
    if rounds == 1:
        return f"{calls} (median and min–max)"
    return (
        f"in each of {rounds} rounds a new process per system, the systems' order reversed "
        f"every other round: {calls}; median and min–max over the {rounds * result['repeats']} "
        "timed calls"
    )


def _rows(reports: dict, labels: dict, reference: str, n: int) -> list[dict]:
    ref = np.load(reports[reference]["rows"][reference]["features"])
    rows = []
    for system, report in reports.items():
        for key, row in report["rows"].items():
            out = np.load(row["features"])
            rows.append(
                {
                    "key": key,
                    "label": labels[key],
                    "rates": [n / s for s in row["seconds"]],
                    "rate": n / _common.median(row["seconds"]),
                    "cosine": _common.cosine(out, ref) if out.shape == ref.shape else None,
                    "dims": int(out.shape[1]),
                    "precision": report["precision"],
                    "page_faults": report["page_faults_per_call"],
                    "peak_rss_mib": report["peak_rss_mib"],
                    "process": system,
                }
            )
    return rows


def run_text(cfg: dict, workdir: Path) -> dict:
    texts, _, _ = _common.sample_sentences(cfg["n_text"], seed=1)
    reports = _measure("text", TEXT_SYSTEMS, texts, cfg, workdir)
    labels = {k: v[0] for k, v in TEXT_SYSTEMS.items()}
    labels.update({k: v[0] for k, v in TEXT_EXTRA.items()})
    return {
        "n": len(texts),
        **_timing(cfg),
        "rows": _rows(reports, labels, "st", len(texts)),
    }


def run_images(cfg: dict, workdir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _common.write_jpegs(Path(tmp), cfg["n_images"])
        reports = _measure("images", IMAGE_SYSTEMS, paths, cfg, workdir)
        labels = {k: v[0] for k, v in IMAGE_SYSTEMS.items()}
        rows = _rows(reports, labels, "timm", len(paths))
    return {"n": len(paths), **_timing(cfg), "rows": rows}


def run_photos(cfg: dict, workdir: Path) -> dict:
    """The image systems on real photos of several megapixels (Debian wallpapers)."""
    paths = _common.large_photos()[: cfg["n_photos"]]
    sizes = _common.megapixels(paths)
    reports = _measure("photos", PHOTO_SYSTEMS, paths, cfg, workdir, "images")
    labels = {k: v[0] for k, v in PHOTO_SYSTEMS.items()}
    return {
        "n": len(paths),
        **_timing(cfg),
        "megapixels": [min(sizes), float(np.median(sizes)), max(sizes)],
        "files": [Path(p).name for p in paths],
        "rows": _rows(reports, labels, "timm", len(paths)),
    }


def run_avx2(cfg: dict, workdir: Path) -> dict:
    """The text systems with the instruction set capped at AVX2 (see ``AVX2_ENV``)."""
    texts, _, _ = _common.sample_sentences(cfg["n_text"], seed=1)
    reports = _measure("avx2", AVX2_SYSTEMS, texts, cfg, workdir, "text")
    labels = {k: v[0] for k, v in AVX2_SYSTEMS.items()}
    labels.update({k: v[0] for k, v in TEXT_EXTRA.items()})
    rows = _rows(reports, labels, "st", len(texts))
    rows = [row for row in rows if row["key"] in AVX2_SYSTEMS]  # not embetter's cache rows
    capability = {k: r.get("torch_cpu_capability") for k, r in reports.items()}
    return {"n": len(texts), **_timing(cfg), "rows": rows, "torch": capability}


# ------------------------------------------------------------------- render
def _table(result: dict, unit: str, digits: int, reference: str, memory: bool) -> str:
    by_key = {row["key"]: row for row in result["rows"]}
    floor = by_key[reference]["rate"]
    header = ["variant", f"{unit} (median)", "min–max", "vs direct call", "cosine (mean / min)"]
    if memory:
        header += ["page faults / call", "peak RSS MiB"]
    cells = []
    for row in result["rows"]:
        if row["cosine"] is None:
            cos = f"— ({row['dims']} dims)"
        else:
            cos = f"{row['cosine'][0]:.5f} / {row['cosine'][1]:.5f}"
        label = row["label"]
        if row.get("precision"):
            label += f", ran in {row['precision']}"
        cell = [
            label,
            md.number(row["rate"], digits),
            md.spread(row["rates"]),
            md.ratio(row["rate"], floor),
            cos,
        ]
        if memory:
            cell += [md.number(row["page_faults"], 0), md.number(row["peak_rss_mib"], 0)]
        cells.append(cell)
    return md.table(header, cells)


def _versus(ours: dict, peer: dict) -> str:
    """One comparison sentence, a tie when the repeats' ranges overlap."""
    ratio = ours["rate"] / peer["rate"]
    outcome = md.compare(ours["rates"], peer["rates"])
    if outcome == "no spread":
        return f"{ratio:.2f}× the rate of {peer['label']} (one repeat: no spread measured)"
    if outcome == "tie":
        return f"a tie with {peer['label']} ({ratio:.2f}×, within the min–max of the repeats)"
    word = "faster than" if outcome == "a" else "slower than"
    return f"{ratio:.2f}× the rate of {peer['label']} ({word} it beyond the run-to-run spread)"


def _ours_clauses(r: dict, best: str, noun: str = "other sktransfer") -> str:
    """The float32 and other-backend rows against the best peer, with their cosines."""
    parts = []
    keys = (
        ("ours-float32", "`precision='float32'`"),
        ("ours-onnx", "`backend='onnx'`"),
        ("ours-openvino-float32", "`backend='openvino', precision='float32'`"),
        ("ours-openvino", "`backend='openvino'`"),
    )
    for key, what in keys:
        if key in r:
            parts.append(
                f"{what} (ran in {r[key]['precision']}) is {_versus(r[key], r[best])}, "
                f"cosine ≥ {r[key]['cosine'][1]:.5f}"
            )
    return f" Among the {noun} rows, " + "; ".join(parts) + "." if parts else ""


def render_text(text: dict) -> str:
    r = {row["key"]: row for row in text["rows"]}
    peers = ["st", "st-malloc", "embetter", "embetter-cached", "skrub", "skrub-full"]
    best = max(peers, key=lambda k: r[k]["rate"])
    verdict = (
        f"At default settings (ran in {r['ours']['precision']}), sktransfer `TextEncoder` "
        f"(`cache=None`) is {_versus(r['ours'], r[best])}, the fastest peer in this run; "
        f"cosine ≥ {r['ours']['cosine'][1]:.5f} to the direct call's features."
        + _ours_clauses(r, best)
    )
    warm = r["ours-memory-warm"]["rate"] / r["embetter-cached-warm"]["rate"]
    verdict += f" Warm caches: ours serves {warm:,.0f}× as many sentences/s as embetter's."
    return md.section(
        "Throughput: text",
        f"{text['n']} distinct VADER sentences, all-MiniLM-L6-v2, batch 32. Every system ran "
        f"in its own fresh Python process with the same environment: {_procedure(text)}.",
        _table(text, "sentences/s", 0, "st", memory=False),
        verdict,
        [
            "skrub is fitted as its users fit it, on the sentences it then encodes (here the "
            "timed ones); the timed call is its `transform`. Its default reduces to 30 PCA "
            "dimensions, so no cosine applies; `n_components=None` keeps the full embeddings.",
            "sktransfer raises glibc's allocator thresholds on its first `transform`; the "
            "row with the same thresholds set for `SentenceTransformer.encode` through the "
            "environment shows what that alone does for text.",
            "Absolute rates vary between runs and days on a shared host; compare rows within "
            "one run only.",
        ],
    )


def render_images(images: dict) -> str:
    r = {row["key"]: row for row in images["rows"]}
    tuned_peers = ["timm-malloc", "timm-best-malloc"]
    plain_peers = ["timm", "timm-best", "embetter"]
    best_tuned = max(tuned_peers, key=lambda k: r[k]["rate"])
    best_plain = max(plain_peers, key=lambda k: r[k]["rate"])
    verdict = (
        f"With the allocator thresholds raised for everyone, sktransfer `ImageEncoder` at "
        f"default settings (ran in {r['ours']['precision']}) is "
        f"{_versus(r['ours'], r[best_tuned])}, the best peer configuration at those settings. "
        f"With glibc's defaults for everyone (`SKTRANSFER_TUNE_MALLOC=0` for ours), it is "
        f"{_versus(r['ours-untuned'], r[best_plain])}." + _ours_clauses(r, best_tuned)
    )
    emb_mean, emb_min = r["embetter"]["cosine"]
    return md.section(
        "Throughput: images",
        f"{images['n']} JPEG files (220–427 px crops of scikit-learn's sample photos) decoded "
        "from disk, EfficientNet-Lite0 at 224 px, batch 32. Every system ran in its own fresh "
        "Python process with the same environment (plus the `MALLOC_*` variables where the "
        f"label says so): {_procedure(images)}. Page faults are minor faults per timed call; "
        "peak RSS is the process's.",
        _table(images, "images/s", 1, "timm", memory=True),
        verdict,
        [
            "The best plain usage of timm: weights and inputs in channels-last and a "
            "`torch.utils.data.DataLoader` whose 2 worker processes decode and preprocess "
            "while the model runs.",
            "The allocator rows set `MALLOC_MMAP_THRESHOLD_=536870912` and "
            "`MALLOC_TRIM_THRESHOLD_=1073741824`, the values sktransfer sets with `mallopt`.",
            "embetter's `TimmEncoder` never calls `model.eval()`: its features are computed "
            "in training mode (BatchNorm from the statistics of each single image, dropout "
            f"on), hence cosine {emb_mean:.3f} mean / {emb_min:.3f} min to the eval-mode "
            "features. It also encodes one image per forward pass.",
        ],
    )


def render_photos(photos: dict) -> str:
    r = {row["key"]: row for row in photos["rows"]}
    best = max(("timm", "timm-best-malloc", "embetter"), key=lambda k: r[k]["rate"])
    low, mid, high = photos["megapixels"]
    verdict = (
        f"At default settings (ran in {r['ours']['precision']}), sktransfer `ImageEncoder` is "
        f"{_versus(r['ours'], r[best])}, the fastest peer configuration here; decoding every "
        f"pixel instead (`jpeg_draft=False`) it is {_versus(r['ours-full-decode'], r[best])}."
        + _ours_clauses(r, best)
    )
    return md.section(
        "Throughput: large photos",
        f"{photos['n']} JPEG photos of {low:.1f}–{high:.1f} megapixels (median {mid:.1f}) from "
        f"Debian's `{_common.PHOTO_PACKAGES.replace(' ', '` and `')}` packages, decoded from "
        "disk, EfficientNet-Lite0 at 224 px, batch 32. Every system ran in its own fresh "
        "process with the same environment (plus the `MALLOC_*` variables where the label "
        f"says so): {_procedure(photos)}.",
        _table(photos, "images/s", 1, "timm", memory=True),
        verdict,
        [
            "By default sktransfer decodes a JPEG at a reduced scale (libjpeg's DCT scaling, "
            "PIL's draft mode) that keeps both sides at least twice what the model's resize "
            "produces; the cosine column shows what that changes in the features against "
            "the direct call, which decodes every pixel.",
            "The peers decode every pixel: timm's transform and embetter's `ImageLoader` "
            "open the file with PIL and convert it as it is.",
        ],
    )


def _openvino_cap(r: dict) -> str:
    """Whether the cap reached OpenVINO, read from its rates with and without it."""
    capped, free = r["ours-openvino-float32"], r["ours-openvino-float32-uncapped"]
    rates = f"{capped['rate']:.0f} against {free['rate']:.0f} sentences/s"
    head = "OpenVINO's CPU plugin carries its own copy of oneDNN, so the cap is checked: "
    if md.compare(capped["rates"], free["rates"]) == "b":
        return (
            head + f"its row is slower with the cap than without it ({rates}, beyond the "
            "run-to-run spread), so the cap reaches OpenVINO's kernels."
        )
    return (
        head + f"with the cap and without it its rates are not told apart ({rates}), so "
        "its row is at most what an AVX2-only CPU of this kind would give."
    )


def render_avx2(avx2: dict) -> str:
    r = {row["key"]: row for row in avx2["rows"]}
    best = max(("st", "embetter"), key=lambda k: r[k]["rate"])
    # Read back in the capped processes only (the row that lifts the cap would say AVX512).
    capped = {k for k, (_, env) in AVX2_SYSTEMS.items() if env == AVX2_ENV}
    seen = sorted({str(c) for k, c in avx2["torch"].items() if c and k in capped})
    verdict = (
        f"With the instruction sets capped at AVX2, sktransfer `TextEncoder` at default "
        f"settings (ran in {r['ours']['precision']}) is {_versus(r['ours'], r[best])}; "
        "`backend='openvino'` (ran in "
        f"{r['ours-openvino-float32']['precision']}) is "
        f"{_versus(r['ours-openvino-float32'], r[best])}. Goal ≥ 2.0× the direct call: "
        + (
            "met."
            if r["ours-openvino-float32"]["rate"] >= 2.0 * r["st"]["rate"]
            else "not met under this emulation."
        )
    )
    env = " ".join(f"`{k}={v}`" for k, v in AVX2_ENV.items())
    procedure = _procedure(avx2)
    return md.section(
        "Throughput: text, AVX-512 switched off (an AVX2-only CPU, emulated)",
        f"{avx2['n']} distinct VADER sentences, all-MiniLM-L6-v2, batch 32, every system in "
        f"its own fresh process with {env}: torch's own kernels (its CPU capability read "
        f"back in each process: {', '.join(seen) or 'not loaded'}), oneDNN and MKL are "
        "capped at AVX2 and bfloat16 is off, as on a CPU without AVX-512 (except the row "
        f"that lifts the cap). {procedure[0].upper()}{procedure[1:]}.",
        _table(avx2, "sentences/s", 0, "st", memory=False),
        verdict,
        [
            "An emulation, not an AVX2-only machine: the cores, caches and memory are those "
            "of the CPU named below; only the instruction sets are capped.",
            "`backend='onnx'` is not run here: ONNX Runtime picks its kernels from the CPU's "
            "instruction set and has no variable to cap it, so its row would not be an "
            "AVX2 figure.",
            _openvino_cap(r),
        ],
    )


def render(text: dict | None, images: dict | None) -> str:
    return "\n\n".join(
        s for s in (text and render_text(text), images and render_images(images)) if s
    )
