"""Peak memory (RSS) of each library encoding the same sentences in a fresh process.

Each library runs in its own subprocess (``_encode_worker``): load the model,
encode 8 warm-up sentences, read the peak RSS, encode every sentence in one
call, read the peak RSS again. The features are kept for the accuracy part.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import _common
from benchmarks import _markdown as md
from benchmarks._encode_worker import LIBRARIES


def corpus(cfg: dict):
    """The sentences every library encodes: texts, labels, domains."""
    return _common.sample_sentences(cfg["n_sentences"], seed=0)


def corpus_features(cfg: dict, workdir: Path, rounds: int = 1) -> dict:
    """Run (or reuse, within one suite run) the encoding subprocesses of each library.

    ``rounds`` fresh processes per library, the libraries interleaved round by
    round; the features kept are the first round's.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    sentences_file = workdir / f"corpus-{cfg['n_sentences']}.json"
    if not sentences_file.exists():
        texts, _, _ = corpus(cfg)
        sentences_file.write_text(json.dumps(texts))
    runs = {library: [] for library in LIBRARIES}
    for round_ in range(rounds):
        for library in LIBRARIES:
            stem = (
                workdir / f"{library}-{cfg['n_sentences']}"
                if round_ == 0
                else (workdir / f"{library}-{cfg['n_sentences']}-round{round_}")
            )
            report = stem.with_suffix(".json")
            if not report.exists():
                out = _common.run_worker(
                    "benchmarks._encode_worker",
                    [library, str(sentences_file), str(stem) + ".npy"],
                )
                report.write_text(out.strip().splitlines()[-1])
            runs[library].append(json.loads(report.read_text()))
    features = {lib: str(workdir / f"{lib}-{cfg['n_sentences']}.npy") for lib in LIBRARIES}
    return {
        lib: {
            **runs[lib][0],
            "features": features[lib],
            "peaks": [r["peak_mib"] for r in runs[lib]],
        }
        for lib in LIBRARIES
    }


def run(cfg: dict, workdir: Path) -> dict:
    import numpy as np

    results = corpus_features(cfg, workdir, rounds=cfg.get("rounds", 1))
    ours = np.load(results["sktransfer"]["features"])
    for r in results.values():
        feats = np.load(r["features"])
        r["cosine"] = _common.cosine(feats, ours) if feats.shape == ours.shape else None
    return {"n": cfg["n_sentences"], "rounds": cfg.get("rounds", 1), "libraries": results}


def render(result: dict) -> str:
    libs = result["libraries"]
    cells = []
    for library, label in LIBRARIES.items():
        r = libs[library]
        cos = "—" if r["cosine"] is None else f"{r['cosine'][0]:.5f} / {r['cosine'][1]:.5f}"
        cells.append(
            [
                label,
                md.number(r["peak_mib"], 0),
                md.spread(r.get("peaks", [r["peak_mib"]])),
                md.number(r["loaded_mib"], 0),
                md.number(r["peak_mib"] - r["loaded_mib"], 0),
                md.number(r["encode_s"]),
                cos,
            ]
        )
    ours = libs["sktransfer"]["peak_mib"]
    peers = [k for k in LIBRARIES if k != "sktransfer"]
    lightest = min(peers, key=lambda k: libs[k]["peak_mib"])
    diff = ours - libs[lightest]["peak_mib"]
    ours_peaks = libs["sktransfer"].get("peaks", [ours])
    peer_peaks = libs[lightest].get("peaks", [libs[lightest]["peak_mib"]])
    outcome = md.compare(peer_peaks, ours_peaks)  # "a": the peer uses more
    speed = libs[lightest]["encode_s"] / libs["sktransfer"]["encode_s"]
    if outcome in ("tie", "no spread"):
        verdict = (
            f"A tie: sktransfer peaks {diff:+.0f} MiB from the lightest peer "
            f"({LIBRARIES[lightest]}), within the spread of the {result['rounds']} rounds"
            if len(ours_peaks) >= 2
            else f"sktransfer peaks {diff:+.0f} MiB from the lightest peer "
            f"({LIBRARIES[lightest]}); one round only, so no spread was measured"
        ) + f"; it encodes the {result['n']:,} sentences {speed:.2f}× as fast."
    elif outcome == "a":
        verdict = (
            f"sktransfer peaks {-diff:.0f} MiB below the lightest peer "
            f"({LIBRARIES[lightest]}), beyond the spread of the rounds, and encodes the "
            f"{result['n']:,} sentences {speed:.2f}× as fast."
        )
    else:
        verdict = (
            f"A peer wins: {LIBRARIES[lightest]} peaks {diff:.0f} MiB "
            f"({100 * diff / libs[lightest]['peak_mib']:.0f}%) below sktransfer, beyond the "
            "spread of the rounds. Ours keeps a copy of every vector in its default in-memory "
            "cache for the next call; `cache=None` drops that copy."
        )
    cache_mib = result["n"] * 384 * 4 / 2**20
    return md.section(
        "Memory",
        f"Peak resident memory (`getrusage` `ru_maxrss`) of a fresh Python process per library "
        f"encoding the same {result['n']:,} distinct VADER sentences in one call, batch 32, "
        f"float32; {result['rounds']} rounds of one fresh process per library (peak RSS, "
        "after load and encode s are the first round's; min–max over the rounds). The "
        "features are compared with sktransfer's (cosine).",
        md.table(
            [
                "library",
                "peak RSS MiB",
                "peak min–max",
                "after load MiB",
                "added by encoding MiB",
                "encode s",
                "cosine to ours (mean / min)",
            ],
            cells,
        ),
        verdict,
        [
            f"sktransfer's in-memory cache holds the {result['n']:,} vectors (384 float32 "
            f"each, {cache_mib:.0f} MiB of data) after the call, so that the next `transform` "
            "of the same sentences (another fold, another fit) encodes nothing.",
            "skrub is used as its users use it, `fit_transform` on the sentences (its PCA to "
            "30 dimensions is fitted on them), so no cosine applies.",
            "embetter's `cached` is not run here: it wraps this same `SentenceEncoder` call "
            "and adds a disk store (its cold cost is in the text throughput table).",
        ],
    )
