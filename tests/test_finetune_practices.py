"""The fine-tuning practices: freezing, gradual unfreezing, layer-wise learning rates,
early stopping, class and sample weights, and image augmentation.

Each test watches what the shared training loop really does (parameters, BatchNorm
buffers, module modes, optimizer groups, batches) on tiny models.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.utils.class_weight import compute_sample_weight
from torch import nn

from sktransfer._adapters.image import ImageAdapter
from sktransfer.finetune import ImageClassifier, ImageRegressor, TextClassifier, _metrics
from sktransfer.finetune._callbacks import EarlyStopping, FreezeSchedule
from sktransfer.finetune._loop import (
    TrainingLoop,
    layer_decay_groups,
    warmup_then_linear_decay,
)
from tests.finetune_helpers import (
    image_estimator,
    one_torch_thread,  # noqa: F401  (an autouse fixture)
    spy_on_loops,
    state_copy,
    text_estimator,
    toy_images,
    toy_texts,
)


def pretrained_text_body(model: str) -> dict:
    """The tiny BERT's weights as the fine-tuned body names them (``st.<key>``)."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model, device="cpu")
    return {f"st.{k}": v for k, v in st.state_dict().items()}


def block_of_entries(state: dict, blocks: list[list[str]]) -> dict[str, int]:
    """Block of every state-dict entry: a parameter's own, a buffer its module's weight's."""
    of_param = {name: i for i, names in enumerate(blocks) for name in names}
    found = {}
    for key in state:
        module = key.rpartition(".")[0]
        block = of_param.get(key, of_param.get(f"{module}.weight"))
        assert block is not None, f"{key} belongs to no block"
        found[key] = block
    return found


# ---------------------------------------------------------------- freezing
@pytest.mark.parametrize("trainable", [0, 2])
def test_frozen_image_blocks_keep_weights_and_batchnorm_statistics(tiny_image_weights, trainable):
    X, y = toy_images(16)
    est = image_estimator(ImageClassifier, tiny_image_weights, trainable_blocks=trainable)
    est.fit(X, y)
    pretrained = load_file(tiny_image_weights)
    body = est._net.body
    state = body.state_dict()
    blocks = est._adapter.blocks(body)
    assert len(blocks) == est.n_blocks_ > trainable
    lowest = est.n_blocks_ - trainable
    block_of = block_of_entries(state, blocks)
    frozen = [k for k in state if block_of[k] < lowest]
    trained = [k for k in state if block_of[k] >= lowest]
    assert any(k.endswith("running_mean") for k in frozen)
    for key in frozen:
        assert torch.equal(state[key], pretrained[key]), f"frozen {key} changed"
    if trainable:
        changed = {k for k in trained if not torch.equal(state[k], pretrained[k])}
        # The top blocks did train: weights and BatchNorm statistics both moved.
        assert any(k.endswith(".weight") for k in changed)
        assert any(k.endswith("running_mean") for k in changed)
    else:
        assert not trained


@pytest.mark.parametrize("trainable", [0, 1])
def test_frozen_text_blocks_keep_their_weights(tiny_text_model, trainable):
    X, y = toy_texts(16)
    est = text_estimator(TextClassifier, tiny_text_model, trainable_blocks=trainable).fit(X, y)
    pretrained = pretrained_text_body(tiny_text_model)
    state = est._net.body.state_dict()
    assert state.keys() == pretrained.keys()
    params = dict(est._net.body.named_parameters())
    blocks = est._adapter.blocks(est._net.body)
    lowest = est.n_blocks_ - trainable
    for block, names in enumerate(blocks):
        same = [torch.equal(params[n], pretrained[n]) for n in names]
        if block < lowest:
            assert all(same), f"frozen block {block} changed"
        else:
            assert not all(same), f"trainable block {block} did not change"


def spy_on_modes(monkeypatch, kinds) -> list[dict]:
    """Record, per epoch, the training flag of every module of ``kinds`` after set_modes."""
    epochs = []
    original = FreezeSchedule.set_modes

    def set_modes(self, net, module_block, epoch):
        original(self, net, module_block, epoch)
        epochs.append({n: m.training for n, m in net.named_modules() if isinstance(m, kinds)})

    monkeypatch.setattr(FreezeSchedule, "set_modes", set_modes)
    return epochs


