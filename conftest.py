"""Settings for every test and doctest: no network, quiet tokenizers."""

import os

# Tests and doctests never reach for the network: the Hub is skipped, so a
# missing model fails at once instead of after the libraries' retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config):
    # `pytest -m fuzz` is the long, nightly-style fuzzing run: choose its profile
    # before tests/test_fuzz.py is imported (hypothesis fixes settings at import).
    if (config.getoption("markexpr", "") or "").strip() == "fuzz":
        os.environ.setdefault("SKTRANSFER_FUZZ_PROFILE", "nightly")


# Doctests that load a real data set run where it is installed and are skipped,
# with the reason, where it is not: no test downloads a data set.
_DATA_DOCTESTS = {
    "sktransfer.datasets._fashion_mnist.load_fashion_mnist": "_fashion_mnist",
    "sktransfer.datasets._vader.load_vader": "_vader",
}


def pytest_collection_modifyitems(config, items):
    import importlib

    import pytest

    gpu_reason = None
    for item in items:
        if item.name in _DATA_DOCTESTS:
            loader = importlib.import_module(f"sktransfer.datasets.{_DATA_DOCTESTS[item.name]}")
            reason = loader._not_installed_reason()
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=f"{reason} (tests never download)"))
        if item.get_closest_marker("gpu") is not None:
            if gpu_reason is None:
                import torch

                gpu_reason = "" if torch.cuda.is_available() else "needs a CUDA GPU"
            if gpu_reason:
                item.add_marker(pytest.mark.skip(reason=gpu_reason))
