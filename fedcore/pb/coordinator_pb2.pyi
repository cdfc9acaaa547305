from fedcore.pb import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_KIND_UNSPECIFIED: _ClassVar[TaskKind]
    TASK_KIND_WAIT: _ClassVar[TaskKind]
    TASK_KIND_TRAIN: _ClassVar[TaskKind]
    TASK_KIND_EVALUATE: _ClassVar[TaskKind]
    TASK_KIND_SHUTDOWN: _ClassVar[TaskKind]
    TASK_KIND_ADVERTISE_KEYS: _ClassVar[TaskKind]
    TASK_KIND_SHARE_KEYS: _ClassVar[TaskKind]
    TASK_KIND_MASKED_TRAIN: _ClassVar[TaskKind]
    TASK_KIND_UNMASK: _ClassVar[TaskKind]

class ValueCodec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VALUE_CODEC_UNSPECIFIED: _ClassVar[ValueCodec]
    VALUE_CODEC_FP32: _ClassVar[ValueCodec]
    VALUE_CODEC_FP16: _ClassVar[ValueCodec]
    VALUE_CODEC_BF16: _ClassVar[ValueCodec]
    VALUE_CODEC_INT8: _ClassVar[ValueCodec]
    VALUE_CODEC_INT4: _ClassVar[ValueCodec]
    VALUE_CODEC_CLUSTERED: _ClassVar[ValueCodec]

class ModelForm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_FORM_FULL: _ClassVar[ModelForm]
    MODEL_FORM_DELTA: _ClassVar[ModelForm]
    MODEL_FORM_HELD: _ClassVar[ModelForm]

class FailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_REASON_UNSPECIFIED: _ClassVar[FailureReason]
    FAILURE_REASON_NON_FINITE_UPDATE: _ClassVar[FailureReason]
    FAILURE_REASON_MODEL_NOT_ALLOWED: _ClassVar[FailureReason]
    FAILURE_REASON_BAD_MODEL: _ClassVar[FailureReason]
TASK_KIND_UNSPECIFIED: TaskKind
TASK_KIND_WAIT: TaskKind
TASK_KIND_TRAIN: TaskKind
TASK_KIND_EVALUATE: TaskKind
TASK_KIND_SHUTDOWN: TaskKind
TASK_KIND_ADVERTISE_KEYS: TaskKind
TASK_KIND_SHARE_KEYS: TaskKind
TASK_KIND_MASKED_TRAIN: TaskKind
TASK_KIND_UNMASK: TaskKind
VALUE_CODEC_UNSPECIFIED: ValueCodec
VALUE_CODEC_FP32: ValueCodec
VALUE_CODEC_FP16: ValueCodec
VALUE_CODEC_BF16: ValueCodec
VALUE_CODEC_INT8: ValueCodec
VALUE_CODEC_INT4: ValueCodec
VALUE_CODEC_CLUSTERED: ValueCodec
MODEL_FORM_FULL: ModelForm
MODEL_FORM_DELTA: ModelForm
MODEL_FORM_HELD: ModelForm
FAILURE_REASON_UNSPECIFIED: FailureReason
FAILURE_REASON_NON_FINITE_UPDATE: FailureReason
FAILURE_REASON_MODEL_NOT_ALLOWED: FailureReason
FAILURE_REASON_BAD_MODEL: FailureReason

class RoundRequest(_message.Message):
    __slots__ = ("max_wait_ms", "num_examples", "client_version", "held_mask_id", "held_model_version", "held_model_digest")
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    CLIENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HELD_MASK_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HELD_MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    max_wait_ms: int
    num_examples: int
    client_version: str
    held_mask_id: str
    held_model_version: int
    held_model_digest: bytes
    def __init__(self, max_wait_ms: _Optional[int] = ..., num_examples: _Optional[int] = ..., client_version: _Optional[str] = ..., held_mask_id: _Optional[str] = ..., held_model_version: _Optional[int] = ..., held_model_digest: _Optional[bytes] = ...) -> None: ...

class Encoding(_message.Message):
    __slots__ = ("values", "clusters", "zstd")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    ZSTD_FIELD_NUMBER: _ClassVar[int]
    values: ValueCodec
    clusters: int
    zstd: bool
    def __init__(self, values: _Optional[_Union[ValueCodec, str]] = ..., clusters: _Optional[int] = ..., zstd: _Optional[bool] = ...) -> None: ...

