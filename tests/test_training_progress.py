"""What a fine-tuning fit shows while it runs (``verbose``), and the learning rates it reports.

One progress bar covers all of a fit's work (the frozen body's pass over the
data included); ``verbose="auto"`` shows it only where someone watches; the
learning rate printed and kept in ``history_`` is the one the epoch used.
"""

from __future__ import annotations

import io
import math
import re
import sys
import types

import pytest
import tqdm.auto
import tqdm.std
from sklearn.utils._param_validation import InvalidParameterError

from sktransfer.finetune import ImageClassifier, TextClassifier, _callbacks, _loop
from tests.finetune_helpers import (
    image_estimator,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    spy_on_loops,
    text_estimator,
    toy_images,
    toy_texts,
)


class RecordingBar(tqdm.std.tqdm):
    """A tqdm bar drawn into a buffer that reports its counts when it closes."""

    closed: list[dict] = []

    def __init__(self, *args, **kwargs):
        kwargs["file"] = io.StringIO()
        super().__init__(*args, **kwargs)

    def close(self):
        if not self.disable:  # tqdm closes once (again from __del__)
            RecordingBar.closed.append(
                {"total": self.total, "n": self.n, "delay": self.delay, "postfix": self.postfix}
            )
        super().close()


@pytest.fixture
def bars(monkeypatch) -> list[dict]:
    """The bars the fit opened, in order: total, batches done, delay and final postfix."""
    RecordingBar.closed = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    return RecordingBar.closed


# ------------------------------------------------------------- the bar's total
def test_one_bar_counts_the_body_pass_and_every_epoch(tiny_text_model, bars, monkeypatch):
    """Head-only training computes the body's features first: that pass is in the bar."""
    loops = spy_on_loops(monkeypatch)
    X, y = toy_texts(40)
    est = text_estimator(
        TextClassifier,
        tiny_text_model,
        trainable_blocks=0,
        epochs=3,
        batch_size=8,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=5,
        verbose=2,
    ).fit(X, y)
    (loop,) = loops
    assert loop.features_cached and est.n_epochs_ == 3
    # 30 training samples: 4 batches; 10 validation samples: 2 batches.
    body_pass = 4 + 2
    per_epoch = 4 + 1  # training steps, then one head pass over the validation features
    (bar,) = bars
    assert bar["total"] == bar["n"] == body_pass + 3 * per_epoch
    assert bar["postfix"] == "epoch=3/3, loss={:.4f}, accuracy={:.4f}".format(
        est.history_[-1]["train_loss"], est.history_[-1]["valid_score"]
    )


def test_the_bar_counts_validation_batches_when_the_body_trains(tiny_image_weights, bars):
    X, y = toy_images(20)
    est = image_estimator(
        ImageClassifier,
        tiny_image_weights,
        trainable_blocks=1,
        epochs=2,
        batch_size=4,
        early_stopping=True,
        validation_fraction=0.2,
        verbose=2,
    ).fit(X, y)
    assert est.n_epochs_ == 2
    (bar,) = bars
    # 16 training samples: 4 steps; 4 validation samples: 1 batch; no body pass.
    assert bar["total"] == bar["n"] == 2 * (4 + 1)


def test_a_bar_that_early_stopping_cuts_short_ends_full(tiny_text_model, bars, monkeypatch):
    original = _callbacks.EarlyStopping.update

    def stop_after_two_epochs(self, epoch, score, net):
        original(self, epoch, score, net)
        return epoch >= 1

    monkeypatch.setattr(_callbacks.EarlyStopping, "update", stop_after_two_epochs)
    X, y = toy_texts(40)
    est = text_estimator(
        TextClassifier,
        tiny_text_model,
        trainable_blocks=0,
        epochs=6,
        early_stopping=True,
        validation_fraction=0.25,
        verbose=2,
    ).fit(X, y)
    assert est.n_epochs_ == 2
    (bar,) = bars
    assert bar["total"] == bar["n"] == (4 + 2) + 2 * (4 + 1)


# --------------------------------------------------------- the learning rate
def test_printed_and_recorded_learning_rate_is_the_one_the_epoch_used(
    tiny_text_model, monkeypatch, capsys
):
    used = []  # the head's rate in every optimisation step

    original = _loop.TrainingLoop.train_step

    def train_step(loop, train, rows):
        head = max(loop.optimizer.param_groups, key=lambda group: group["block"])
        used.append(head["lr"])
        return original(loop, train, rows)

    monkeypatch.setattr(_loop.TrainingLoop, "train_step", train_step)
    X, y = toy_texts(16)
    est = text_estimator(
        TextClassifier, tiny_text_model, trainable_blocks=1, epochs=3, batch_size=8, verbose=1
    ).fit(X, y)
    last_step_of_each_epoch = used[1::2]  # 2 steps per epoch
    assert len(used) == 6 and last_step_of_each_epoch[-1] > 0
    recorded = [record["learning_rates"]["head"] for record in est.history_]
    assert recorded == last_step_of_each_epoch
    printed = [float(rate) for rate in re.findall(r"lr=(\S+)", capsys.readouterr().out)]
    assert printed == pytest.approx(last_step_of_each_epoch, rel=5e-3)


