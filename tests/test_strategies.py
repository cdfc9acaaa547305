"""Aggregation and server optimizers: known answers, masking, state round trips."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fedcore import config as config_io
from fedserver.aggregation import WeightedMean
from fedserver.config import StrategyConfig
from fedserver.server_optimizers import ServerAdam, ServerSGD, ServerYogi
from fedserver.strategy import STRATEGY_PRESETS, build_strategy
from tests.helpers import running_server, server_config


def test_weighted_mean_known_answer_and_validation() -> None:
    mean = WeightedMean({"w": (2,)})
    assert mean.result() is None
    mean.add({"w": np.array([1.0, 2.0], dtype=np.float32)}, 1.0)
    mean.add({"w": np.array([4.0, 8.0], dtype=np.float32)}, 2.0)
    np.testing.assert_allclose(mean.result()["w"], [3.0, 6.0])  # type: ignore[index]
    with pytest.raises(ValueError, match="weight"):
        mean.add({"w": np.zeros(2, dtype=np.float32)}, 0.0)
    with pytest.raises(ValueError, match="differ"):
        mean.add({"v": np.zeros(2, dtype=np.float32)}, 1.0)
    assert mean.count == 2


def test_sgd_is_fedavg() -> None:
    out = ServerSGD().step({"w": np.ones(3, np.float32)}, {"w": np.full(3, 0.5, np.float32)})
    np.testing.assert_allclose(out["w"], 1.5)


def test_adam_first_step_known_answer() -> None:
    opt = ServerAdam(learning_rate=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    g = np.array([0.2, -0.2, 0.0], np.float32)
    out = opt.step({"w": np.zeros(3, np.float32)}, {"w": g})
    m = 0.1 * g
    v = 0.99 * 1e-6 + 0.01 * g * g
    np.testing.assert_allclose(out["w"], 0.1 * m / (np.sqrt(v) + 1e-3), rtol=1e-5)


def test_yogi_second_moment_differs_from_adam() -> None:
    g = {"w": np.array([1.0], np.float32)}
    adam, yogi = ServerAdam(), ServerYogi()
    for opt in (adam, yogi):
        opt.step({"w": np.zeros(1, np.float32)}, g)
    # Yogi: v - (1 - b2) g^2 sign(v - g^2) = v0 + 0.01 g^2 when v0 < g^2; Adam: 0.99 v0 + 0.01 g^2
    assert yogi.v["w"][0] > adam.v["w"][0]


def test_masks_clear_adaptive_moments_and_state_round_trips() -> None:
    opt = ServerAdam()
    opt.step({"w": np.zeros(4, np.float32)}, {"w": np.ones(4, np.float32)})
    mask = np.array([True, False, True, False])
    opt.apply_mask({"w": mask})
    assert np.all(opt.m["w"][~mask] == 0) and np.all(opt.v["w"][~mask] == 0)
    other = ServerAdam()
    other.load_state_dict(opt.state_dict())
    np.testing.assert_array_equal(other.m["w"], opt.m["w"])
    with pytest.raises(ValueError, match="adam"):
        ServerYogi().load_state_dict(opt.state_dict())


@pytest.mark.parametrize("name", sorted(STRATEGY_PRESETS))
def test_presets(name: str) -> None:
    strategy = build_strategy(StrategyConfig(name=name, proximal_mu=0.1))
    assert strategy.name == name
    assert (strategy.proximal_mu > 0) == (name == "fedprox")


def test_health_and_reflection_are_served(tmp_path: Path) -> None:
    config = server_config(tmp_path / "s", "evaluation.test_set=")
    with running_server(config) as server, grpc.insecure_channel(
            f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "fedprune.v1.Coordinator"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {s.name for s in reply.list_services_response.service}
        assert "fedprune.v1.Coordinator" in names


def test_strategy_config_rejects_unknown() -> None:
    with pytest.raises(config_io.ConfigError, match="name"):
        config_io.load(StrategyConfig, overrides=["name=fedfoo"], environ={})
