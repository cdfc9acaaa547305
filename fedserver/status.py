"""Domain errors -> gRPC status codes, in one table.

The servicer never picks a status code inline: it runs each handler inside
``async with abort_on_error(context)``, which maps the exception type (and, for round rejections, the
reason) to the precise status the protocol documents. A round rejection also names its
reason in trailing metadata (:mod:`fedcore.rejections`), so a client can tell a refusal
that is final (late) from a transient failure with the same code. Details are clipped
(:func:`fedcore.text.clip`): they quote client-supplied strings, which must not come back
unbounded. A call refused by a limit (:class:`~fedserver.throttling.Throttled`) is
RESOURCE_EXHAUSTED with the limit's reason in the same trailer. Every refusal is counted
and logged (once per cause) by :class:`fedserver.rejection_log.RejectionLog` here, the one
place codes are chosen.
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
from fedserver.rejection_log import RejectionLog
from fedserver.round_state import Rejection, RejectReason
from fedserver.throttling import Throttled
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
    RejectReason.TOO_STALE: grpc.StatusCode.FAILED_PRECONDITION,
}

# Order matters: subclasses before their bases.
_ERROR_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (Throttled, grpc.StatusCode.RESOURCE_EXHAUSTED),
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


def error_kind(exc: Exception) -> str:
    """A bounded name for the cause of a refusal: the rejection reason or the error class."""
    if isinstance(exc, Rejection):
        return exc.reason.name.lower()
    return type(exc).__name__


@asynccontextmanager
async def abort_on_error(context: grpc.aio.ServicerContext, method: str = "",
                         rejections: RejectionLog | None = None) -> AsyncIterator[None]:
    """Translate known domain errors into ``context.abort`` with their status code; every
    refusal (and an unexpected error, which gRPC answers UNKNOWN) is recorded in
    ``rejections`` under ``method`` (see :mod:`fedserver.rejection_log`)."""
    try:
        yield
    except grpc.aio.AbortError:
        raise  # already answered (a limiter inside the call aborted it)
    except Exception as exc:
        code = status_for(exc)
        details = clip(str(exc), DETAILS_LIMIT)
        if rejections is not None:
            rejections.rejected(method=method, code=code.name if code else "UNKNOWN",
                                kind=error_kind(exc), detail=details)
        if code is None:
            raise
        if isinstance(exc, Rejection):
            context.set_trailing_metadata(((REJECTION_KEY, exc.reason.name.lower()),))
        elif isinstance(exc, Throttled):
            context.set_trailing_metadata(((REJECTION_KEY, exc.reason),))
        await context.abort(code, details)
