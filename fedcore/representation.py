"""Representation-quality summary of a client's data (FedCompress's adaptive cluster count).

FedCompress raises the cluster count when the clients' validation accuracy *and* a
representation-quality score have plateaued. The score is the effective rank of the
clients' L2-normalised embeddings ``E`` (one row per example): with singular values
``s_i`` of ``E`` and ``p_i = s_i / sum(s)``, ``score = exp(-sum p_i log p_i)``.

Embeddings never leave a client. Each client sends a fixed-size :class:`Summary`:

- ``gram``: the upper triangle (row-major, diagonal included) of ``Z^T Z``, where ``Z``
  holds the client's normalised embeddings projected on ``dim`` fixed orthonormal
  directions ``P`` (``Z = normalise(E) @ P``; ``P`` is the identity when ``dim`` is 0 or
  at least the embedding width, else the Q factor of a Gaussian matrix seeded by the
  task's ``representation_seed``, so every client and the server use the same ``P``);
- ``examples`` and ``correct``: the number of examples summarised and how many of them
  the client's trained model classifies correctly (the accuracy the rule reads).

Sums of summaries are summaries of the union (``sum_c Z_c^T Z_c = Z^T Z``), so the
server adds them (a plain sum: it would also work under secure aggregation) and takes the
singular values of the union as ``sqrt(eigvalsh(sum gram))`` (:func:`effective_rank`).
With ``dim = 0`` the score is exactly the reference's; with a projection it is the
effective rank of a ``dim``-dimensional sketch of the same embeddings (capped at
``dim``), which costs ``dim (dim + 1) / 2`` numbers instead of ``d (d + 1) / 2``.

The embedding of an example is the input of the model's last ``nn.Linear`` layer (the
penultimate representation; for W1's MLP the 256-d output of the second hidden layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

EIGEN_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Summary:
    gram: np.ndarray  # float32 upper triangle of Z^T Z, length dim (dim + 1) / 2
    examples: float
    correct: float

    def as_tensors(self) -> dict[str, np.ndarray]:
        return {"gram": self.gram.astype(np.float32),
                "examples": np.array([self.examples], dtype=np.float32),
                "correct": np.array([self.correct], dtype=np.float32)}


def triangle_size(dim: int) -> int:
    return dim * (dim + 1) // 2


def projection(width: int, dim: int, *, seed: int) -> torch.Tensor:
    """``width x min(dim, width)`` orthonormal columns (identity when no projection)."""
    if dim <= 0 or dim >= width:
        return torch.eye(width)
    gen = torch.Generator().manual_seed(int(seed) & ((1 << 63) - 1))
    q, _ = torch.linalg.qr(torch.randn(width, dim, generator=gen, dtype=torch.float64))
    return q.to(torch.float32)


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to take embeddings from")
    return linears[-1]


def summarize(model: nn.Module, dataset: Dataset, *, dim: int, seed: int,
              batch_size: int = 256) -> Summary:
    """The summary of ``dataset`` under ``model`` (eval mode, no grad)."""
    head = _last_linear(model)
    width = int(head.in_features)
    proj = projection(width, dim, seed=seed)
    out = proj.shape[1]
    gram = torch.zeros(out, out, dtype=torch.float64)
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
    examples, correct, was_training = 0, 0, model.training
    model.eval()
    try:
        with torch.no_grad():
            for x, y in DataLoader(dataset, batch_size=batch_size):
                captured.clear()
                logits = model(x)
                emb = captured[-1].reshape(len(x), -1).to(torch.float32)
                z = nn.functional.normalize(emb, dim=1) @ proj
                gram += (z.T.to(torch.float64) @ z.to(torch.float64))
                correct += int((logits.argmax(dim=1) == y).sum())
                examples += len(y)
    finally:
        handle.remove()
        model.train(was_training)
    rows, cols = np.triu_indices(out)
    return Summary(gram.numpy()[rows, cols].astype(np.float32), float(examples), float(correct))


def gram_from_triangle(triangle: np.ndarray) -> np.ndarray:
    """The symmetric matrix of an upper triangle laid out as :func:`summarize` sends it."""
    n = triangle.size
    dim = int((np.sqrt(8 * n + 1) - 1) / 2)
    if triangle_size(dim) != n:
        raise ValueError(f"{n} values are not the upper triangle of a square matrix")
    gram = np.zeros((dim, dim), dtype=np.float64)
    rows, cols = np.triu_indices(dim)
    gram[rows, cols] = triangle
    gram[cols, rows] = triangle
    return gram


def effective_rank(triangle: np.ndarray) -> float:
    """``exp(entropy)`` of the normalised singular values whose squares are ``eig(gram)``.

    >>> round(effective_rank(np.array([1.0, 0.0, 1.0])), 6)  # two equal directions
    2.0
    """
    eig = np.linalg.eigvalsh(gram_from_triangle(np.asarray(triangle, np.float64)))
    # a float32 Gram has eigenvalue noise ~1e-7 of the largest; its square root would add
    # spurious singular values, so eigenvalues below EIGEN_TOLERANCE x the largest are 0
    eig = np.where(eig > EIGEN_TOLERANCE * max(float(eig.max()), 0.0), eig, 0.0)
    s = np.sqrt(eig)
    total = float(s.sum())
    if total <= 0.0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def check_summary(tensors: dict[str, np.ndarray], *, dim: int) -> Summary:
    """Validate a decoded summary (sizes, finiteness, ranges); raises ValueError."""
    want = {"gram": (triangle_size(dim),), "examples": (1,), "correct": (1,)}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != want:
        raise ValueError(f"representation summary must have tensors {want}, got {got}")
    gram, n, c = tensors["gram"], float(tensors["examples"][0]), float(tensors["correct"][0])
    if not (np.isfinite(gram).all() and np.isfinite(n) and np.isfinite(c)):
        raise ValueError("representation summary is not finite")
    if not (n >= 1 and n == int(n) and 0 <= c <= n and c == int(c)):
        raise ValueError("representation summary: examples must be an integer >= 1 and "
                         "correct an integer in [0, examples]")
    diag = gram_from_triangle(gram.astype(np.float64)).diagonal()
    if diag.min() < -1e-3 * n or diag.sum() > n * (1 + 1e-3):
        raise ValueError("representation summary: the Gram diagonal must be >= 0 with a "
                         "trace of at most the number of examples (normalised rows)")
    return Summary(gram.astype(np.float32), n, c)
