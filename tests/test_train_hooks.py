"""Training hooks (fedcore.train_hooks): call order, the built-in hooks, and bit-identity
with the pre-hooks ``train_local(mask=..., global_params=...)`` implementation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from fedclient.local_work import LocalWorker
from fedcore.datasets import DataSpec, load_client_data
from fedcore.models import build_model
from fedcore.params import get_parameters, prunable_names
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.training import (
    MaskEnforcer,
    ProximalTerm,
    TrainConfig,
    TrainHook,
    mask_hooks,
    train_local,
)


@pytest.fixture(scope="module")
def client_data():
    # One partition (the whole W1 training set) with a 90% hold-out: the same 144 samples
    # under the old and the new partitioning code, so the references below stay valid.
    return load_client_data(DataSpec(partition=0, num_partitions=1, val_fraction=0.9))


def _digest(params: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name, array in params.items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(array, np.float32).tobytes())
    return h.hexdigest()


def _mask(model, *, keep: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = get_parameters(model)
    return {n: rng.random(params[n].shape) < keep for n in prunable_names(model)}


# ------------------------------------------------------------ bit-identity with the old API
# The expected (loss.hex(), steps, sha256) triples were produced by running the same
# scenarios against the pre-hooks code (commit 10d9f1f, `git archive 10d9f1f`, with the
# old API: `train_local(..., mask=mask, global_params=glob)` and
# `TrainConfig(proximal_mu=...)`; scenario B passed no global_params, i.e. the model's
# weights at the start). The new code reproduced all three bit for bit. Both ran with
# one intra-op thread (OMP_NUM_THREADS=1, as tests/conftest.py sets; the fixture below
# pins it): the weights' checksum depends on the reduction order of the CPU kernels, so
# another thread count, CPU or torch build may legitimately give other bits.


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_masked_prox_run_is_bit_identical_to_the_pre_hooks_code(client_data, one_thread) -> None:
    model = build_model("mlp", seed=0)
    mask = _mask(model, keep=0.5, seed=0)
    pulled = {k: v + np.float32(0.5) for k, v in get_parameters(model).items()}
    result = train_local(model, client_data.train,
                         TrainConfig(epochs=2, momentum=0.9, weight_decay=0.01, seed=3),
                         hooks=[MaskEnforcer(model, mask),
                                ProximalTerm(mu=0.5, reference_params=pulled)])
    assert (result.loss.hex(), result.steps, _digest(get_parameters(model))) == (
        "0x1.a5bffbc38e38ep+9", 10,
        "8ec2008bc2fe1835c91eae9c5716051c9107afce46baf25c0b5bfc004d49fe19")


def test_prox_anchored_at_start_is_bit_identical_to_the_pre_hooks_code(client_data, one_thread) -> None:
    model = build_model("cnn", seed=1)
    result = train_local(model, client_data.train,
                         TrainConfig(epochs=1, weight_decay=1e-3, seed=5),
                         hooks=[ProximalTerm(mu=2.0, reference_params=get_parameters(model))])
    assert (result.loss.hex(), result.steps, _digest(get_parameters(model))) == (
        "0x1.268204e38e38ep+1", 5,
        "8d0c8b740a99ffaf75d5a450d0e95d21f355a9c411e39d9ff4604022ec4ce8fc")


def test_worker_masked_prox_task_is_bit_identical_to_the_pre_hooks_code(client_data, one_thread) -> None:
    worker = LocalWorker(client_data, seed=4)
    pulled = {k: v * np.float32(0.9) + np.float32(0.01)
              for k, v in get_parameters(worker.model("mlp")).items()}
    mask = _mask(worker.model("mlp"), keep=0.3, seed=2)
    task = cpb.Task(kind=cpb.TASK_KIND_TRAIN, round=2, model_name="mlp", mask_id="m1",
                    train=cpb.TrainInstructions(local_epochs=1, batch_size=16, learning_rate=0.05,
                                                momentum=0.9, weight_decay=0.005, proximal_mu=0.1))
    outcome = worker.train(task, pulled, mask)
    assert (outcome.metrics["train_loss"].hex(), outcome.num_examples, _digest(outcome.delta)) == (
        "0x1.268f1871c71c7p+1", 144,
        "bc7fde7e1c77e9e8396d9fb56eda0967c198f714ff6a1d5323f03372cbcdcf1e")
    # pruned weights end at 0 (the pulled model is not zero there, so delta = -pulled)
    assert all(np.array_equal(outcome.delta[n][~keep], -pulled[n][~keep]) for n, keep in mask.items())


# ------------------------------------------------------------ the contract


class _Recorder(TrainHook):
    """Logs each call with the grad/weight it sees, to pin down order and timing."""

    def __init__(self, name: str, log: list[tuple[str, str]], *, extra: float | None = None):
        self.name, self.log, self.extra = name, log, extra

    def before_training(self, model):
        self.log.append((self.name, "before_training"))

    def extra_loss(self, model):
        self.log.append((self.name, "extra_loss"))
        if self.extra is None:
            return None
        return self.extra * sum(p.sum() for p in model.parameters())

    def after_backward(self, model, optimizer):
        self.log.append((self.name, "after_backward"))

    def after_step(self, model, optimizer):
        self.log.append((self.name, "after_step"))


def test_hooks_run_in_list_order_at_each_point(client_data) -> None:
    log: list[tuple[str, str]] = []
    model = build_model("mlp", seed=0)
    result = train_local(model, client_data.train, TrainConfig(epochs=1, batch_size=256),
                         hooks=[_Recorder("a", log), _Recorder("b", log)])
    per_step = [(h, point) for point in ("extra_loss", "after_backward", "after_step")
                for h in "ab"]
    assert log == [("a", "before_training"), ("b", "before_training")] + per_step * result.steps


def test_extra_loss_is_differentiated_but_not_reported(client_data) -> None:
    runs = []
    for extra in (None, 1e-3):
        model = build_model("mlp", seed=0)
        result = train_local(model, client_data.train, TrainConfig(epochs=1, seed=2),
                             hooks=[_Recorder("r", [], extra=extra)])
        runs.append((result.loss, get_parameters(model)))
    (_, p0), (_, p1) = runs
    assert any(not np.array_equal(p0[k], p1[k]) for k in p0)  # the term moved the weights

    class Offset(TrainHook):  # constant: no gradient, so only the report could change
        def extra_loss(self, model):
            return torch.tensor(1000.0)

    model = build_model("mlp", seed=0)
    result = train_local(model, client_data.train, TrainConfig(epochs=1, seed=2),
                         hooks=[Offset()])
    assert result.loss == runs[0][0]


def test_weight_decay_is_in_the_grads_after_backward_hooks_see(client_data) -> None:
    """Coupled decay is added before after_backward: a hook that zeroes all grads stops
    every weight from moving, decay included."""

    class ZeroGrads(TrainHook):
        def after_backward(self, model, optimizer):
            for p in model.parameters():
                p.grad.zero_()

    model = build_model("mlp", seed=0)
    before = get_parameters(model)
    train_local(model, client_data.train, TrainConfig(epochs=1, weight_decay=0.5),
                hooks=[ZeroGrads()])
    after = get_parameters(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_train_local_rejects_non_hooks(client_data) -> None:
    with pytest.raises(ValueError, match=r"hooks must be TrainHook instances, got \['dict'\]"):
        train_local(build_model("mlp"), client_data.train, TrainConfig(), hooks=[{}])  # type: ignore[list-item]


def test_mask_enforcer_refuses_another_model(client_data) -> None:
    model, other = build_model("mlp", seed=0), build_model("mlp", seed=0)
    enforcer = MaskEnforcer(other, _mask(other, keep=0.5, seed=0))
    with pytest.raises(ValueError, match="built for a different model"):
        train_local(model, client_data.train, TrainConfig(), hooks=[enforcer])


def test_mask_hooks() -> None:
    model = build_model("mlp")
    assert mask_hooks(model, None) == []
    (hook,) = mask_hooks(model, _mask(model, keep=0.5, seed=0))
    assert isinstance(hook, MaskEnforcer)


@pytest.mark.parametrize("mu", [0.0, -1.0, float("nan"), float("inf")])
def test_proximal_term_rejects_bad_mu(mu) -> None:
    with pytest.raises(ValueError, match="proximal mu must be finite and > 0"):
        ProximalTerm(mu=mu, reference_params={})


def test_proximal_term_value_and_binding() -> None:
    model = build_model("mlp", seed=0)
    reference = {k: np.zeros_like(v) for k, v in get_parameters(model).items()}
    term = ProximalTerm(mu=0.3, reference_params=reference)
    with pytest.raises(RuntimeError, match="before before_training"):
        term.extra_loss(model)
    term.before_training(model)
    expected = 0.5 * 0.3 * sum(float((p.detach() ** 2).sum()) for p in model.parameters())
    assert float(term.extra_loss(model).detach()) == pytest.approx(expected, rel=1e-6)
    assert isinstance(term.extra_loss(model), torch.Tensor)
