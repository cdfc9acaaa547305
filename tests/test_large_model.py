"""A 100 MB model moves both ways over real gRPC with the default 4 MiB message limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcore.model_codec import decode_model, model_digest
from tests.helpers import RawClient, running_server, server_config, update_for

pytestmark = pytest.mark.slow


def test_hundred_megabyte_model_round_trip(tmp_path: Path) -> None:
    config = server_config(tmp_path / "state", "training.model=tests.bigmodel:build",
                           "evaluation.test_set=", "wire.zstd=false",
                           f"network.max_payload_bytes={200 << 20}")
    with running_server(config) as server:
        client = RawClient(server.port)  # grpc defaults: 4 MiB per message
        task = client.round()
        payload = client.pull(task)
        assert payload.ByteSize() >= 100_000_000
        params = decode_model(payload.model)
        assert model_digest(params) == model_digest(server.coordinator.model.params)
        delta = {k: np.full_like(v, 1e-3) for k, v in params.items()}
        header, data = update_for(task, delta)
        assert len(data) >= 100_000_000 and header.stream.total_bytes == len(data)
        ack = client.push_payload(header, data)
        assert ack.accepted and not ack.duplicate
        new = server.coordinator.model.params
        assert server.coordinator.model.version == 1
        name = next(iter(new))
        np.testing.assert_allclose(new[name], params[name] + 1e-3, atol=1e-6)
        client.close()
