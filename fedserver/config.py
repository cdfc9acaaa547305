"""Coordinator configuration: one frozen dataclass tree, loaded by ``fedcore.config``.

Defaults are workload W1 (docs/workloads.md): 10 clients, 30 rounds, 2 local epochs of SGD
(lr 0.05, momentum 0.9, batch 32), FedAvg, float32 on the wire.
Cross-section rules (impossible combinations) live with the presets. Every section validates
itself and names the bad key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath

from fedcore.model_codec import VALUE_CODEC_BY_NAME
from fedcore.secrets import SECRET
from fedserver.pruning.config import PruningConfig


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {message}")


@dataclass(frozen=True)
class NetworkConfig:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 picks a free port
    # threads doing CPU work off the event loop (decode/fold updates, encode the model,
    # store writes); waiting calls take none
    max_workers: int = 4
    # calls open at once, waiting long-polls included (~45 KB each); more are refused with
    # RESOURCE_EXHAUSTED, counted in fedprune_rejected_calls and logged
    max_concurrent_rpcs: int = 16384
    max_message_bytes: int = 4 << 20  # per gRPC message; payloads stream in 1 MiB chunks
    max_payload_bytes: int = 256 << 20  # cap on one pushed update, checked from its header
    long_poll_s: float = 20.0  # cap on how long Round holds a check-in before WAIT
    grace_s: float = 5.0  # SIGTERM: time given to in-flight RPCs
    metrics_port: int = -1  # Prometheus /metrics on host:metrics_port; -1 off, 0 a free port
    # serve a non-loopback address without TLS or with the built-in token (``--insecure``)
    insecure: bool = False
    reflection: bool = False  # gRPC server reflection (v1alpha and v1); opt-in
    stream_idle_s: float = 30.0  # a PushUpdate stream silent this long is cancelled
    # client-streaming / bidi calls (PushUpdate, reflection) reading at once; more wait
    # up to stream_slot_wait_s for a slot, then RESOURCE_EXHAUSTED. Bounds pushes in memory.
    max_open_streams: int = 256
    # How long a stream waits for a slot. Longer than the read deadline: when C clients
    # push at once, pushes queue at the coordinator's fold rate (10,000 at ~170/s is about
    # a minute), and a refused push costs a re-upload; each waiting call holds only its
    # gRPC stream (bounded by max_concurrent_rpcs and max_calls_per_client).
    stream_slot_wait_s: float = 120.0
    # PullModel streams sending at once (each holds about one chunk); more wait their turn
    max_open_downloads: int = 32
    # calls one client id may have in progress at once (long-polls, pulls, pushes); more
    # are refused with RESOURCE_EXHAUSTED (rejection reason too_many_calls)
    max_calls_per_client: int = 4
    # a task's model payload up to this size rides inside the Task (no PullModel call)
    inline_payload_bytes: int = 1 << 20  # 0: never inline

    def __post_init__(self) -> None:
        _check(0 <= self.port <= 65535, "port", "must be in 0..65535")
        _check(-1 <= self.metrics_port <= 65535, "metrics_port",
               "must be -1 (off) or in 0..65535")
        _check(1 <= self.max_workers <= 256, "max_workers", "must be in 1..256")
        _check(self.max_concurrent_rpcs >= 16, "max_concurrent_rpcs", "must be >= 16")
        _check(self.max_message_bytes >= 2 << 20, "max_message_bytes", "must be >= 2 MiB")
        _check(self.max_payload_bytes > 0, "max_payload_bytes", "must be > 0")
        _check(self.long_poll_s > 0, "long_poll_s", "must be > 0")
        _check(self.stream_idle_s > 0, "stream_idle_s", "must be > 0")
        _check(self.stream_slot_wait_s > 0, "stream_slot_wait_s", "must be > 0")
        _check(0 <= self.inline_payload_bytes <= self.max_message_bytes // 2,
               "inline_payload_bytes", "must be in 0..max_message_bytes/2")
        _check(self.max_open_streams >= 1, "max_open_streams", "must be >= 1")
        _check(self.max_open_downloads >= 1, "max_open_downloads", "must be >= 1")
        _check(1 <= self.max_calls_per_client <= 64, "max_calls_per_client",
               "must be in 1..64")

    @property
    def open_streams_limit(self) -> int:
        return self.max_open_streams


@dataclass(frozen=True)
class RoundConfig:
    rounds: int = 30
    clients_per_round: int = 10  # updates wanted per round
    min_clients: int = 2  # quorum: fewer accepted updates by the deadline fails the round
    over_selection: float = 0.0  # select ceil(n * (1 + x)) to absorb dropouts
    selection_timeout_s: float = 60.0  # then start with >= min_clients waiting clients
    deadline_s: float = 120.0  # from selection until the last accepted push
    federated_eval_every: int = 0  # run an EVALUATE step on clients every N rounds (0: off)
    eval_deadline_s: float = 30.0
    seed: int = 0  # client sampling
    # waiting: among clients long-polling | poisson / uniform: from the registered population
    selection: str = "waiting"
    sampling_rate: float = 0.0  # poisson: each known client takes part with this q
    population: int = 0  # poisson / uniform: clients to register before the first draw

    def __post_init__(self) -> None:
        self._validate()
        _check(self.selection in ("waiting", "poisson", "uniform"), "selection",
               "must be waiting, poisson or uniform")
        if self.selection == "poisson":
            _check(0 < self.sampling_rate <= 1, "sampling_rate",
                   "must be in (0, 1] with selection = poisson")
            _check(self.population >= 1, "population", "must be >= 1 with selection = poisson")
        if self.selection == "uniform":
            _check(self.population >= self.clients_per_round, "population",
                   "must be >= clients_per_round with selection = uniform")
            _check(self.sampling_rate == 0, "sampling_rate",
                   "applies to selection = poisson only (uniform draws a fixed-size cohort)")

    def _validate(self) -> None:
        _check(self.rounds >= 1, "rounds", "must be >= 1")
        _check(self.clients_per_round >= 1, "clients_per_round", "must be >= 1")
        _check(1 <= self.min_clients <= self.clients_per_round, "min_clients",
               "must be in 1..clients_per_round")
        _check(0 <= self.over_selection <= 1, "over_selection", "must be in 0..1")
        _check(self.deadline_s > 0, "deadline_s", "must be > 0")
        _check(self.selection_timeout_s > 0, "selection_timeout_s", "must be > 0")
        _check(self.federated_eval_every >= 0, "federated_eval_every", "must be >= 0")


MAX_LEARNING_RATE = 10.0  # above it local SGD diverges for any model clients could train


@dataclass(frozen=True)
class ScheduleConfig:
    """``[schedule]``: when the model moves. ``sync``: rounds of a selected cohort (the
    ``[round]`` section). ``fedbuff`` (Nguyen et al. 2022, docs/round-program.md): every
    client that checks in trains on the current model; every ``buffer_size`` accepted
    updates are one server step (a "round"; ``round.rounds`` of them), each update scaled by
    its staleness weight; an update more than ``max_staleness`` steps old is refused."""

    mode: str = "sync"  # sync | fedbuff
    buffer_size: int = 10  # K: accepted updates per server step
    max_staleness: int = 10  # server steps an update may lag behind the model
    staleness_weighting: str = "polynomial"  # polynomial: (1 + s)^-exponent | constant: 1
    staleness_exponent: float = 0.5  # 0.5: 1 / sqrt(1 + staleness)

    def __post_init__(self) -> None:
        from fedserver.aggregators.staleness import STALENESS_WEIGHTINGS
        from fedserver.schedules import SCHEDULES

        _check(self.mode in SCHEDULES, "mode", f"must be one of {sorted(SCHEDULES)}")
        _check(self.buffer_size >= 1, "buffer_size", "must be >= 1")
        _check(self.max_staleness >= 0, "max_staleness", "must be >= 0")
        _check(self.staleness_weighting in STALENESS_WEIGHTINGS, "staleness_weighting",
               f"must be one of {sorted(STALENESS_WEIGHTINGS)}")
        _check(0 <= self.staleness_exponent < float("inf"), "staleness_exponent",
               "must be finite and >= 0")


@dataclass(frozen=True)
class TrainingConfig:
    """What clients are told to train: the model and the local optimizer."""

    model: str = "mlp"
    local_epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0  # initial global model

    def __post_init__(self) -> None:
        _check(bool(self.model), "model", "must name a registered model or package.module:function")
        _check(self.local_epochs >= 1, "local_epochs", "must be >= 1")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(0 < self.learning_rate <= MAX_LEARNING_RATE, "learning_rate",
               f"must be a finite number in (0, {MAX_LEARNING_RATE:g}]")
        _check(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        _check(0 <= self.weight_decay < float("inf"), "weight_decay", "must be finite and >= 0")


@dataclass(frozen=True)
class StrategyConfig:
    """The numbers of the server optimizer and the client objective (the preset picks which)."""

    proximal_mu: float = 0.01  # fedprox only
    server_learning_rate: float = 0.0  # 0: the preset's default (1.0 SGD, 0.01 adaptive)
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    qffl_q: float = 1.0  # q_ffl only: fairness exponent q (0 is FedAvg with uniform weights)
    qffl_lipschitz: float = 0.0  # q_ffl only: L (0: (1 - momentum) / learning_rate)

    def __post_init__(self) -> None:
        _check(self.proximal_mu >= 0, "proximal_mu", "must be >= 0")
        _check(0 <= self.qffl_q <= 50, "qffl_q", "must be in [0, 50]")
        _check(0 <= self.qffl_lipschitz < float("inf"), "qffl_lipschitz", "must be finite and >= 0")
        _check(self.server_learning_rate >= 0, "server_learning_rate", "must be >= 0")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1/beta2", "must be in [0, 1)")
        _check(self.tau > 0, "tau", "must be > 0")


@dataclass(frozen=True)
class NormBoundConfig:
    """``[aggregation.norm_bound]``: L2 bound on each client's delta (preset robust_fedavg)."""

    max_norm: float = 0.0  # 0: the preset's default

    def __post_init__(self) -> None:
        _check(0 <= self.max_norm < float("inf"), "max_norm", "must be finite and >= 0")


