"""A byte-counting TCP relay for gRPC over cleartext HTTP/2, with a per-category breakdown.

Why: the coordinator counts the serialized protobuf messages (``report.json``); a user who
puts a proxy in front of it sees more: HTTP/2 frame headers, HPACK header blocks (the
``:path``, ``authorization`` and client-id metadata of every call), the 5-byte gRPC
message prefixes, SETTINGS / WINDOW_UPDATE / PING frames. This relay sits between the
clients and the coordinator, forwards every byte unchanged, keeps a copy of both
directions of every connection, and after the run parses them:

* HTTP/2 frames (9-byte header + payload), by frame type;
* HEADERS / CONTINUATION blocks through an HPACK decoder (``hpack``), which gives each
  stream's ``:path`` and tells how each header field was encoded (indexed, literal,
  never-indexed), per call;
* DATA payloads as gRPC length-prefixed messages, parsed with the stream's request or
  response type, and split into categories:

  - ``values``: the ``Values`` messages of every tensor (what the model weights cost);
  - ``masks``: full ``Mask`` messages and ``MaskDelta`` messages (pruning masks);
  - ``model control``: the rest of a ``ModelPayload`` / ``UpdatePayload`` (tensor names,
    shapes, CRCs, positions headers, versions, digests);
  - ``control``: every other message (check-in, task, stream headers, acks, reports);
  - ``grpc prefixes``: 5 bytes per gRPC message;
  - ``http2 headers``: HEADERS / CONTINUATION payloads (HPACK blocks) of requests and
    responses, trailers included;
  - ``http2 framing``: the 9-byte header of every frame, plus the payload of every frame
    that is not DATA or HEADERS (SETTINGS, WINDOW_UPDATE, PING, RST_STREAM, GOAWAY) and
    the 24-byte connection preface.

The categories add up exactly to the bytes that crossed the relay (checked). Needs the
``hpack`` package (extra ``bench``); used by ``bench/transport.py`` and the tests.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, CONTINUATION = 0x0, 0x1, 0x9
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20
SERVICE = "/fedprune.v1.Coordinator/"


class WireTap:
    """Listen on a free loopback port and relay every connection to ``target_port``."""

    def __init__(self, target_port: int, *, host: str = "127.0.0.1") -> None:
        self._target = (host, target_port)
        self._server = socket.create_server((host, 0))
        self._server.settimeout(0.2)  # the accept loop checks for close() this often
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self.connections: list[tuple[bytearray, bytearray]] = []  # (client->server, back)
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._stopping = False
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self._target)
            up, down = bytearray(), bytearray()
            with self._lock:
                self.connections.append((up, down))
                self._sockets += [client, upstream]
            for src, dst, buf in ((client, upstream, up), (upstream, client, down)):
                t = threading.Thread(target=_pump, args=(src, dst, buf), daemon=True)
                t.start()
                self._threads.append(t)

    def close(self) -> None:
        """Stop accepting, close every relayed connection and wait for the pumps."""
        self._stopping = True
        self._accept.join(timeout=5)
        self._server.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(timeout=5)
        for s in sockets:
            s.close()


def _pump(src: socket.socket, dst: socket.socket, buf: bytearray) -> None:
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            buf += data
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# -- parsing -----------------------------------------------------------------------------------
def frames(raw: bytes, *, client_side: bool) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every complete frame; skips the preface."""
    pos = len(PREFACE) if client_side and raw.startswith(PREFACE) else 0
    while pos + 9 <= len(raw):
        length = int.from_bytes(raw[pos:pos + 3], "big")
        ftype, flags = raw[pos + 3], raw[pos + 4]
        stream = struct.unpack(">I", raw[pos + 5:pos + 9])[0] & 0x7FFFFFFF
        yield ftype, flags, stream, bytes(raw[pos + 9:pos + 9 + length])
        pos += 9 + length


def _strip(payload: bytes, flags: int, *, headers: bool) -> bytes:
    if flags & PADDED:
        pad = payload[0]
        payload = payload[1:len(payload) - pad]
    if headers and flags & PRIORITY:
        payload = payload[5:]
    return payload


@dataclass
class Breakdown:
    """Bytes per (direction, category), and per-call header statistics."""

    bytes: Counter = field(default_factory=Counter)  # (direction, category) -> bytes
    calls: Counter = field(default_factory=Counter)  # method -> number of calls
    header_block: Counter = field(default_factory=Counter)  # method -> request HPACK bytes
    encodings: Counter = field(default_factory=Counter)  # (header name, how) -> count
    total: Counter = field(default_factory=Counter)  # direction -> raw bytes

    def add(self, direction: str, category: str, n: int) -> None:
        self.bytes[direction, category] += n


