"""Domain errors -> gRPC status codes, in one table.

The servicer never picks a status code inline: it runs each handler inside
``async with abort_on_error(context)``, which maps the exception type (and, for round rejections, the
reason) to the precise status the protocol documents. A round rejection also names its
reason in trailing metadata (:mod:`fedcore.rejections`), so a client can tell a refusal
that is final (late) from a transient failure with the same code. Details are clipped
(:func:`fedcore.text.clip`): they quote client-supplied strings, which must not come back
unbounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from fedcompression.errors import CodecError
from fedcore.model_codec import MaskMismatchError, ModelMismatchError
from fedcore.rejections import REJECTION_KEY
from fedcore.streaming import PayloadTooLarge, StreamError
from fedcore.text import clip
from fedserver.auth import AuthError
from fedserver.round_state import Rejection, RejectReason
from fedserver.updates import InvalidUpdate

DETAILS_LIMIT = 300  # characters of status details

_REJECTION_CODES = {
    RejectReason.UNKNOWN_TASK: grpc.StatusCode.NOT_FOUND,
    RejectReason.NOT_YOUR_TASK: grpc.StatusCode.PERMISSION_DENIED,
    RejectReason.LATE: grpc.StatusCode.DEADLINE_EXCEEDED,
    RejectReason.WRONG_ROUND: grpc.StatusCode.FAILED_PRECONDITION,
    RejectReason.WRONG_KIND: grpc.StatusCode.FAILED_PRECONDITION,
    RejectReason.STALE_VERSION: grpc.StatusCode.FAILED_PRECONDITION,
    RejectReason.WRONG_MASK: grpc.StatusCode.FAILED_PRECONDITION,
    RejectReason.CONFLICTING_DUPLICATE: grpc.StatusCode.ALREADY_EXISTS,
}

# Order matters: subclasses before their bases.
_ERROR_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (PayloadTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StreamError, grpc.StatusCode.INVALID_ARGUMENT),
    (MaskMismatchError, grpc.StatusCode.FAILED_PRECONDITION),
    (ModelMismatchError, grpc.StatusCode.INVALID_ARGUMENT),
    (CodecError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidUpdate, grpc.StatusCode.INVALID_ARGUMENT),
    (LookupError, grpc.StatusCode.NOT_FOUND),
]


def status_for(exc: Exception) -> grpc.StatusCode | None:
    if isinstance(exc, Rejection):
        return _REJECTION_CODES[exc.reason]
    if isinstance(exc, AuthError):
        return grpc.StatusCode.UNAUTHENTICATED if exc.unauthenticated \
            else grpc.StatusCode.PERMISSION_DENIED
    for cls, code in _ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return None


@asynccontextmanager
async def abort_on_error(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """Translate known domain errors into ``context.abort`` with their status code."""
    try:
        yield
    except Exception as exc:
        code = status_for(exc)
        if code is None:
            raise
        if isinstance(exc, Rejection):
            context.set_trailing_metadata(((REJECTION_KEY, exc.reason.name.lower()),))
        await context.abort(code, clip(str(exc), DETAILS_LIMIT))