@dataclass(frozen=True)
class TrimmedMeanConfig:
    """``[aggregation.trimmed_mean]``: fraction dropped at each end per coordinate (preset
    robust_trimmed_mean); tolerates up to ``floor(beta * n)`` adversarial clients of ``n``."""

    beta: float = 0.2

    def __post_init__(self) -> None:
        _check(0 <= self.beta < 0.5, "beta", "must be in [0, 0.5)")


@dataclass(frozen=True)
class KrumConfig:
    """``[aggregation.krum]``: multi-Krum (preset robust_krum) assuming at most ``f``
    adversarial clients, averaging the ``m`` best-scored updates (0: n - f)."""

    f: int = 1
    m: int = 0

    def __post_init__(self) -> None:
        _check(self.f >= 0, "f", "must be >= 0")
        _check(self.m >= 0, "m", "must be >= 0 (0: n - f)")


@dataclass(frozen=True)
class DPConfig:
    """``[dp]``: user-level differential privacy (preset ``dp_fedavg``), validated as a unit.

    Each round clips every client's delta to ``clip_norm`` (the initial norm when
    ``adaptive``), sums, adds N(0, (noise_multiplier * clip_norm)^2) and divides by
    ``expected_clients``. Selection is not Poisson sampling, so the accountant claims no
    amplification by sampling (q = 1)."""

    mode: str = "central"  # central (trusted coordinator) | distributed (clients add noise)
    noise_multiplier: float = 1.0
    clip_norm: float = 1.0
    adaptive: bool = False  # move clip_norm toward target_quantile of the update norms
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    count_stddev: float = 0.0  # adaptive: noise on the unclipped count (0: expected / 20)
    expected_clients: int = 0  # the fixed denominator (0: round.clients_per_round)
    delta: float = 1e-5
    target_epsilon: float = 0.0  # stop the run before exceeding it (0: no budget)
    testing_seed: int = -1  # >= 0: reproducible noise, NOT private (tests only)

    def __post_init__(self) -> None:
        inf = float("inf")
        _check(self.mode in ("central", "distributed"), "mode", "must be central or distributed")
        _check(0 <= self.noise_multiplier < inf, "noise_multiplier", "must be finite and >= 0")
        _check(0 < self.clip_norm < inf, "clip_norm", "must be finite and > 0")
        _check(0 < self.target_quantile < 1, "target_quantile", "must be in (0, 1)")
        _check(0 < self.clip_learning_rate < inf, "clip_learning_rate", "must be > 0")
        _check(0 <= self.count_stddev < inf, "count_stddev", "must be finite and >= 0")
        _check(self.expected_clients >= 0, "expected_clients", "must be >= 0")
        _check(0 < self.delta < 1, "delta", "must be in (0, 1)")
        _check(0 <= self.target_epsilon < inf, "target_epsilon", "must be finite and >= 0")