def analyse(connections: list[tuple[bytes, bytes]]) -> Breakdown:
    from hpack import Decoder

    out = Breakdown()
    for up, down in connections:
        out.total["up"] += len(up)
        out.total["down"] += len(down)
        if up.startswith(PREFACE):
            out.add("up", "http2 framing", len(PREFACE))
        paths: dict[int, str] = {}
        for direction, raw in (("up", up), ("down", down)):
            decoder = Decoder()
            decoder.max_allowed_table_size = 1 << 16
            data: dict[int, bytearray] = defaultdict(bytearray)
            block: dict[int, bytearray] = defaultdict(bytearray)
            for ftype, flags, stream, payload in frames(raw, client_side=direction == "up"):
                out.add(direction, "http2 framing", 9)
                if ftype == DATA:
                    body = _strip(payload, flags, headers=False)
                    out.add(direction, "http2 framing", len(payload) - len(body))
                    data[stream] += body
                elif ftype in (HEADERS, CONTINUATION):
                    body = _strip(payload, flags, headers=ftype == HEADERS)
                    out.add(direction, "http2 framing", len(payload) - len(body))
                    out.add(direction, "http2 headers", len(body))
                    block[stream] += body
                    if flags & END_HEADERS:
                        _decode_block(out, decoder, bytes(block.pop(stream)), stream, paths,
                                      direction)
                else:
                    out.add(direction, "http2 framing", len(payload))
            for stream, body in data.items():
                _messages(out, direction, paths.get(stream, ""), bytes(body))
    counted = Counter()
    for (direction, _), n in out.bytes.items():
        counted[direction] += n
    assert counted == out.total, (counted, out.total)  # every byte is in one category
    return out


def _decode_block(out: Breakdown, decoder, block: bytes, stream: int, paths: dict[int, str],
                  direction: str) -> None:
    from hpack import NeverIndexedHeaderTuple

    headers = decoder.decode(block, raw=False)
    if direction == "up":
        for h in headers:
            if h[0] == ":path":
                paths[stream] = h[1]
                method = h[1].removeprefix(SERVICE)
                out.calls[method] += 1
                out.header_block[method] += len(block)
        for h in headers:
            how = "never-indexed" if isinstance(h, NeverIndexedHeaderTuple) else "decoded"
            out.encodings[h[0], how] += 1


def _messages(out: Breakdown, direction: str, path: str, body: bytes) -> None:
    """Split a stream's DATA into gRPC messages and categorize each."""
    pos = 0
    chunks: list[bytes] = []  # ModelChunk / UpdateChunk data slices, reassembled
    while pos + 5 <= len(body):
        length = int.from_bytes(body[pos + 1:pos + 5], "big")
        message = body[pos + 5:pos + 5 + length]
        out.add(direction, "grpc prefixes", 5)
        _message(out, direction, path.removeprefix(SERVICE), message, chunks)
        pos += 5 + length
    out.add(direction, "control", len(body) - pos)  # a cut-off tail (never seen in practice)
    if chunks:
        _payload(out, direction, path.removeprefix(SERVICE), b"".join(chunks))


def _message(out: Breakdown, direction: str, method: str, message: bytes,
             chunks: list[bytes]) -> None:
    from fedcore.pb import coordinator_pb2 as cpb

    chunked = {("PullModel", "down"): cpb.ModelChunk, ("PushUpdate", "up"): cpb.UpdateChunk}
    kind = chunked.get((method, direction))
    if kind is not None:
        msg = kind.FromString(message)
        if msg.WhichOneof("part") == "data":
            chunks.append(msg.data)
            out.add(direction, "control", len(message) - len(msg.data))  # tag + length
            return
    if method == "Round" and direction == "down":
        task = cpb.Task.FromString(message)
        inline = _inline_payload(task)
        if inline is not None:
            size = inline.ByteSize()
            out.add(direction, "control", len(message) - size)
            _payload_message(out, direction, inline)
            return
    out.add(direction, "control", len(message))


def _inline_payload(task):  # a Task that carries its model payload (if the field exists)
    field_name = "model_payload"
    if field_name in task.DESCRIPTOR.fields_by_name and task.HasField(field_name):
        return task.model_payload
    return None


def _payload(out: Breakdown, direction: str, method: str, payload: bytes) -> None:
    from fedcore.pb import coordinator_pb2 as cpb

    kind = cpb.ModelPayload if method == "PullModel" else cpb.UpdatePayload
    _payload_message(out, direction, kind.FromString(payload))


def _payload_message(out: Breakdown, direction: str, msg) -> None:
    total = len(msg.SerializeToString())
    values = masks = 0
    for model_field in ("model", "delta", "scores"):
        if model_field in msg.DESCRIPTOR.fields_by_name and msg.HasField(model_field):
            for tensor in getattr(msg, model_field).tensors:
                values += tensor.values.ByteSize()
    for mask_field in ("mask", "mask_delta"):
        if mask_field in msg.DESCRIPTOR.fields_by_name and msg.HasField(mask_field):
            masks += getattr(msg, mask_field).ByteSize()
    out.add(direction, "values", values)
    out.add(direction, "masks", masks)
    out.add(direction, "model control", total - values - masks)


CATEGORIES = ("values", "masks", "model control", "control", "grpc prefixes", "http2 headers",
              "http2 framing")


def table(b: Breakdown) -> str:
    """Markdown: bytes per category, up / down / total, with shares of the total."""
    total = sum(b.total.values())
    lines = ["| category | up | down | total | share |", "|---|---:|---:|---:|---:|"]
    for cat in CATEGORIES:
        up, down = b.bytes["up", cat], b.bytes["down", cat]
        lines.append(f"| {cat} | {up:,} | {down:,} | {up + down:,} | "
                     f"{100 * (up + down) / max(1, total):.1f}% |")
    lines.append(f"| **all bytes on the wire** | {b.total['up']:,} | {b.total['down']:,} | "
                 f"{total:,} | 100% |")
    return "\n".join(lines)
