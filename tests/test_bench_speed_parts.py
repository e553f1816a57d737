"""The cold-start and training-precision benchmarks' tables and verdicts (fake results)."""

from benchmarks import cold_start, train_precision

META = {
    "command": "python -m benchmarks.x",
    "code": "abc",
    "date": "today",
    "cpu": "Some CPU",
    "cpu_features": "AVX2 yes, AVX-512 BF16 no, AMX BF16 no",
}


def _cold(seconds: dict) -> dict:
    results = {}
    for group, systems in (("text", cold_start.TEXT), ("image", cold_start.IMAGE)):
        for key in systems:
            s = seconds.get(f"{group}/{key}", [5.0, 5.1, 5.2])
            results[f"{group}/{key}"] = [{"process_s": v, "inside_s": v - 1} for v in s]
    results["floors/floor-torch"] = [{"process_s": 2.0, "inside_s": 1.0}] * 3
    floor = seconds.get("floors/floor-torch-sklearn", [3.0, 3.0, 3.0])
    results["floors/floor-torch-sklearn"] = [{"process_s": v, "inside_s": v - 1} for v in floor]
    return {"rounds": 3, "results": results}


def _cold_table(**seconds) -> str:
    """The rendered cold-start table; ``text__ours=[...]`` sets ``text/ours``'s seconds."""
    return cold_start.render(_cold({k.replace("__", "/"): v for k, v in seconds.items()}), META)


EMBETTER = [5.0, 5.1, 5.2]


def test_cold_start_goal_is_met_only_at_half_of_embetters_time():
    text = _cold_table(text__ours=[2.0, 2.1, 2.2], text__embetter=EMBETTER)
    assert "text, default settings: ours takes 0.41× embetter's time, faster than" in text
    assert "(goal ≤ 0.5×: met)" in text
    assert "image, default settings: ours takes 1.00× embetter's time, a tie with" in text
    assert "(goal ≤ 0.5×: not met)" in text
    assert "AVX-512 BF16 no" in text


def test_cold_start_judges_the_onnx_start_on_its_own():
    text = _cold_table(**{"image__ours-onnx": [1.5, 1.6, 1.7], "image__embetter": EMBETTER})
    assert "image, backend='onnx': ours takes 0.31× embetter's time, faster than" in text
    assert "text, backend='onnx': ours takes 1.00× embetter's time" in text
    assert "export stored earlier" in text and "first run, exports" in text


def test_cold_start_judges_the_openvino_start_and_names_the_torch_floor():
    text = _cold_table(**{"text__ours-openvino": [1.0, 1.1, 1.2], "text__embetter": EMBETTER})
    assert "text, backend='openvino': ours takes 0.22× embetter's time, faster than" in text
    assert "image, backend='openvino': ours takes 1.00× embetter's time" in text
    assert "`backend='onnx'` and `'openvino'` rows" in text
    # The floors of a torch backend, judged against the goal for each modality.
    assert (
        "text, the floors of a torch backend: importing torch and scikit-learn takes 0.59× "
        "embetter's time, importing sentence-transformers 1.00× (above the goal by itself)"
    ) in text
    low = _cold_table(**{"floors__floor-torch-sklearn": [2.0] * 3, "image__floor-timm": [2.4] * 3})
    assert (
        "image, the floors of a torch backend: importing torch and scikit-learn takes 0.39× "
        "embetter's time, importing timm 0.47×."
    ) in low
    assert "*floor*: `import torch, sklearn.base`" in low


def _trained(trained_in: str, fit_s: list, loss: list) -> list:
    return [
        {
            "trained_in": trained_in,
            "fit_s": f,
            "epoch_s": [f / 3] * 3,
            "loss": loss,
            "accuracy": 0.8,
        }
        for f in fit_s
    ]


def test_training_precision_verdict_names_the_speedup_and_the_loss_gap():
    result = {
        "sizes": {"text": (10, 10, 3)},
        "rounds": 3,
        "threads": 2,
        "results": {
            "text": {
                "float32": _trained("float32", [10.0, 10.5, 11.0], [0.7, 0.5, 0.3]),
                "auto": _trained("bfloat16", [6.0, 6.2, 6.4], [0.7, 0.52, 0.3]),
            }
        },
    }
    text = train_precision.render(result, META)
    assert "text: bfloat16 training 1.69× float32's speed, faster than float32 beyond" in text
    assert "0.0200 (first epoch 0.700)" in text