def test_frozen_blocks_train_with_dropout_off(tiny_text_model, monkeypatch):
    modes = spy_on_modes(monkeypatch, nn.Dropout)
    X, y = toy_texts(16)
    text_estimator(TextClassifier, tiny_text_model, trainable_blocks=1, epochs=1).fit(X, y)
    (epoch,) = modes
    # Embeddings (block 0) and layer 0 (block 1) are frozen; layer 1 and the head train.
    on = {name for name, training in epoch.items() if training}
    assert on == {
        "dropout",
        "body.st.0.model.encoder.layer.1.attention.self.dropout",
        "body.st.0.model.encoder.layer.1.attention.output.dropout",
        "body.st.0.model.encoder.layer.1.output.dropout",
    }
    assert "body.st.0.model.embeddings.dropout" in epoch


def test_frozen_batchnorm_layers_are_in_eval_mode(tiny_image_weights, monkeypatch):
    modes = spy_on_modes(monkeypatch, nn.modules.batchnorm._BatchNorm)
    X, y = toy_images(8)
    image_estimator(ImageClassifier, tiny_image_weights, trainable_blocks=1, epochs=1).fit(X, y)
    (epoch,) = modes
    training = {name for name, on in epoch.items() if on}
    # The top block holds the last stage and the final 1x1 convolution's norm.
    assert training and all(n.startswith(("body.blocks.4.", "body.bn2")) for n in training)
    assert not epoch["body.bn1"] and not epoch["body.blocks.0.0.bn1"]


# ------------------------------------------------------- gradual unfreezing
def test_gradual_unfreezing_opens_one_block_every_n_epochs(tiny_text_model, monkeypatch):
    seen = []
    original = FreezeSchedule.apply

    def apply(self, net, block_of, epoch):
        original(self, net, block_of, epoch)
        trains = {block_of.get(n, "head") for n, p in net.named_parameters() if p.requires_grad}
        seen.append((epoch, trains, state_copy(net.body)))

    monkeypatch.setattr(FreezeSchedule, "apply", apply)
    X, y = toy_texts(16)
    est = text_estimator(
        TextClassifier, tiny_text_model, trainable_blocks=0, unfreeze_every=2, epochs=5
    ).fit(X, y)
    assert est.n_blocks_ == 3
    assert [record["trainable_blocks"] for record in est.history_] == [0, 0, 1, 1, 2]
    assert [s[1] for s in seen] == [{"head"}, {"head"}, {"head", 2}, {"head", 2}, {"head", 1, 2}]
    pretrained = pretrained_text_body(tiny_text_model)
    blocks = est._adapter.blocks(est._net.body)

    def untouched(state, block):
        return all(torch.equal(state[n], pretrained[n]) for n in blocks[block])

    # A block is still pretrained on the epoch it starts training, and moves afterwards.
    assert untouched(seen[2][2], 2) and not untouched(seen[3][2], 2)
    assert untouched(seen[4][2], 1)
    final = est._net.body.state_dict()
    assert not untouched(final, 1) and untouched(final, 0)
    # The learning rates of the history cover the blocks that trained in each epoch.
    assert [set(r["learning_rates"]) for r in est.history_] == [
        {"head"},
        {"head"},
        {"head", "block_2"},
        {"head", "block_2"},
        {"head", "block_1", "block_2"},
    ]


def test_freeze_schedule_counts_blocks_from_the_top():
    schedule = FreezeSchedule(n_blocks=4, trainable_blocks=1, unfreeze_every=3)
    assert [schedule.n_trainable(e) for e in range(12)] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert schedule.lowest_trainable(0) == 3
    assert FreezeSchedule(4, 9, None).lowest_trainable(5) == 0
    assert FreezeSchedule(4, 0, None).lowest_trainable(7) == 4


# --------------------------------------------------- layer-wise learning rates
class _Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(2, 3)
        self.layer = nn.Linear(3, 3)
        self.norm = nn.LayerNorm(3)
        self.head = nn.Linear(3, 2)


def test_layer_decay_groups_scale_rates_and_skip_decay_for_biases_and_norms():
    net = _Stack()
    block_of = {
        "embed.weight": 0,
        "embed.bias": 0,
        "layer.weight": 1,
        "layer.bias": 1,
        "norm.weight": 2,
        "norm.bias": 2,
    }
    groups = layer_decay_groups(
        net, block_of, 3, learning_rate=0.1, layer_decay=0.5, weight_decay=0.05, lowest_block=1
    )
    ids = {id(p): n for n, p in net.named_parameters()}
    found = {
        (g["block"], g["weight_decay"]): (g["lr"], sorted(ids[id(p)] for p in g["params"]))
        for g in groups
    }
    assert found == {
        (1, 0.0): (pytest.approx(0.1 * 0.5**2), ["layer.bias"]),
        (1, 0.05): (pytest.approx(0.1 * 0.5**2), ["layer.weight"]),
        (2, 0.0): (pytest.approx(0.1 * 0.5), ["norm.bias", "norm.weight"]),
        (3, 0.0): (pytest.approx(0.1), ["head.bias"]),
        (3, 0.05): (pytest.approx(0.1), ["head.weight"]),
    }