# ------------------------------------------------------------ what is shown
def test_verbose_1_prints_one_line_per_epoch_and_no_bar(tiny_text_model, bars, capfd):
    X, y = toy_texts(16)
    text_estimator(TextClassifier, tiny_text_model, epochs=2, verbose=1).fit(X, y)
    out, err = capfd.readouterr()
    assert bars == []
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [["epoch", "1"], ["epoch", "2"]]
    assert err == ""


def test_verbose_0_prints_nothing(tiny_text_model, capfd):
    capfd.readouterr()
    X, y = toy_texts(16)
    text_estimator(TextClassifier, tiny_text_model, epochs=2, verbose=0).fit(X, y)
    assert capfd.readouterr() == ("", "")


def test_auto_prints_nothing_where_nobody_watches(tiny_text_model, capfd):
    """Under pytest's capture stderr is a file, not a terminal: nothing is shown."""
    capfd.readouterr()
    X, y = toy_texts(16)
    est = text_estimator(TextClassifier, tiny_text_model, epochs=2, verbose="auto")
    est.fit(X, y)
    assert capfd.readouterr() == ("", "")
    assert TextClassifier().get_params()["verbose"] == "auto"  # the default


@pytest.mark.parametrize("watching", [True, False])
def test_auto_shows_the_bar_after_a_delay_where_someone_watches(
    tiny_text_model, bars, monkeypatch, watching
):
    monkeypatch.setattr(_callbacks, "someone_watching", lambda: watching)
    X, y = toy_texts(16)
    text_estimator(TextClassifier, tiny_text_model, epochs=2, verbose="auto").fit(X, y)
    if watching:
        (bar,) = bars
        assert bar["delay"] == _callbacks.AUTO_PROGRESS_DELAY == 2.0
        assert bar["n"] == bar["total"]
    else:
        assert bars == []


def test_someone_watching_a_terminal_or_a_notebook(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file, a pipe
    assert not _callbacks.someone_watching()
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert _callbacks.someone_watching()
    monkeypatch.setattr(sys, "stderr", io.StringIO())

    class ZMQInteractiveShell:
        pass

    class ColabShell(ZMQInteractiveShell):
        pass

    for shell, expected in ((None, False), (object(), False), (ColabShell(), True)):
        ipython = types.SimpleNamespace(get_ipython=lambda shell=shell: shell)
        monkeypatch.setitem(sys.modules, "IPython", ipython)
        assert _callbacks.someone_watching() is expected


@pytest.mark.parametrize("verbose", ["loud", -1, 0.5])
def test_verbose_is_validated_in_fit(tiny_text_model, verbose):
    X, y = toy_texts(8)
    est = text_estimator(TextClassifier, tiny_text_model, verbose=verbose)
    with pytest.raises(InvalidParameterError, match="'verbose' parameter of TextClassifier"):
        est.fit(X, y)


def test_the_bar_total_formula_matches_the_batches(tiny_text_model, monkeypatch):
    """n_batches agrees with the batches the loop runs, for uneven splits too."""
    counted = []
    original = _callbacks.TrainingProgress.close

    def close(progress, finished):
        counted.append((progress.bar.total, progress.bar.n))
        original(progress, finished)

    monkeypatch.setattr(_callbacks.TrainingProgress, "close", close)
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    X, y = toy_texts(23)
    for blocks in (0, 1):
        text_estimator(
            TextClassifier,
            tiny_text_model,
            trainable_blocks=blocks,
            batch_size=5,
            epochs=2,
            early_stopping=True,
            validation_fraction=0.3,
            n_iter_no_change=5,
            verbose=2,
        ).fit(X, y)
    n_valid = math.ceil(0.3 * 23)
    n_train_batches, n_valid_batches = math.ceil((23 - n_valid) / 5), math.ceil(n_valid / 5)
    cached = n_train_batches + n_valid_batches + 2 * (n_train_batches + 1)
    trained = 2 * (n_train_batches + n_valid_batches)
    assert counted == [(cached, cached), (trained, trained)]