def test_training_precision_says_when_the_cpu_has_no_bfloat16():
    result = {
        "sizes": {"image": (10, 10, 3)},
        "rounds": 2,
        "threads": 2,
        "results": {
            "image": {
                "float32": _trained("float32", [10.0, 10.5], [0.7, 0.5, 0.3]),
                "auto": _trained("float32", [10.1, 10.4], [0.7, 0.5, 0.3]),
            }
        },
    }
    text = train_precision.render(result, META)
    assert "image: this CPU has no native bfloat16, so `'auto'` trained in float32" in text


def _speed_rows(systems: dict, rates: dict, precision: dict) -> list[dict]:
    rows = []
    for key, (label, _) in systems.items():
        rate = rates.get(key, 100.0)
        rows.append(
            {
                "key": key,
                "label": label,
                "rates": [rate * 0.99, rate, rate * 1.01],
                "rate": rate,
                "cosine": [0.999, 0.99] if key != "embetter" else [0.41, 0.32],
                "dims": 1280,
                "precision": precision.get(key),
                "page_faults": 10.0,
                "peak_rss_mib": 1000.0,
            }
        )
    return rows


def test_photo_table_compares_the_default_and_the_full_decode_with_the_best_peer():
    from benchmarks import throughput
    from benchmarks._speed_worker import PHOTO_SYSTEMS

    rates = {"timm": 5.0, "timm-best-malloc": 20.0, "embetter": 9.0, "ours": 60.0}
    rates["ours-full-decode"] = 19.9
    precision = {"ours": "bfloat16", "ours-full-decode": "bfloat16", "ours-onnx": "float32"}
    photos = {
        "n": 21,
        "repeats": 3,
        "megapixels": [1.3, 4.1, 17.9],
        "files": [],
        "rows": _speed_rows(PHOTO_SYSTEMS, rates, precision),
    }
    text = throughput.render_photos(photos)
    assert "21 JPEG photos of 1.3–17.9 megapixels (median 4.1)" in text
    assert "ran in bfloat16), sktransfer `ImageEncoder` is 3.00× the rate of timm, channels" in text
    assert "(`jpeg_draft=False`) it is a tie with timm, channels-last" in text
    assert "`backend='onnx'` (ran in float32) is 5.00× the rate" in text
    assert "| sktransfer `ImageEncoder(backend='onnx')`, `cache=None`, ran in float32 " in text


def test_avx2_table_names_the_cap_and_judges_the_goal_on_the_openvino_row():
    from benchmarks import throughput
    from benchmarks._speed_worker import AVX2_SYSTEMS

    rates = {"st": 200.0, "embetter": 190.0, "ours": 260.0, "ours-openvino-float32": 360.0}
    precision = {"ours": "float32", "ours-openvino-float32": "float32"}
    avx2 = {
        "n": 256,
        "repeats": 3,
        "rows": _speed_rows(AVX2_SYSTEMS, rates, precision),
        "torch": {"st": "AVX2", "ours": "AVX2", "ours-openvino-float32-uncapped": "AVX512"},
    }
    text = throughput.render_avx2(avx2)
    assert "`ATEN_CPU_CAPABILITY=avx2`" in text and "read back in each process: AVX2)" in text
    assert "`backend='openvino'` (ran in float32) is 1.80× the rate of" in text
    assert "not met under this emulation" in text
    # The same system with the cap lifted (100 by default here) is not slower.
    assert "the cap lifted (AVX-512 on)" in text
    assert "with the cap and without it its rates are not told apart (360 against 100" in text
    assert "One untimed call, then 3 timed calls (median and min–max)." in text
    rates["ours-openvino-float32"] = 400.0
    rates["ours-openvino-float32-uncapped"] = 500.0
    avx2["rows"] = _speed_rows(AVX2_SYSTEMS, rates, precision)
    avx2["rounds"] = 2
    text = throughput.render_avx2(avx2)
    assert "Goal ≥ 2.0× the direct call: met." in text
    assert "slower with the cap than without it (400 against 500 sentences/s, beyond" in text
    assert "In each of 2 rounds a new process per system" in text


