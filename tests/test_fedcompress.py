"""FedCompress: clustering during training, adaptive k, distillation, summaries, the wire."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fedclient.local_work import LocalWorker
from fedclient.payloads import encode_update
from fedcore import config as config_io
from fedcore.datasets import DataSpec, load_client_data
from fedcore.distillation import DistillConfig
from fedcore.masking import mask_hooks
from fedcore.model_codec import Encoding, decode_model
from fedcore.models import build_model
from fedcore.params import get_parameters
from fedcore.pb import coordinator_pb2 as cpb
from fedcore.representation import effective_rank, projection, summarize, triangle_size
from fedcore.training import TrainConfig, train_local
from fedcore.unlabeled import load_unlabeled, procedural_strokes
from fedcore.weight_clustering import WeightClustering, clustered_names
from fedserver.cluster_schedule import ClusterSchedule, PlateauRule, plateaued
from fedserver.config import ServerConfig
from fedserver.instructions import RoundInstructions
from fedserver.model_state import ModelState
from fedserver.tasks import TaskFactory
from fedserver.transforms.base import RoundResult
from fedserver.transforms.distillation import Distillation
from fedserver.updates import InvalidUpdate, PushTicket, decode_update

K = 8


@pytest.fixture(scope="module")
def client_data():  # type: ignore[no-untyped-def]
    return load_client_data(DataSpec(partition=0, num_partitions=10))


def _masks(params: dict[str, np.ndarray], sparsity: float = 0.8) -> dict[str, np.ndarray]:
    return {n: np.abs(a) > np.quantile(np.abs(a), sparsity) for n, a in params.items()
            if a.ndim == 2}


def test_clustering_invariants_after_training(client_data) -> None:  # type: ignore[no-untyped-def]
    model = build_model("mlp", seed=0)
    before = get_parameters(model)
    masks = _masks(before)
    hook = WeightClustering(clusters=K, masks=masks, seed=3)
    train_local(model, client_data.train, TrainConfig(epochs=1),
                hooks=[*mask_hooks(model, masks), hook])
    after = get_parameters(model)
    assert hook.names == ["fc1.weight", "fc2.weight", "fc3.weight"]  # weights only
    for name, mask in masks.items():
        kept = after[name][mask]
        assert len(np.unique(kept)) <= K  # at most k values at kept positions
        assert not np.any(after[name][~mask])  # pruned weights stay exactly zero
        assert set(np.unique(kept)) <= set(hook.codebooks()[name])
        assert len(hook.codebooks()[name]) <= K
    for name in ("fc1.bias", "fc2.bias", "fc3.bias"):  # biases train freely
        assert len(np.unique(after[name])) > K and not np.array_equal(after[name], before[name])


def test_layers_smaller_than_k_are_skipped() -> None:
    shapes = {"a.weight": (2, 3), "b.weight": (4, 4), "b.bias": (4,), "bn.weight": (4,)}
    assert clustered_names(shapes, clusters=8) == ["b.weight"]
    masks = {"b.weight": np.eye(4, dtype=bool)}  # 4 kept < 8
    assert clustered_names(shapes, clusters=8, masks=masks) == []
    assert clustered_names(shapes, clusters=0) == []


def test_straight_through_gradient_moves_latent_and_centroids() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4))
    x, y = torch.randn(16, 6), torch.randint(0, 4, (16,))
    hook = WeightClustering(clusters=3, seed=0, centroid_learning_rate=0.01)
    hook.before_training(model)
    weight = model[0].weight
    tied = weight.detach().clone()
    latent = hook._tensors["0.weight"].latent.clone()
    labels = hook._tensors["0.weight"].labels.clone()
    centroids = hook._tensors["0.weight"].centroids.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.functional.cross_entropy(model(x), y).backward()
    grad = weight.grad.detach().clone()  # the gradient of the tied (forward) weights
    hook.after_backward(model, optimizer)
    optimizer.step()
    hook.after_step(model, optimizer)
    state = hook._tensors["0.weight"]
    assert torch.allclose(state.latent, latent - 0.5 * grad, atol=1e-6)  # straight through
    summed = torch.zeros(3).index_add_(0, labels.reshape(-1), grad.reshape(-1))
    moved = state.centroids - torch.sort(centroids).values
    assert torch.all(torch.sign(moved[summed != 0]) == -torch.sign(summed[summed != 0]))
    assert len(torch.unique(weight.detach())) <= 3  # re-tied after the step
    assert not torch.equal(weight.detach(), tied)


def test_plateau_rule_grows_k_only_on_plateau_after_patience() -> None:
    rule = PlateauRule(k_min=8, k_max=10, patience=4, warmup_rounds=3, window=3)
    s = ClusterSchedule(rule)
    improving = [s.observe(accuracy=0.1 * i, score=float(i)) for i in range(1, 7)]
    assert not any(improving) and s.k == 8
    # flat: the rolling mean (window 3) stops moving at the third flat round
    assert [s.observe(accuracy=0.6, score=6.0) for _ in range(3)] == [False, False, True]
    assert s.k == 9
    # patience: 4 rounds at k = 9 before it may grow again, however flat
    assert [s.observe(accuracy=0.6, score=6.0) for _ in range(4)] == [False] * 3 + [True]
    assert s.k == 10
    assert not any(s.observe(accuracy=0.6, score=6.0) for _ in range(10)) and s.k == 10  # cap
    restored = ClusterSchedule(rule)
    restored.load_state_dict(s.state_dict())
    assert restored.state_dict() == s.state_dict()


def test_plateau_thresholds_shrink_as_k_grows() -> None:
    rule = PlateauRule(k_min=8, k_max=30, patience=2, warmup_rounds=2, limit=0.01)
    acc, score = [0.900, 0.908], [5.0, 5.0]  # accuracy still rises by 0.008
    assert plateaued(acc, score, [8, 8], rule)  # 0.008 <= 0.01 at k_min
    assert not plateaued(acc, score, [10, 10], rule)  # 0.008 > 0.01 / (2 * 2)
    assert not plateaued([0.9, 0.9], [5.0, 5.3], [8, 8], rule)  # the score still rises
    assert not plateaued([0.9], [5.0], [8], rule)  # too few rounds


def _distillation(k: int, masks: dict[str, np.ndarray] | None):  # type: ignore[no-untyped-def]
    schedule = ClusterSchedule(PlateauRule(k_min=k, k_max=k))
    return Distillation(schedule, build=lambda: build_model("mlp", seed=0),
                        inputs=procedural_strokes(512, seed=0),
                        config=DistillConfig(epochs=3, batch_size=128, learning_rate=1e-3),
                        source="procedural")


def test_distillation_improves_agreement_and_keeps_invariants(client_data) -> None:  # type: ignore[no-untyped-def]
    teacher = build_model("mlp", seed=0)
    train_local(teacher, client_data.train, TrainConfig(epochs=3))
    params = get_parameters(teacher)
    masks = _masks(params, 0.5)
    params = {n: np.where(masks[n], p, 0).astype(np.float32) if n in masks else p
              for n, p in params.items()}
    step = _distillation(2, masks)
    assert step.instructions(1) == {"downlink_clusters": 2}
    model = ModelState(params=params, version=3, mask_id="m", masks=masks)
    out, measured = step.apply(2, model, RoundResult(2, {}))
    m = measured["metrics"]
    assert m["distill_kl"] < 0.8 * m["distill_kl_clustered"]  # closer to the teacher
    assert m["distill_agreement"] >= m["distill_agreement_clustered"]
    assert out.params is not params and model.params is params  # input not mutated
    for name, mask in masks.items():
        assert len(np.unique(out.params[name][mask])) <= 2
        assert not np.any(out.params[name][~mask])
    again, _ = step.apply(2, model, RoundResult(2, {}))  # deterministic per round
    assert all(np.array_equal(again.params[n], out.params[n]) for n in params)


def test_procedural_and_npz_unlabeled_sets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    x = procedural_strokes(64, seed=1)
    assert x.shape == (64, 64) and x.min() >= 0 and x.max() <= 1 and x.std() > 0.1
    assert np.array_equal(x, procedural_strokes(64, seed=1))
    path = tmp_path / "u.npz"
    np.savez(path, x=x[:10])
    assert load_unlabeled(str(path), features=64, examples=5).shape == (10, 64)
    np.savez(path, x=x[:10, :8])
    with pytest.raises(ValueError, match="shape"):
        load_unlabeled(str(path), features=64, examples=5)
    with pytest.raises(ValueError, match="npz"):
        load_unlabeled("nope.txt", features=64, examples=5)


def test_summed_gram_gives_the_union_effective_rank(client_data) -> None:  # type: ignore[no-untyped-def]
    model = build_model("mlp", seed=0)
    x, y = client_data.train.tensors  # type: ignore[attr-defined]
    a, b = TensorDataset(x[:40], y[:40]), TensorDataset(x[40:], y[40:])
    sa, sb = (summarize(model, d, dim=256, seed=0) for d in (a, b))
    captured = []
    handle = model.fc3.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    emb = nn.functional.normalize(captured[0], dim=1).numpy().astype(np.float64)
    s = np.linalg.svd(emb, compute_uv=False)
    p = s / s.sum()
    reference = float(np.exp(-np.sum(p * np.log(p))))  # the reference's score
    assert effective_rank(sa.gram.astype(np.float64) + sb.gram) == pytest.approx(reference,
                                                                              rel=1e-3)
    assert sa.examples + sb.examples == len(y)
    q = projection(256, 16, seed=5)
    assert torch.allclose(q.T @ q, torch.eye(16), atol=1e-5)


def _task(instr: RoundInstructions) -> cpb.Task:
    from fedserver.round_plan import PhaseKind
    from fedserver.round_state import Assignment

    factory = TaskFactory(ServerConfig(), run_id="r", clock=lambda: 0.0)
    return factory.build(Assignment(PhaseKind.TRAIN, "t1", 1, 0, instr.mask_id, 10.0), instr)


INSTR = RoundInstructions(round=1, encoding=Encoding("fp16", zstd=True), clusters=K,
                          cluster_epochs=1, centroid_learning_rate=1e-3,
                          report_representation=True, representation_dim=16,
                          representation_seed=7)


def _push(partition: int) -> tuple[cpb.UpdatePayload, bytes, dict[str, np.ndarray]]:
    data = load_client_data(DataSpec(partition=partition, num_partitions=10))
    worker = LocalWorker(data, seed=partition)
    task = _task(INSTR)
    global_params = get_parameters(build_model("mlp", seed=0))
    outcome = worker.train(task, global_params, None)
    payload = encode_update(task, outcome, None, client_id=f"c{partition}", seed=0)
    return payload, payload.SerializeToString(), global_params


def test_update_carries_clustered_weights_and_nothing_example_level() -> None:
    payloads = [_push(p) for p in (0, 5)]  # 69 and 275 examples
    for payload, _, _ in payloads:
        assert list(payload.absolute_tensors) == ["fc1.weight", "fc2.weight", "fc3.weight"]
        for t in payload.delta.tensors:
            kind = t.values.WhichOneof("kind")
            assert kind == ("clustered" if t.name.endswith("weight") else "raw")
            if kind == "clustered":
                assert t.values.clustered.codebook.raw_size <= 4 * K
                assert t.values.clustered.index_bits == 3
        rep = {t.name: tuple(t.shape) for t in payload.representation.tensors}
        assert rep == {"gram": (triangle_size(16),), "examples": (1,), "correct": (1,)}
        fields = {f.name for f, _ in payload.ListFields()}
        assert fields == {"delta", "absolute_tensors", "representation"}
    raw = [payload.representation.SerializeToString() for payload, _, _ in payloads]
    sizes = [sum(t.values.raw.data.raw_size for t in p.representation.tensors)
             for p, _, _ in payloads]
    assert sizes[0] == sizes[1] == 4 * (triangle_size(16) + 2)  # independent of n
    assert abs(len(raw[0]) - len(raw[1])) < 200


def _ticket(clusters: int = K) -> PushTicket:
    return PushTicket.for_task(INSTR if clusters == K else RoundInstructions(
        round=1, encoding=INSTR.encoding, clusters=clusters, report_representation=True,
        representation_dim=16), client_id="c0", task_id="t1", round=1, version=0,
        num_examples=69, digest=b"", started=0.0)


def test_server_rebuilds_the_delta_and_validates_weights() -> None:
    payload, data, global_params = _push(0)
    shapes = {n: a.shape for n, a in global_params.items()}
    update = decode_update(_ticket(), data, shapes=shapes, score_shapes={}, base=global_params)
    sent = decode_model(payload.delta, expected=shapes)
    for name in shapes:
        if name in payload.absolute_tensors:  # weights on the wire, delta at the server
            assert len(np.unique(sent[name])) <= K
            assert np.array_equal(update.delta[name], sent[name] - global_params[name])
        else:
            assert np.array_equal(update.delta[name], sent[name])
    assert update.representation is not None
    with pytest.raises(InvalidUpdate, match="at most 4 centroids"):
        decode_update(_ticket(4), data, shapes=shapes, score_shapes={}, base=global_params)
    wrong = cpb.UpdatePayload.FromString(data)
    del wrong.absolute_tensors[0]
    with pytest.raises(InvalidUpdate, match="absolute_tensors"):
        decode_update(_ticket(), wrong.SerializeToString(), shapes=shapes, score_shapes={},
                      base=global_params)
    no_summary = cpb.UpdatePayload.FromString(data)
    no_summary.ClearField("representation")
    with pytest.raises(InvalidUpdate, match="representation summary"):
        decode_update(_ticket(), no_summary.SerializeToString(), shapes=shapes,
                      score_shapes={}, base=global_params)


def test_config_keys_are_validated() -> None:
    with pytest.raises(Exception, match="fedcompress and aggregation.preset"):
        config_io.load(ServerConfig, overrides=["fedcompress.clusters_min=4"], environ={})
    with pytest.raises(Exception, match="clusters_max"):
        config_io.load(ServerConfig, overrides=["aggregation.preset=fedcompress",
                                                "fedcompress.clusters_max=2"], environ={})
    with pytest.raises(Exception, match="cluster_epochs"):
        config_io.load(ServerConfig, overrides=["aggregation.preset=fedcompress",
                                                "fedcompress.cluster_epochs=3"], environ={})
    config = config_io.load(ServerConfig, overrides=["aggregation.preset=fedcompress"],
                            environ={})
    assert config.fedcompress.clusters_min == 8 and config.fedcompress.distill