def test_warmup_then_linear_decay():
    factor = warmup_then_linear_decay(total_steps=10, warmup_steps=4)
    values = [factor(s) for s in range(11)]
    assert values[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert values[4:] == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0])
    no_warmup = warmup_then_linear_decay(total_steps=4, warmup_steps=0)
    assert [no_warmup(s) for s in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


@pytest.mark.parametrize(
    ("warmup_fraction", "factors"),
    [
        # 16 samples, batches of 8: 2 steps per epoch, 6 in all; the history keeps the
        # rates each epoch's last step used (steps 1, 3, 5, counted from 0).
        (0.0, [5 / 6, 3 / 6, 1 / 6]),  # linear decay to 0 from the first step
        (0.5, [2 / 4, 3 / 3, 1 / 3]),  # 3 warm-up steps: step 1 is still warming up
    ],
)
def test_fit_gives_each_block_learning_rate_times_layer_decay_power(
    tiny_text_model, monkeypatch, warmup_fraction, factors
):
    loops = spy_on_loops(monkeypatch)
    X, y = toy_texts(16)
    lr, decay = 0.02, 0.3
    est = text_estimator(
        TextClassifier,
        tiny_text_model,
        trainable_blocks="all",
        learning_rate=lr,
        layer_decay=decay,
        warmup_fraction=warmup_fraction,
        weight_decay=0.1,
        epochs=3,
    ).fit(X, y)
    (loop,) = loops
    groups = loop.optimizer.param_groups
    assert {g["block"] for g in groups} == {0, 1, 2, 3}
    for group in groups:
        assert group["initial_lr"] == pytest.approx(lr * decay ** (3 - group["block"]))
        decays = {p.ndim > 1 for p in group["params"]}
        assert group["weight_decay"] == (0.1 if decays == {True} else 0.0)
    for record, factor in zip(est.history_, factors, strict=True):
        expected = {"head": lr * factor}
        expected.update({f"block_{b}": lr * decay ** (3 - b) * factor for b in range(3)})
        assert record["learning_rates"] == pytest.approx(expected)


# ---------------------------------------------------------------- early stopping
def scripted_validation(monkeypatch, scores) -> list[dict]:
    """Make epoch i's validation score ``scores[i]``; return the net's state at each epoch."""
    states = []

    def validate(self, valid):
        states.append(state_copy(self.net))
        return scores[len(states) - 1]

    monkeypatch.setattr(TrainingLoop, "validate", validate)
    return states


def test_early_stopping_restores_the_best_epochs_weights(tiny_text_model, monkeypatch):
    states = scripted_validation(monkeypatch, [0.5, 0.9, 0.6, 0.7, 0.8, 0.3])
    X, y = toy_texts(20)
    est = text_estimator(
        TextClassifier,
        tiny_text_model,
        trainable_blocks=1,
        epochs=6,
        early_stopping=True,
        n_iter_no_change=10,
    ).fit(X, y)
    assert est.n_epochs_ == 6 and est.best_epoch_ == 2
    assert [r["valid_score"] for r in est.history_] == [0.5, 0.9, 0.6, 0.7, 0.8, 0.3]
    final = est._net.state_dict()
    assert all(torch.equal(final[k], states[1][k]) for k in final)
    assert not all(torch.equal(final[k], states[-1][k]) for k in final)
    kept = est.predict_proba(X)
    est._net.load_state_dict(states[-1])
    assert not np.array_equal(est.predict_proba(X), kept)
    est._net.load_state_dict(states[1])
    np.testing.assert_array_equal(est.predict_proba(X), kept)


@pytest.mark.parametrize(
    ("metric", "scores", "patience", "n_epochs", "best"),
    [
        ("accuracy", [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 1, 2, 1),
        ("accuracy", [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], 3, 4, 1),
        ("accuracy", [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 2, 3, 1),
        ("log_loss", [0.5, 0.4, 0.45, 0.6, 0.3, 0.2], 2, 4, 2),
    ],
)
def test_early_stopping_respects_patience_and_direction(
    tiny_text_model, monkeypatch, metric, scores, patience, n_epochs, best
):
    scripted_validation(monkeypatch, scores)
    X, y = toy_texts(20)
    est = text_estimator(
        TextClassifier,
        tiny_text_model,
        trainable_blocks=0,
        epochs=6,
        early_stopping=True,
        n_iter_no_change=patience,
        validation_metric=metric,
    ).fit(X, y)
    assert (est.n_epochs_, est.best_epoch_) == (n_epochs, best)
    assert len(est.history_) == n_epochs
    assert est.validation_metric_ == metric


def test_early_stopping_class_remembers_a_cpu_copy():
    net = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=1, greater_is_better=False)
    assert not stopper.update(0, 1.0, net)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert stopper.update(1, 2.0, net)
    assert stopper.best_epoch == 0
    stopper.restore(net)
    assert torch.equal(net.weight, stopper.best_state["weight"])
    assert stopper.best_state["weight"] is not net.weight


def test_validation_split_is_stratified_seeded_and_held_out(tiny_text_model, monkeypatch):
    loops = spy_on_loops(monkeypatch)
    texts, _ = toy_texts(30)
    X = [f"{text} {i}" for i, text in enumerate(texts)]  # all distinct
    y = np.array(["a"] * 20 + ["b"] * 10)
    metric_calls = []

    def accuracy(outputs, y_valid, weights):
        metric_calls.append((outputs.shape, y_valid))
        return 0.5

    monkeypatch.setitem(_metrics.METRICS, "accuracy", accuracy)
    params = {"trainable_blocks": 0, "epochs": 1, "early_stopping": True}
    for seed in (0, 0, 1):
        text_estimator(
            TextClassifier, tiny_text_model, validation_fraction=0.3, random_state=seed, **params
        ).fit(X, y)
    valid_sets = [loop.spied_valid for loop in loops]
    for loop in loops:
        train, valid = loop.spied_train, loop.spied_valid
        assert len(valid.items) == 9 and len(train.items) == 21
        assert sorted(train.items + valid.items) == sorted(X)
        assert np.bincount(valid.y).tolist() == [6, 3]  # the 2:1 ratio of y
        assert np.bincount(train.y).tolist() == [14, 7]
    assert valid_sets[0].items == valid_sets[1].items
    assert valid_sets[0].items != valid_sets[2].items
    # The metric sees the held-out samples' outputs and labels.
    assert metric_calls[0][0] == (9, 2)
    np.testing.assert_array_equal(metric_calls[0][1], valid_sets[0].y)


def test_unstratifiable_validation_split_warns(tiny_text_model):
    X, _ = toy_texts(10)
    y = np.array([0] * 9 + [1])
    est = text_estimator(
        TextClassifier, tiny_text_model, trainable_blocks=0, epochs=1, early_stopping=True
    )
    with pytest.warns(UserWarning, match="could not be stratified"):
        est.fit(X, y)


# ------------------------------------------------------ class and sample weights
def test_balanced_class_weight_equals_the_explicit_dict(tiny_text_model, monkeypatch):
    loops = spy_on_loops(monkeypatch)
    X, _ = toy_texts(24)
    y = np.array(["x"] * 18 + ["y"] * 6)
    sample_weight = np.linspace(0.5, 2.0, 24)
    explicit = {"x": 24 / (2 * 18), "y": 24 / (2 * 6)}
    probas = []
    for class_weight in ("balanced", explicit, None):
        est = text_estimator(
            TextClassifier, tiny_text_model, trainable_blocks=1, class_weight=class_weight
        )
        probas.append(est.fit(X, y, sample_weight=sample_weight).predict_proba(X))
    weights = [loop.spied_train.weights.numpy() for loop in loops]
    expected = sample_weight * compute_sample_weight(explicit, y)
    np.testing.assert_allclose(weights[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(weights[0], weights[1])
    np.testing.assert_allclose(weights[2], sample_weight, rtol=1e-6)
    np.testing.assert_array_equal(probas[0], probas[1])
    assert not np.allclose(probas[0], probas[2])


def test_a_class_of_weight_zero_is_never_predicted(tiny_text_model):
    X, y = toy_texts(30, n_classes=3)
    est = text_estimator(TextClassifier, tiny_text_model, trainable_blocks=1, epochs=4)
    assert set(est.fit(X, y).predict(X)) == {0, 1, 2}
    est.set_params(class_weight={0: 1.0, 1: 1.0, 2: 0.0})
    predicted = est.fit(X, y).predict(X)
    assert 2 not in set(predicted)
    assert set(predicted) == {0, 1}


def test_samples_of_weight_zero_do_not_affect_training(tiny_image_weights):
    X, y = toy_images(16)
    weight = np.ones(16)
    weight[-4:] = 0.0
    flipped = y.copy()
    flipped[-4:] = 1 - flipped[-4:]
    est = image_estimator(ImageClassifier, tiny_image_weights, trainable_blocks=1)
    reference = est.fit(X, y, sample_weight=weight).predict_proba(X)
    ignored = est.fit(X, flipped, sample_weight=weight).predict_proba(X)
    np.testing.assert_array_equal(ignored, reference)
    # Weights only rescale: multiplying all of them by a constant changes nothing.
    np.testing.assert_array_equal(
        est.fit(X, y, sample_weight=weight * 3.0).predict_proba(X), reference
    )
    # ... but the labels of samples that count do matter.
    assert not np.allclose(est.fit(X, flipped).predict_proba(X), reference)


def test_negative_sample_weight_is_refused(tiny_text_model):
    X, y = toy_texts(8)
    est = text_estimator(TextClassifier, tiny_text_model)
    with pytest.raises(ValueError, match="non-negative"):
        est.fit(X, y, sample_weight=np.r_[-1.0, np.ones(7)])
    with pytest.raises(ValueError, match="zero"):
        est.fit(X, y, sample_weight=np.zeros(8))


# ------------------------------------------------------------------ augmentation
def spy_on_batches(monkeypatch) -> list[tuple[bool, list, torch.Tensor]]:
    batches = []
    original = ImageAdapter.collate

    def collate(self, items, training):
        out = original(self, items, training)
        # Items carry their position in the user's input (for error messages).
        arrays = [getattr(item, "value", item) for item in items]
        batches.append((training, [array.tobytes() for array in arrays], out.clone()))
        return out

    monkeypatch.setattr(ImageAdapter, "collate", collate)
    return batches


def eval_forward(est, X) -> np.ndarray:
    """The fitted net on timm's evaluation transform of X: no augmentation."""
    import timm.data

    net = est._net
    config = timm.data.resolve_data_config(args={"input_size": (3, 32, 32)}, model=net.body)
    transform = timm.data.create_transform(**config, is_training=False)
    batch = torch.stack([transform(_pil(x)) for x in X])
    with torch.inference_mode():
        return net.eval()(batch).numpy()


def _pil(array):
    from PIL import Image

    return Image.fromarray(array)


@pytest.mark.parametrize("augmentation", ["none", "light", "strong"])
def test_augmentation_changes_training_batches_only(tiny_image_weights, monkeypatch, augmentation):
    batches = spy_on_batches(monkeypatch)
    X, y = toy_images(8)
    est = image_estimator(
        ImageRegressor, tiny_image_weights, augmentation=augmentation, epochs=3, batch_size=4
    )
    est.fit(X, y.astype(float))
    assert batches and all(training for training, _, _ in batches)
    seen: dict[bytes, list[torch.Tensor]] = {}
    for _, keys, tensors in batches:
        for key, tensor in zip(keys, tensors, strict=True):
            seen.setdefault(key, []).append(tensor)
    assert len(seen) == 8 and all(len(views) == 3 for views in seen.values())
    eval_batch = est._adapter.collate(X, training=False)
    plain = {x.tobytes(): t for x, t in zip(X, eval_batch, strict=True)}
    for key, views in seen.items():
        same_as_plain = [torch.equal(view, plain[key]) for view in views]
        if augmentation == "none":
            assert all(same_as_plain)
        else:
            assert not any(same_as_plain)
            assert not torch.equal(views[0], views[1])
    # Prediction never augments: deterministic, and equal to a plain forward pass.
    first = est.predict(X)
    np.testing.assert_array_equal(est.predict(X), first)
    raw = est._raw_outputs(X)
    np.testing.assert_allclose(raw, eval_forward(est, X), rtol=1e-5, atol=1e-6)


def test_augmented_batches_are_seeded(tiny_image_weights, monkeypatch):
    batches = spy_on_batches(monkeypatch)
    X, y = toy_images(8)
    runs = []
    for global_seed, seed in enumerate((3, 3, 4)):
        # Different global random states each run: random_state alone decides.
        random.seed(global_seed)
        np.random.seed(global_seed)  # noqa: NPY002
        torch.manual_seed(global_seed)
        del batches[:]
        est = image_estimator(
            ImageClassifier, tiny_image_weights, augmentation="strong", random_state=seed, epochs=1
        )
        est.fit(X, y)
        runs.append(torch.cat([t for _, _, t in batches]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
