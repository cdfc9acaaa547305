from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SecAggSetup(_message.Message):
    __slots__ = ("value_bits", "ring_bits", "clip_range", "threshold", "cohort_size", "neighbours", "vector_length", "mask_id")
    VALUE_BITS_FIELD_NUMBER: _ClassVar[int]
    RING_BITS_FIELD_NUMBER: _ClassVar[int]
    CLIP_RANGE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COHORT_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MASK_ID_FIELD_NUMBER: _ClassVar[int]
    value_bits: int
    ring_bits: int
    clip_range: float
    threshold: int
    cohort_size: int
    neighbours: int
    vector_length: int
    mask_id: str
    def __init__(self, value_bits: _Optional[int] = ..., ring_bits: _Optional[int] = ..., clip_range: _Optional[float] = ..., threshold: _Optional[int] = ..., cohort_size: _Optional[int] = ..., neighbours: _Optional[int] = ..., vector_length: _Optional[int] = ..., mask_id: _Optional[str] = ...) -> None: ...

class SecAggPublicKeys(_message.Message):
    __slots__ = ("cipher_public_key", "mask_public_key")
    CIPHER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    MASK_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    cipher_public_key: bytes
    mask_public_key: bytes
    def __init__(self, cipher_public_key: _Optional[bytes] = ..., mask_public_key: _Optional[bytes] = ...) -> None: ...

class SecAggPeer(_message.Message):
    __slots__ = ("client_id", "share_index", "cipher_public_key", "mask_public_key")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SHARE_INDEX_FIELD_NUMBER: _ClassVar[int]
    CIPHER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    MASK_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    share_index: int
    cipher_public_key: bytes
    mask_public_key: bytes
    def __init__(self, client_id: _Optional[str] = ..., share_index: _Optional[int] = ..., cipher_public_key: _Optional[bytes] = ..., mask_public_key: _Optional[bytes] = ...) -> None: ...

class SecAggKeyList(_message.Message):
    __slots__ = ("peers", "threshold")
    PEERS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[SecAggPeer]
    threshold: int
    def __init__(self, peers: _Optional[_Iterable[_Union[SecAggPeer, _Mapping]]] = ..., threshold: _Optional[int] = ...) -> None: ...

class SecAggShare(_message.Message):
    __slots__ = ("sender", "recipient", "round", "share_index", "mask_key_share", "self_seed_share")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SHARE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MASK_KEY_SHARE_FIELD_NUMBER: _ClassVar[int]
    SELF_SEED_SHARE_FIELD_NUMBER: _ClassVar[int]
    sender: str
    recipient: str
    round: int
    share_index: int
    mask_key_share: bytes
    self_seed_share: bytes
    def __init__(self, sender: _Optional[str] = ..., recipient: _Optional[str] = ..., round: _Optional[int] = ..., share_index: _Optional[int] = ..., mask_key_share: _Optional[bytes] = ..., self_seed_share: _Optional[bytes] = ...) -> None: ...

class SecAggEncryptedShare(_message.Message):
    __slots__ = ("sender", "recipient", "nonce", "ciphertext")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    sender: str
    recipient: str
    nonce: bytes
    ciphertext: bytes
    def __init__(self, sender: _Optional[str] = ..., recipient: _Optional[str] = ..., nonce: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class SecAggShareUpload(_message.Message):
    __slots__ = ("shares",)
    SHARES_FIELD_NUMBER: _ClassVar[int]
    shares: _containers.RepeatedCompositeFieldContainer[SecAggEncryptedShare]
    def __init__(self, shares: _Optional[_Iterable[_Union[SecAggEncryptedShare, _Mapping]]] = ...) -> None: ...

class SecAggShareDelivery(_message.Message):
    __slots__ = ("shares",)
    SHARES_FIELD_NUMBER: _ClassVar[int]
    shares: _containers.RepeatedCompositeFieldContainer[SecAggEncryptedShare]
    def __init__(self, shares: _Optional[_Iterable[_Union[SecAggEncryptedShare, _Mapping]]] = ...) -> None: ...

class SecAggMaskedInput(_message.Message):
    __slots__ = ("vector_length", "ring_bits", "values", "num_examples", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VECTOR_LENGTH_FIELD_NUMBER: _ClassVar[int]
    RING_BITS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    vector_length: int
    ring_bits: int
    values: bytes
    num_examples: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, vector_length: _Optional[int] = ..., ring_bits: _Optional[int] = ..., values: _Optional[bytes] = ..., num_examples: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SecAggUnmaskRequest(_message.Message):
    __slots__ = ("survivors", "dropped")
    SURVIVORS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    survivors: _containers.RepeatedScalarFieldContainer[str]
    dropped: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, survivors: _Optional[_Iterable[str]] = ..., dropped: _Optional[_Iterable[str]] = ...) -> None: ...

class SecAggRevealedShare(_message.Message):
    __slots__ = ("owner", "self_seed_share", "mask_key_share")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SELF_SEED_SHARE_FIELD_NUMBER: _ClassVar[int]
    MASK_KEY_SHARE_FIELD_NUMBER: _ClassVar[int]
    owner: str
    self_seed_share: bytes
    mask_key_share: bytes
    def __init__(self, owner: _Optional[str] = ..., self_seed_share: _Optional[bytes] = ..., mask_key_share: _Optional[bytes] = ...) -> None: ...

class SecAggUnmaskResponse(_message.Message):
    __slots__ = ("shares",)
    SHARES_FIELD_NUMBER: _ClassVar[int]
    shares: _containers.RepeatedCompositeFieldContainer[SecAggRevealedShare]
    def __init__(self, shares: _Optional[_Iterable[_Union[SecAggRevealedShare, _Mapping]]] = ...) -> None: ...