@dataclass(frozen=True)
class SecAggConfig:
    """``[secagg]``: secure aggregation (docs/privacy.md). The coordinator learns only the
    sum of the updates of the clients that completed the round's four phases.

    ``threshold``: shares needed to reconstruct a client's secrets, as a fraction in (0, 1)
    of the share group (the cohort ``round.clients_per_round`` on the complete graph,
    ``neighbours + 1`` under SecAgg+), or as a count >= 2. Every phase needs at least that
    many survivors. ``neighbours``: SecAgg+ degree (even; 0 = complete graph). Updates are
    clipped per coordinate to ``[-clip_range, clip_range]`` and encoded with
    ``value_bits``; the ring adds ``ceil(log2(cohort))`` bits so sums never wrap."""

    enabled: bool = False
    threshold: float = 0.6
    neighbours: int = 0
    value_bits: int = 16
    clip_range: float = 1.0
    step_deadline_s: float = 30.0  # advertise, share and unmask phases (train: round.deadline_s)

    def __post_init__(self) -> None:
        t = self.threshold
        _check(0 < t < 1 or (t >= 2 and t == int(t)), "threshold",
               "must be a fraction in (0, 1) or a whole count >= 2")
        _check(self.neighbours >= 0 and self.neighbours % 2 == 0, "neighbours",
               "must be an even number >= 0 (0: complete graph)")
        _check(2 <= self.value_bits <= 32, "value_bits", "must be in 2..32")
        _check(0 < self.clip_range < float("inf"), "clip_range", "must be finite and > 0")
        _check(self.step_deadline_s > 0, "step_deadline_s", "must be > 0")