class TrainInstructions(_message.Message):
    __slots__ = ("local_epochs", "batch_size", "learning_rate", "momentum", "weight_decay", "proximal_mu", "compute_scores", "score_kind", "score_granularity", "clip_norm", "noise_stddev", "personal_layers", "report_initial_loss", "client_training", "clusters", "cluster_epochs", "centroid_learning_rate", "report_representation", "representation_dim", "representation_seed")
    class ScoreGranularityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LOCAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    MOMENTUM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    PROXIMAL_MU_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_SCORES_FIELD_NUMBER: _ClassVar[int]
    SCORE_KIND_FIELD_NUMBER: _ClassVar[int]
    SCORE_GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    CLIP_NORM_FIELD_NUMBER: _ClassVar[int]
    NOISE_STDDEV_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_LAYERS_FIELD_NUMBER: _ClassVar[int]
    REPORT_INITIAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TRAINING_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    CENTROID_LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    REPORT_REPRESENTATION_FIELD_NUMBER: _ClassVar[int]
    REPRESENTATION_DIM_FIELD_NUMBER: _ClassVar[int]
    REPRESENTATION_SEED_FIELD_NUMBER: _ClassVar[int]
    local_epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    weight_decay: float
    proximal_mu: float
    compute_scores: bool
    score_kind: str
    score_granularity: _containers.ScalarMap[str, str]
    clip_norm: float
    noise_stddev: float
    personal_layers: _containers.RepeatedScalarFieldContainer[str]
    report_initial_loss: bool
    client_training: str
    clusters: int
    cluster_epochs: int
    centroid_learning_rate: float
    report_representation: bool
    representation_dim: int
    representation_seed: int
    def __init__(self, local_epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., momentum: _Optional[float] = ..., weight_decay: _Optional[float] = ..., proximal_mu: _Optional[float] = ..., compute_scores: _Optional[bool] = ..., score_kind: _Optional[str] = ..., score_granularity: _Optional[_Mapping[str, str]] = ..., clip_norm: _Optional[float] = ..., noise_stddev: _Optional[float] = ..., personal_layers: _Optional[_Iterable[str]] = ..., report_initial_loss: _Optional[bool] = ..., client_training: _Optional[str] = ..., clusters: _Optional[int] = ..., cluster_epochs: _Optional[int] = ..., centroid_learning_rate: _Optional[float] = ..., report_representation: _Optional[bool] = ..., representation_dim: _Optional[int] = ..., representation_seed: _Optional[int] = ...) -> None: ...

