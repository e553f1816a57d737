"""Other libraries' progress bars and logs stay out of our calls, and only out of them.

Loading a model (frozen encoders, fine-tuners' bodies) and saving or loading a
fine-tuner print nothing from transformers, huggingface_hub,
sentence-transformers or timm; the libraries' own switches (progress bars,
logger levels) are back as the user left them once the call returns, after an
error too, and with several threads inside at once.
"""

from __future__ import annotations

import importlib
import logging
import threading

import huggingface_hub.constants
import pytest
import transformers.utils.logging as transformers_logging
from huggingface_hub.utils import (
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
)

from sktransfer import TextEncoder
from sktransfer._quiet import quiet_libraries
from sktransfer.finetune import TextClassifier, load
from tests.finetune_helpers import (
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    text_estimator,
    toy_texts,
)

# What the libraries' bars and loggers print; our own bars are off (verbose=0 /
# progress=False) or not shown (stderr is not a terminal under pytest).
THIRD_PARTY = ("Loading weights", "Writing model shards", "%|", "it/s]")
LOGGERS = ("transformers", "sentence_transformers", "huggingface_hub", "timm")

pytestmark = pytest.mark.skipif(
    huggingface_hub.constants.HF_HUB_DISABLE_PROGRESS_BARS is not None,
    reason="HF_HUB_DISABLE_PROGRESS_BARS is set: the Hub's switch is fixed by the environment",
)


def hub_states() -> dict:
    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module, not the class

    return dict(hub_tqdm.progress_bar_states)


def switches() -> dict:
    """Every switch quiet_libraries touches, as it is now."""
    return {
        "transformers bars": transformers_logging.is_progress_bar_enabled(),
        "hub bars off": are_progress_bars_disabled(),
        "hub states": hub_states(),
        **{f"logger {name}": logging.getLogger(name).level for name in LOGGERS},
    }


@pytest.fixture(autouse=True)
def users_settings_back():
    """Whatever a test sets as 'the user's settings' is undone afterwards."""
    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module, not the class

    before_bars = transformers_logging.is_progress_bar_enabled()
    before_states = hub_states()
    before_levels = {name: logging.getLogger(name).level for name in LOGGERS}
    yield
    if before_bars:
        transformers_logging.enable_progress_bar()
    else:
        transformers_logging.disable_progress_bar()
    hub_tqdm.progress_bar_states.clear()
    hub_tqdm.progress_bar_states.update(before_states)
    for name, level in before_levels.items():
        logging.getLogger(name).setLevel(level)


def assert_no_third_party_output(captured) -> None:
    printed = captured.out + captured.err
    for text in THIRD_PARTY:
        assert text not in printed, f"{text!r} printed:\n{printed}"


# --------------------------------------------------------------- our calls
def test_text_encoder_fit_prints_nothing_from_the_libraries(tiny_text_model, capfd):
    capfd.readouterr()
    before = switches()
    assert before["transformers bars"] and not before["hub bars off"]  # the libraries' defaults
    encoder = TextEncoder(tiny_text_model, cache=None, progress=False).fit(["a great movie"])
    assert encoder.transform(["a great movie"]).shape == (1, 32)
    assert_no_third_party_output(capfd.readouterr())
    assert switches() == before


def test_fine_tuner_fit_save_and_load_print_nothing_from_the_libraries(
    tiny_text_model, tmp_path, capfd
):
    capfd.readouterr()
    before = switches()
    X, y = toy_texts(8)
    clf = text_estimator(TextClassifier, tiny_text_model, epochs=1, verbose=0).fit(X, y)
    clf.save(tmp_path / "saved")
    loaded = load(tmp_path / "saved", device="cpu")
    assert (loaded.predict(X) == clf.predict(X)).all()
    captured = capfd.readouterr()
    assert_no_third_party_output(captured)
    assert captured.out == captured.err == ""
    assert switches() == before


def test_a_user_who_turned_the_bars_off_keeps_them_off(tiny_text_model, capfd):
    transformers_logging.disable_progress_bar()  # turns the Hub's off too
    logging.getLogger("sentence_transformers").setLevel(logging.CRITICAL)
    before = switches()
    assert not before["transformers bars"] and before["hub bars off"]
    TextEncoder(tiny_text_model, cache=None, progress=False).fit()
    assert_no_third_party_output(capfd.readouterr())
    assert switches() == before


# ------------------------------------------------------ the context manager
def test_inside_the_switches_are_off_and_come_back_exactly():
    disable_progress_bars("huggingface_hub.some_group")  # a per-group setting of the user
    logging.getLogger("transformers").setLevel(logging.INFO)
    before = switches()
    with quiet_libraries():
        assert not transformers_logging.is_progress_bar_enabled()
        assert are_progress_bars_disabled()
        for name in ("transformers", "huggingface_hub"):
            assert logging.getLogger(name).getEffectiveLevel() == logging.ERROR
        with quiet_libraries():  # nested: still off, nothing restored on the inner exit
            pass
        assert are_progress_bars_disabled()
    assert switches() == before
    assert before["hub states"] == {"huggingface_hub.some_group": False}


def test_switches_come_back_after_an_error():
    enable_progress_bars()
    before = switches()
    with pytest.raises(RuntimeError, match="failed inside"), quiet_libraries():
        assert are_progress_bars_disabled()
        raise RuntimeError("failed inside")
    assert switches() == before


def test_overlapping_threads_restore_when_the_last_one_leaves():
    before = switches()
    first_inside, second_inside, first_left = (threading.Event() for _ in range(3))
    seen = {}

    def first():
        with quiet_libraries():
            first_inside.set()
            second_inside.wait(10)
        first_left.set()

    def second():
        first_inside.wait(10)
        with quiet_libraries():
            second_inside.set()
            first_left.wait(10)
            seen["bars after the first left"] = transformers_logging.is_progress_bar_enabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen == {"bars after the first left": False}
    assert switches() == before


def test_loading_does_not_replace_sys_stderr(tiny_text_model, monkeypatch):
    """Swapping the process's stderr from one thread would hide other threads' output."""
    import sys

    from sktransfer import _hub

    streams = []
    original = _hub._load_sentence_transformer

    def spy(*args, **kwargs):
        streams.append(sys.stderr)
        return original(*args, **kwargs)

    monkeypatch.setattr(_hub, "_load_sentence_transformer", spy)
    stderr = sys.stderr
    _hub.load_sentence_transformer(tiny_text_model, device="cpu")
    assert streams == [stderr]