@dataclass(frozen=True)
class AggregationConfig:
    """Which round program runs (``preset``) and how claimed example counts become weights."""

    preset: str = "fedavg"  # see fedserver.presets.PRESETS
    weighting: str = "examples"  # examples | sqrt | uniform
    weight_cap: float = 4.0  # x the population's median claimed examples (0: no cap)
    norm_bound: NormBoundConfig = field(default_factory=NormBoundConfig)
    trimmed_mean: TrimmedMeanConfig = field(default_factory=TrimmedMeanConfig)
    krum: KrumConfig = field(default_factory=KrumConfig)
    max_buffer_bytes: int = 1 << 30  # cap on a buffering aggregator's updates (median, Krum)

    def __post_init__(self) -> None:
        from fedserver.aggregators.weighting import WEIGHTINGS
        from fedserver.presets import PRESETS

        _check(self.preset in PRESETS, "preset", f"must be one of {sorted(PRESETS)}")
        _check(self.weighting in WEIGHTINGS, "weighting", f"must be one of {sorted(WEIGHTINGS)}")
        _check(self.weight_cap >= 0 and self.weight_cap != float("inf"), "weight_cap",
               "must be finite and >= 0")
        _check(self.max_buffer_bytes > 0, "max_buffer_bytes", "must be > 0")


@dataclass(frozen=True)
class WireConfig:
    downlink: str = "fp32"  # value codec of the broadcast model
    uplink: str = "fp32"  # value codec clients use for updates
    clusters: int = 16  # k for the "clustered" codec
    zstd: bool = True
    # send a client that holds the previous broadcast model only the (downlink-encoded)
    # difference; full payloads are then lossless (fp32), see fedserver/broadcast.py
    downlink_delta: bool = False

    def __post_init__(self) -> None:
        for key in ("downlink", "uplink"):
            _check(getattr(self, key) in VALUE_CODEC_BY_NAME, key,
                   f"must be one of {sorted(VALUE_CODEC_BY_NAME)}")
        _check(1 <= self.clusters <= 256, "clusters", "must be in 1..256")