def _rewrites(rates: dict) -> dict:
    results = {}
    for precision, ran_in in (("auto", "bfloat16"), ("float32", "float32")):
        results[precision] = {
            "rates": {
                f"{name}/{step}": rates.get(f"{precision}/{name}/{step}", [10.0, 10.5, 11.0])
                for name in ("small", "photos")
                for step in range(4)
            },
            "cosines": {
                f"{name}/{step}": [1.0, 1.0] if ran_in == "float32" else [0.999, 0.998]
                for name in ("small", "photos")
                for step in range(4)
            },
            "ran_in": ran_in,
            "n": {"small": 64, "photos": 21},
            "megapixels": [1.3, 17.9],
        }
    return {"config": {"rounds": 3}, "results": results}


def test_rewrites_table_judges_each_step_precision_and_input_on_its_own():
    from benchmarks import rewrites

    text = rewrites.render(
        _rewrites(
            {
                "auto/small/2": [14.0, 15.0, 16.0],
                "auto/small/3": [14.0, 15.0, 16.0],
                "float32/photos/3": [9.0, 9.5, 9.8],
            }
        ),
        META,
    )
    assert (
        "bfloat16, small JPEGs: step 1 1.00× step 0 (a tie (within the min–max of the rounds)), "
        "step 2 1.43× step 1 (faster beyond the run-to-run spread), step 3 1.00× step 2 (a tie"
    ) in text
    assert "all three 1.43× none (faster beyond" in text
    assert "float32, photos: step 1 1.00× step 0" in text
    assert "step 3 0.90× step 2 (slower beyond the run-to-run spread), all three 0.90× none" in text
    assert "+ activations fused (default)" in text and "the network as loaded" in text
    assert "64 small JPEG files" in text and "1.3–17.9 megapixels" in text
    assert "AVX-512 BF16 no" in text


def _split_result(fastest: tuple, default: tuple) -> dict:
    rates = {}
    for threads in (1, 2):
        for workers in (1, 2, 3):
            for ahead in (0, 1):
                for name in ("small", "photos"):
                    rate = 300.0 if (threads, workers, ahead) == fastest else 100.0
                    rates[f"{name}/{threads}/{workers}/{ahead}"] = [rate, rate + 5, rate - 5]
    one = {
        "rates": rates,
        "default": list(default),
        "precision": "bfloat16",
        "n": {"small": 64, "photos": 21},
        "megapixels": [1.3, 17.9],
    }
    return {"config": {"rounds": 3}, "results": {"torch": one, "onnx": one}}


def test_thread_split_names_the_default_and_the_fastest_split():
    from benchmarks import thread_split

    text = thread_split.render(_split_result((2, 2, 0), (2, 2, 0)), META)
    rows = [[c.strip() for c in line.split("|")[2:5]] for line in text.splitlines() if "`" in line]
    assert rows.count(["2", "2", "between batches (default)"]) == 2  # torch and onnx
    assert "torch, small JPEGs: the default split is the fastest" in text
    text = thread_split.render(_split_result((2, 3, 1), (2, 2, 0)), META)
    assert (
        "torch, photos: the default split is slower than 2 forward / 3 decoding threads, "
        "decoding ahead (100.0 vs 300.0 images/s)" in text
    )
    text = thread_split.render(_split_result((2, 2, 1), (2, 2, 0)), META)
    assert (
        "at the default split, decoding between batches is slower than decoding ahead "
        "beyond the run-to-run spread (100.0 vs 300.0 images/s)" in text
    )


def test_throughput_rounds_alternate_the_order_and_pool_the_timed_calls(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from benchmarks import _common, throughput

    order = []

    def fake_worker(module, args, extra_env=None):
        system, _, report = args
        order.append(system)
        seconds = [len(order) * 1.0]
        Path(report).write_text(
            json.dumps({"rows": {system: {"seconds": seconds}}, "round": len(order)})
        )

    monkeypatch.setattr(_common, "run_worker", fake_worker)
    systems = {"a": ("A", {}), "b": ("B", {}), "c": ("C", {})}
    reports = throughput._measure("images", systems, ["x"], {"repeats": 1, "rounds": 3}, tmp_path)
    assert order == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert list(reports) == ["a", "b", "c"]
    assert reports["a"]["rows"]["a"]["seconds"] == [1.0, 6.0, 7.0]
    assert reports["c"]["round"] == 3  # the first round's report, its seconds pooled
    assert "6 timed calls" in throughput._procedure({"repeats": 3, "rounds": 2})
    assert throughput._procedure({"repeats": 3}) == (
        "one untimed call, then 3 timed calls (median and min–max)"
    )