class EvaluateInstructions(_message.Message):
    __slots__ = ("batch_size", "finetune_epochs", "personal_layers")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    PERSONAL_LAYERS_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    finetune_epochs: int
    personal_layers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, batch_size: _Optional[int] = ..., finetune_epochs: _Optional[int] = ..., personal_layers: _Optional[_Iterable[str]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("kind", "task_id", "run_id", "round", "model_version", "mask_id", "retry_after_ms", "deadline_unix_ms", "model_name", "train", "evaluate", "update_encoding", "step", "model_digest", "init_seed", "init_digest", "model_payload")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MASK_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    INIT_SEED_FIELD_NUMBER: _ClassVar[int]
    INIT_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MODEL_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    kind: TaskKind
    task_id: str
    run_id: str
    round: int
    model_version: int
    mask_id: str
    retry_after_ms: int
    deadline_unix_ms: int
    model_name: str
    train: TrainInstructions
    evaluate: EvaluateInstructions
    update_encoding: Encoding
    step: ProtocolStep
    model_digest: bytes
    init_seed: int
    init_digest: bytes
    model_payload: ModelPayload
    def __init__(self, kind: _Optional[_Union[TaskKind, str]] = ..., task_id: _Optional[str] = ..., run_id: _Optional[str] = ..., round: _Optional[int] = ..., model_version: _Optional[int] = ..., mask_id: _Optional[str] = ..., retry_after_ms: _Optional[int] = ..., deadline_unix_ms: _Optional[int] = ..., model_name: _Optional[str] = ..., train: _Optional[_Union[TrainInstructions, _Mapping]] = ..., evaluate: _Optional[_Union[EvaluateInstructions, _Mapping]] = ..., update_encoding: _Optional[_Union[Encoding, _Mapping]] = ..., step: _Optional[_Union[ProtocolStep, _Mapping]] = ..., model_digest: _Optional[bytes] = ..., init_seed: _Optional[int] = ..., init_digest: _Optional[bytes] = ..., model_payload: _Optional[_Union[ModelPayload, _Mapping]] = ...) -> None: ...

class ProtocolStep(_message.Message):
    __slots__ = ("protocol", "payload", "threshold")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    payload: bytes
    threshold: int
    def __init__(self, protocol: _Optional[str] = ..., payload: _Optional[bytes] = ..., threshold: _Optional[int] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("task_id", "round", "kind", "payload")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    round: int
    kind: TaskKind
    payload: bytes
    def __init__(self, task_id: _Optional[str] = ..., round: _Optional[int] = ..., kind: _Optional[_Union[TaskKind, str]] = ..., payload: _Optional[bytes] = ...) -> None: ...

class StepAck(_message.Message):
    __slots__ = ("accepted", "duplicate", "round")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    duplicate: bool
    round: int
    def __init__(self, accepted: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., round: _Optional[int] = ...) -> None: ...

class PullModelRequest(_message.Message):
    __slots__ = ("task_id", "held_mask_id", "held_model_version", "held_model_digest")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_MASK_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HELD_MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    held_mask_id: str
    held_model_version: int
    held_model_digest: bytes
    def __init__(self, task_id: _Optional[str] = ..., held_mask_id: _Optional[str] = ..., held_model_version: _Optional[int] = ..., held_model_digest: _Optional[bytes] = ...) -> None: ...

class StreamHeader(_message.Message):
    __slots__ = ("total_bytes", "sha256")
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    total_bytes: int
    sha256: bytes
    def __init__(self, total_bytes: _Optional[int] = ..., sha256: _Optional[bytes] = ...) -> None: ...

class ModelPayload(_message.Message):
    __slots__ = ("model", "mask", "mask_delta", "form", "base_version", "model_digest")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_DELTA_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    model: _tensor_pb2.Model
    mask: _tensor_pb2.Mask
    mask_delta: MaskDelta
    form: ModelForm
    base_version: int
    model_digest: bytes
    def __init__(self, model: _Optional[_Union[_tensor_pb2.Model, _Mapping]] = ..., mask: _Optional[_Union[_tensor_pb2.Mask, _Mapping]] = ..., mask_delta: _Optional[_Union[MaskDelta, _Mapping]] = ..., form: _Optional[_Union[ModelForm, str]] = ..., base_version: _Optional[int] = ..., model_digest: _Optional[bytes] = ...) -> None: ...

class MaskDelta(_message.Message):
    __slots__ = ("base_mask_id", "mask_id", "sha256", "removed")
    BASE_MASK_ID_FIELD_NUMBER: _ClassVar[int]
    MASK_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    base_mask_id: str
    mask_id: str
    sha256: bytes
    removed: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.MaskTensor]
    def __init__(self, base_mask_id: _Optional[str] = ..., mask_id: _Optional[str] = ..., sha256: _Optional[bytes] = ..., removed: _Optional[_Iterable[_Union[_tensor_pb2.MaskTensor, _Mapping]]] = ...) -> None: ...

class ModelChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: StreamHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[StreamHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class UpdateHeader(_message.Message):
    __slots__ = ("task_id", "round", "model_version", "mask_id", "num_examples", "stream", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MASK_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    round: int
    model_version: int
    mask_id: str
    num_examples: int
    stream: StreamHeader
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, task_id: _Optional[str] = ..., round: _Optional[int] = ..., model_version: _Optional[int] = ..., mask_id: _Optional[str] = ..., num_examples: _Optional[int] = ..., stream: _Optional[_Union[StreamHeader, _Mapping]] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class UpdatePayload(_message.Message):
    __slots__ = ("delta", "scores", "absolute_tensors", "representation")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    ABSOLUTE_TENSORS_FIELD_NUMBER: _ClassVar[int]
    REPRESENTATION_FIELD_NUMBER: _ClassVar[int]
    delta: _tensor_pb2.Model
    scores: _tensor_pb2.Model
    absolute_tensors: _containers.RepeatedScalarFieldContainer[str]
    representation: _tensor_pb2.Model
    def __init__(self, delta: _Optional[_Union[_tensor_pb2.Model, _Mapping]] = ..., scores: _Optional[_Union[_tensor_pb2.Model, _Mapping]] = ..., absolute_tensors: _Optional[_Iterable[str]] = ..., representation: _Optional[_Union[_tensor_pb2.Model, _Mapping]] = ...) -> None: ...

class UpdateChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: UpdateHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[UpdateHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class PushAck(_message.Message):
    __slots__ = ("accepted", "duplicate", "round")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    duplicate: bool
    round: int
    def __init__(self, accepted: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., round: _Optional[int] = ...) -> None: ...

class EvaluationReport(_message.Message):
    __slots__ = ("task_id", "round", "num_examples", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    round: int
    num_examples: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, task_id: _Optional[str] = ..., round: _Optional[int] = ..., num_examples: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class TaskFailure(_message.Message):
    __slots__ = ("task_id", "round", "reason", "detail")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    round: int
    reason: FailureReason
    detail: str
    def __init__(self, task_id: _Optional[str] = ..., round: _Optional[int] = ..., reason: _Optional[_Union[FailureReason, str]] = ..., detail: _Optional[str] = ...) -> None: ...