@dataclass(frozen=True)
class AuthConfig:
    """Client credentials. ``tokens`` maps client id -> token; ``shared_token`` admits any id.

    Each token may be given as plaintext or as its ``sha256:<hex>`` digest (what
    ``--print-config`` and the run store show); a verified client certificate (mTLS)
    authenticates without a token.

    Limits (docs/threat-model.md): a client id never seen before that only the shared
    token vouches for registers only while fewer than ``max_new_clients`` did so in the
    current ``new_client_window_s`` (0: no cap); a peer (certificate name, else address)
    with ``max_failures`` failed authentications in ``failure_window_s`` is refused
    without a token check until the window ends; at most ``max_tracked_peers`` peers are
    remembered."""

    tokens: dict[str, str] = field(default_factory=dict, metadata=SECRET)
    shared_token: str = field(default="", metadata=SECRET)
    max_new_clients: int = 100
    new_client_window_s: float = 60.0
    max_failures: int = 20
    failure_window_s: float = 60.0
    max_tracked_peers: int = 10_000

    def __post_init__(self) -> None:
        _check(bool(self.tokens) or bool(self.shared_token), "tokens",
               "set auth.tokens or auth.shared_token: the coordinator admits no anonymous clients")
        _check(self.max_new_clients >= 0, "max_new_clients", "must be >= 0 (0: no cap)")
        for key in ("new_client_window_s", "failure_window_s"):
            value = getattr(self, key)
            _check(0 < value < float("inf"), key, "must be finite and > 0")
        _check(self.max_failures >= 1, "max_failures", "must be >= 1")
        _check(self.max_tracked_peers >= 1, "max_tracked_peers", "must be >= 1")


@dataclass(frozen=True)
class TlsConfig:
    """``[tls]``: the coordinator's certificate, and the CA its clients' certificates need.

    With ``client_ca`` set (and ``require_client_cert``, which must then be true) every
    client presents a certificate signed by it; that certificate names the client (its
    subject CN, else its first SAN) and metadata cannot claim another id (mTLS)."""

    cert: str = ""  # PEM certificate chain of the coordinator; "" = plaintext
    key: str = ""  # its private key
    client_ca: str = ""  # CA bundle that signs client certificates
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        _check(bool(self.cert) == bool(self.key), "cert/key", "set both or neither")
        _check(not self.client_ca or bool(self.cert), "client_ca", "needs cert and key")
        # grpcio's ssl_server_credentials cannot ask for an optional client certificate
        _check(self.require_client_cert == bool(self.client_ca), "require_client_cert",
               "must be true exactly when client_ca is set (client certificates are all or none)")

    @property
    def enabled(self) -> bool:
        return bool(self.cert)


NAMED_TEST_SETS = ("digits", "synthetic")
TEST_SET_FILES = {".npz": "npz", ".csv": "csv"}


def test_set_source(test_set: str) -> tuple[str, str]:
    """``(source, path)`` of an ``evaluation.test_set`` value for
    :func:`fedcore.datasets.load_test_set`; ValueError naming the accepted forms."""
    if test_set in NAMED_TEST_SETS:
        return test_set, ""
    source = TEST_SET_FILES.get(PurePath(test_set).suffix.lower())
    if source is None:
        raise ValueError(f"test_set: must be {' or '.join(NAMED_TEST_SETS)}, a path to a "
                         f".npz or .csv file, or \"\" (no server evaluation); got {test_set!r}")
    return source, test_set


