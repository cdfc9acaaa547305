"""Local training, masked-training invariants, evaluation and scores (fedcore.training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from fedcore import training
from fedcore.datasets import DataSpec, load_client_data, load_test_set, union_train_set
from fedcore.models import build_model
from fedcore.params import get_parameters, prunable_names
from fedcore.training import (
    MaskEnforcer,
    ProximalTerm,
    TrainConfig,
    evaluate,
    importance_scores,
    train_local,
)


@pytest.fixture(scope="module")
def client_data():
    return load_client_data(DataSpec(partition=0, num_partitions=4))


def _random_mask(model, *, keep: float = 0.5, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = get_parameters(model)
    return {n: rng.random(params[n].shape) < keep for n in prunable_names(model)}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=float("inf")), "learning_rate"),
        (dict(momentum=1.0), "momentum"),
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(seed=-1), "seed"),
        (dict(epochs=1.5), "epochs"),
    ],
)
def test_train_config_names_the_bad_field(kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)


def test_central_training_reaches_w1_accuracy() -> None:
    model = build_model("mlp", seed=0)
    train_set = union_train_set(DataSpec(num_partitions=10, val_fraction=0.0))
    before = evaluate(model, load_test_set())
    result = train_local(model, train_set, TrainConfig(epochs=3))
    after = evaluate(model, load_test_set())
    assert (result.num_examples, result.steps) == (1437, 3 * 45)
    assert result.seconds > 0 and np.isfinite(result.loss)
    assert after.loss < before.loss / 2
    assert after.accuracy > 0.9 and after.num_examples == 360


def test_training_is_deterministic_and_keeps_global_rng(client_data) -> None:
    runs = []
    for _ in range(2):
        model = build_model("cnn", seed=3)
        rng_before = torch.random.get_rng_state()
        train_local(model, client_data.train, TrainConfig(epochs=1, seed=7))
        assert torch.equal(torch.random.get_rng_state(), rng_before)
        runs.append(get_parameters(model))
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_progress_reports_every_step_and_can_abort(client_data) -> None:
    calls: list[tuple[int, int, float]] = []
    model = build_model("mlp")
    model.eval()
    result = train_local(model, client_data.train, TrainConfig(epochs=2, batch_size=64),
                         progress=lambda *args: calls.append(args))
    assert [c[0] for c in calls] == list(range(1, result.steps + 1))
    assert {c[1] for c in calls} == {result.steps}
    assert not model.training  # mode restored

    def abort(step: int, total: int, loss: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_local(model, client_data.train, TrainConfig(), progress=abort)


def test_train_and_evaluate_reject_bad_input(client_data) -> None:
    model = build_model("mlp")
    empty = TensorDataset(torch.zeros(0, 64), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match="dataset is empty"):
        train_local(model, empty, TrainConfig())
    with pytest.raises(ValueError, match="dataset is empty"):
        evaluate(model, empty)
    with pytest.raises(ValueError, match="config must be a TrainConfig"):
        train_local(model, client_data.train, {"epochs": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, client_data.val, batch_size=0)
    params = get_parameters(model)
    del params["fc3.bias"]
    with pytest.raises(ValueError, match=r"reference_params: missing tensor\(s\) \['fc3.bias'\]"):
        train_local(model, client_data.train, TrainConfig(),
                    hooks=[ProximalTerm(mu=0.1, reference_params=params)])


# ---------------------------------------------------------------- masks


def _capture_optimizer(monkeypatch: pytest.MonkeyPatch) -> list[torch.optim.Optimizer]:
    made: list[torch.optim.Optimizer] = []
    original = training._make_optimizer

    def capture(model, config):
        made.append(original(model, config))
        return made[-1]

    monkeypatch.setattr(training, "_make_optimizer", capture)
    return made


REVIVING = TrainConfig(epochs=2, momentum=0.9, weight_decay=0.01)
REVIVING_MU = 0.5


def _pulled_global(model) -> ProximalTerm:
    """FedProx towards a global model that is non-zero everywhere, incl. pruned positions."""
    pulled = {k: v + np.float32(0.5) for k, v in get_parameters(model).items()}
    return ProximalTerm(mu=REVIVING_MU, reference_params=pulled)


def test_pruned_weights_and_momentum_stay_exactly_zero(monkeypatch, client_data) -> None:
    made = _capture_optimizer(monkeypatch)
    model = build_model("mlp", seed=0)
    mask = _random_mask(model)
    params = dict(model.named_parameters())

    def check(step: int, total: int, loss: float) -> None:  # after every optimizer step
        for name, keep in mask.items():
            assert not params[name].detach().numpy()[~keep].any(), (name, step)

    train_local(model, client_data.train, REVIVING,
                hooks=[MaskEnforcer(model, mask), _pulled_global(model)], progress=check)
    after = get_parameters(model)
    (optimizer,) = made
    for name, keep in mask.items():
        assert np.all(after[name][~keep] == 0.0)
        assert np.count_nonzero(after[name][keep]) == keep.sum()  # survivors trained
        momentum = optimizer.state[params[name]]["momentum_buffer"].numpy()
        assert np.all(momentum[~keep] == 0.0) and momentum[keep].any()


def test_masking_grads_alone_keeps_pruned_weights_zero(monkeypatch, client_data) -> None:
    """Weight decay, the proximal pull and momentum are all cut by the grad mask: even
    with the per-step weight re-masking disabled, pruned weights never move."""
    original = MaskEnforcer.apply_to_weights
    calls = []

    def only_first(self):
        calls.append(1)
        if len(calls) == 1:
            original(self)

    monkeypatch.setattr(MaskEnforcer, "apply_to_weights", only_first)
    model = build_model("mlp", seed=0)
    mask = _random_mask(model, keep=0.3)
    train_local(model, client_data.train, REVIVING,
                hooks=[MaskEnforcer(model, mask), _pulled_global(model)])
    assert len(calls) > 1
    after = get_parameters(model)
    assert all(np.all(after[n][~keep] == 0.0) for n, keep in mask.items())


def test_without_a_mask_the_same_setup_revives_zeroed_weights(client_data) -> None:
    """Control for the two tests above: the scenario really does push zeros away."""
    model = build_model("mlp", seed=0)
    mask = _random_mask(model)
    MaskEnforcer(model, mask).apply_to_weights()
    train_local(model, client_data.train, REVIVING, hooks=[_pulled_global(model)])
    after = get_parameters(model)
    assert all(np.all(after[n][~keep] != 0.0) for n, keep in mask.items())


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    lambda ps: torch.optim.Adam(ps, lr=0.1),
])
def test_enforcer_clears_optimizer_state(make) -> None:
    model = build_model("mlp")
    optimizer = make(model.parameters())
    model(torch.ones(2, 64)).sum().backward()
    optimizer.step()
    mask = _random_mask(model)
    MaskEnforcer(model, mask).apply_to_optimizer_state(optimizer)
    params = dict(model.named_parameters())
    for name, keep in mask.items():
        state = [v for v in optimizer.state[params[name]].values() if v.shape == keep.shape]
        assert state and all(not s.numpy()[~keep].any() and s.numpy()[keep].any() for s in state)


def test_enforcer_grads_and_non_finite_weights() -> None:
    model = build_model("mlp")
    mask = _random_mask(model)
    weight = model.fc1.weight
    with torch.no_grad():
        weight[~torch.from_numpy(mask["fc1.weight"])] = float("nan")
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply_to_weights()
    assert torch.isfinite(weight).all()
    model(torch.ones(2, 64)).sum().backward()
    enforcer.apply_to_grads()
    assert not weight.grad.numpy()[~mask["fc1.weight"]].any()


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ({"fc9.weight": np.ones((2, 2), bool)}, r"unexpected tensor\(s\) \['fc9.weight'\]"),
        ({"fc1.weight": np.ones((64, 256), bool)}, "'fc1.weight' has shape"),
        ({"fc1.bias": np.full(256, 0.5)}, "'fc1.bias' must be boolean"),
    ],
)
def test_enforcer_rejects_bad_masks(mask, message) -> None:
    with pytest.raises(ValueError, match=message):
        MaskEnforcer(build_model("mlp"), mask)


def test_enforcer_accepts_partial_and_integer_masks() -> None:
    model = build_model("mlp")
    MaskEnforcer(model, {"fc3.weight": np.zeros((10, 256), np.uint8)}).apply_to_weights()
    assert not model.fc3.weight.any() and model.fc2.weight.all()


def test_proximal_term_keeps_weights_near_global(client_data) -> None:
    distances = []
    for mu in (0.0, 10.0):
        model = build_model("mlp", seed=0)
        start = get_parameters(model)
        hooks = [ProximalTerm(mu=mu, reference_params=start)] if mu > 0 else []
        train_local(model, client_data.train, TrainConfig(epochs=1), hooks=hooks)
        after = get_parameters(model)
        distances.append(sum(np.sum((after[k] - start[k]) ** 2) for k in start))
    assert distances[1] < 0.5 * distances[0]


# ---------------------------------------------------------------- scores


@pytest.mark.parametrize("kind", ["magnitude", "saliency", "gradient"])
def test_importance_scores(kind, client_data) -> None:
    model = build_model("cnn", seed=0)
    mask = _random_mask(model)
    MaskEnforcer(model, mask).apply_to_weights()
    before = get_parameters(model)
    scores = importance_scores(model, client_data.train, kind=kind, batch_size=32, max_batches=3)
    assert list(scores) == prunable_names(model)
    for name, score in scores.items():
        assert score.shape == before[name].shape and score.dtype == np.float32
        assert np.isfinite(score).all() and (score >= 0).all()
        if kind == "gradient":
            assert score[~mask[name]].any()  # a regrowth signal where weights are zero
        else:
            assert not score[~mask[name]].any() and score[mask[name]].any()
    if kind == "magnitude":
        assert all(np.array_equal(scores[n], np.abs(before[n])) for n in scores)
    after = get_parameters(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_importance_scores_reject_bad_arguments(client_data) -> None:
    model = build_model("mlp")
    with pytest.raises(ValueError, match="kind must be one of"):
        importance_scores(model, client_data.train, kind="random")
    with pytest.raises(ValueError, match="max_batches"):
        importance_scores(model, client_data.train, max_batches=0)
