"""Server optimizers: how the averaged client delta moves the global model.

FedAvg is plain SGD with learning rate 1 on the pseudo-gradient (the weighted mean delta);
FedAdam and FedYogi are the adaptive optimizers of Reddi et al., "Adaptive Federated
Optimization" (ICLR 2021). Every optimizer is stateful and implements
``state_dict``/``load_state_dict`` (checked against its name) so a restarted coordinator
resumes exactly, and ``apply_mask`` so that adaptive moments can never revive pruned
weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

Params = Mapping[str, np.ndarray]


class ServerSGD:
    name = "sgd"

    def __init__(self, *, learning_rate: float = 1.0) -> None:
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.learning_rate = learning_rate

    def step(self, params: Params, mean_delta: Params) -> dict[str, np.ndarray]:
        return {n: (p + self.learning_rate * mean_delta[n]).astype(np.float32)
                for n, p in params.items()}

    def apply_mask(self, masks: Mapping[str, np.ndarray]) -> None:
        """SGD keeps no per-weight state."""

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_state(self.name, state, ())

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate}


class ServerAdam:
    """Adam on the pseudo-gradient; ``tau`` is the adaptivity (epsilon) term."""

    name = "adam"

    def __init__(self, *, learning_rate: float = 0.01, beta1: float = 0.9, beta2: float = 0.99,
                 tau: float = 1e-3) -> None:
        if learning_rate <= 0 or tau <= 0:
            raise ValueError("learning_rate and tau must be > 0")
        self.learning_rate, self.beta1, self.beta2, self.tau = learning_rate, beta1, beta2, tau
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def _second_moment(self, v: np.ndarray, g: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * g * g

    def step(self, params: Params, mean_delta: Params) -> dict[str, np.ndarray]:
        out = {}
        for name, p in params.items():
            g = np.asarray(mean_delta[name], dtype=np.float32)
            m = self.m.get(name, np.zeros_like(g))
            v = self.v.get(name, np.full_like(g, self.tau * self.tau))
            self.m[name] = self.beta1 * m + (1 - self.beta1) * g
            self.v[name] = self._second_moment(v, g)
            update = self.learning_rate * self.m[name] / (np.sqrt(self.v[name]) + self.tau)
            out[name] = (p + update).astype(np.float32)
        return out

    def apply_mask(self, masks: Mapping[str, np.ndarray]) -> None:
        for name, mask in masks.items():
            for moments in (self.m, self.v):
                if name in moments:
                    moments[name] = np.where(mask, moments[name], 0).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "m": dict(self.m), "v": dict(self.v)}

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate, "beta1": self.beta1,
                "beta2": self.beta2, "tau": self.tau}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _check_state(self.name, state, ("m", "v"))
        self.m = {k: np.asarray(a, dtype=np.float32) for k, a in state["m"].items()}
        self.v = {k: np.asarray(a, dtype=np.float32) for k, a in state["v"].items()}


class ServerYogi(ServerAdam):
    """Yogi: additive second-moment update that grows v only where it is too small."""

    name = "yogi"

    def _second_moment(self, v: np.ndarray, g: np.ndarray) -> np.ndarray:
        g2 = g * g
        return v - (1 - self.beta2) * g2 * np.sign(v - g2)


def _check_state(name: str, state: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    if state.get("name") != name:
        raise ValueError(f"optimizer state is for {state.get('name')!r}, not {name!r}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{name} optimizer state lacks keys {missing}")


ServerOptimizer = ServerSGD | ServerAdam
