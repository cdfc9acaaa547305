"""Aggregation and server optimizers: known answers, masking, state round trips."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fedcore import config as config_io
from fedserver.config import AggregationConfig, ServerConfig
from fedserver.presets import PRESETS, build_program
from fedserver.server_optimizers import ServerAdam, ServerSGD, ServerYogi
from tests.helpers import running_server, server_config


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


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets(name: str) -> None:
    extra = ["aggregation.weighting=uniform"] if name == "dp_fedavg" else []
    config = config_io.load(ServerConfig, overrides=[f"aggregation.preset={name}",
                                                     "strategy.proximal_mu=0.1", *extra],
                            environ={})
    program = build_program(config, initial={"w": np.zeros(2, np.float32)}, evaluator=None)
    assert program.name == name
    assert [t.name for t in program.transforms][0] == "optimizer"
    assert (program.instructions(1).proximal_mu > 0) == (name == "fedprox")


def test_health_and_reflection_are_served(tmp_path: Path) -> None:
    config = server_config(tmp_path / "s", "evaluation.test_set=", "network.reflection=true")
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


def test_aggregation_config_rejects_unknown_and_impossible_combinations() -> None:
    with pytest.raises(config_io.ConfigError, match="preset"):
        config_io.load(AggregationConfig, overrides=["preset=fedfoo"], environ={})
    with pytest.raises(config_io.ConfigError, match="weighting"):
        config_io.load(AggregationConfig, overrides=["weighting=votes"], environ={})
    with pytest.raises(config_io.ConfigError,
                       match="aggregation.preset and strategy.proximal_mu"):
        config_io.load(ServerConfig, overrides=["aggregation.preset=fedprox",
                                                "strategy.proximal_mu=0"], environ={})