test_set_source.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@dataclass(frozen=True)
class FedCompressConfig:
    """``[fedcompress]``: the FedCompress method (preset ``fedcompress``, docs/fedcompress.md).

    Clients cluster their weight tensors while training, at a ``k`` the server raises from
    ``clusters_min`` to at most ``clusters_max`` when accuracy and representation score
    plateau; the server distils each aggregate into a clustered student on unlabeled data
    (``distill = false``: client-side clustering only, the broadcast is the plain
    aggregate)."""

    clusters_min: int = 8
    clusters_max: int = 30
    cluster_step: int = 1
    window: int = 3  # rolling mean of accuracy and score over this many rounds
    patience: int = 4  # rounds at one k before it may grow
    warmup_rounds: int = 3
    limit: float = 0.01  # accuracy plateau threshold (the score's is 10x), shrinks with k
    threshold_base: float = 2.0
    cluster_epochs: int = 1  # of training.local_epochs, the last ones train clustered
    centroid_learning_rate: float = 1e-3
    representation_dim: int = 16  # projected embedding width of the summary (0: full)
    distill: bool = True
    distill_data: str = "procedural"  # or the path of an npz with unlabeled inputs "x"
    distill_examples: int = 2048  # size of the procedural set
    distill_epochs: int = 10
    distill_batch_size: int = 256
    distill_learning_rate: float = 1e-4
    temperature: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check(1 <= self.clusters_min <= 256, "clusters_min", "must be in 1..256")
        _check(self.clusters_min <= self.clusters_max <= 256, "clusters_max",
               "must be in clusters_min..256")
        for key in ("cluster_step", "window", "patience", "warmup_rounds", "cluster_epochs",
                    "distill_batch_size"):
            _check(getattr(self, key) >= 1, key, "must be >= 1")
        _check(0 <= self.limit < float("inf"), "limit", "must be finite and >= 0")
        _check(0 < self.threshold_base < float("inf"), "threshold_base", "must be finite, > 0")
        _check(0 <= self.centroid_learning_rate < float("inf"), "centroid_learning_rate",
               "must be finite and >= 0")
        _check(0 <= self.representation_dim <= 256, "representation_dim", "must be in 0..256")
        _check(bool(self.distill_data), "distill_data", "must be 'procedural' or an npz path")
        _check(1 <= self.distill_examples <= 1 << 20, "distill_examples",
               "must be in 1..1048576")
        _check(self.distill_epochs >= 0, "distill_epochs", "must be >= 0")
        _check(0 < self.distill_learning_rate < float("inf"), "distill_learning_rate",
               "must be finite and > 0")
        _check(0 < self.temperature < float("inf"), "temperature", "must be finite and > 0")
        _check(self.seed >= 0, "seed", "must be >= 0")


@dataclass(frozen=True)
class EvaluationConfig:
    """``[evaluation]``: the server-side held-out set (see :mod:`fedserver.evaluation`):
    ``digits``, ``synthetic``, the path of the user's own .npz/.csv file, or "" (off)."""

    test_set: str = "digits"
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.test_set:
            test_set_source(self.test_set)
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclass(frozen=True)
class PersonalizationConfig:
    """``[personalization]``: models that serve each client's own data (docs/robustness.md).

    ``personal_layers`` (FedPer): tensor names, or ``"head"`` for the model's last layer,
    that never leave the clients; each client trains and keeps its own copy. ``finetune_epochs``
    (FedAvg + FT): at federated evaluation each client also reports the accuracy of the
    global model fine-tuned for this many epochs on its own training split. Either one makes
    federated evaluation report a personalized accuracy per client next to the global one."""

    personal_layers: tuple[str, ...] = ()
    finetune_epochs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "personal_layers", tuple(str(n) for n in self.personal_layers))
        _check(all(self.personal_layers), "personal_layers", "names must not be empty")
        _check(0 <= self.finetune_epochs <= 100, "finetune_epochs", "must be in 0..100")

    @property
    def enabled(self) -> bool:
        return bool(self.personal_layers) or self.finetune_epochs > 0


@dataclass(frozen=True)
class ServerConfig:
    state_dir: str = "fedprune-state"
    log_level: str = "INFO"
    log_format: str = "text"  # text | json
    network: NetworkConfig = field(default_factory=NetworkConfig)
    round: RoundConfig = field(default_factory=RoundConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    aggregation: AggregationConfig = field(default_factory=AggregationConfig)
    dp: DPConfig = field(default_factory=DPConfig)
    secagg: SecAggConfig = field(default_factory=SecAggConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    wire: WireConfig = field(default_factory=WireConfig)
    auth: AuthConfig = field(default_factory=lambda: AuthConfig(shared_token="fedprune-local"))
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    pruning: PruningConfig = field(default_factory=PruningConfig)
    personalization: PersonalizationConfig = field(default_factory=PersonalizationConfig)
    fedcompress: FedCompressConfig = field(default_factory=FedCompressConfig)

    def __post_init__(self) -> None:
        _check(self.log_format in ("text", "json"), "log_format", "must be text or json")
        _check(self.log_level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "log_level",
               "must be DEBUG, INFO, WARNING or ERROR")
        from fedserver.presets import check_combination

        check_combination(self)
