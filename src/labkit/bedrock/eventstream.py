"""AWS event-stream encoding, so streamed Bedrock answers are parsed by botocore itself.

Bedrock's streaming operations (InvokeModelWithResponseStream, ConverseStream) answer
with ``application/vnd.amazon.eventstream``: a sequence of binary messages, each

    total length (4 bytes) | headers length (4) | prelude CRC32 (4)
    headers | payload | message CRC32 (4, over everything before it)

with headers ``:message-type`` (``event`` or ``exception``), ``:event-type`` (or
``:exception-type``) and ``:content-type``. botocore ships the decoder
(``botocore.eventstream``) but no encoder; this module writes the framing, and
:func:`parse_stream_response` hands the bytes to botocore's own response parser, so the
learner's ``for event in response["body"]`` runs botocore's real ``EventStream``.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from collections.abc import Iterable, Iterator
from typing import Any

_STRING = 7


def _header(name: str, value: str) -> bytes:
    n = name.encode()
    v = value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", _STRING, len(v)) + v


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", crc32(prelude) & 0xFFFFFFFF)
    body = prelude + head + payload
    return body + struct.pack("!I", crc32(body) & 0xFFFFFFFF)


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    return encode_message({":event-type": event_type, ":content-type": "application/json",
                           ":message-type": "event"}, json.dumps(payload).encode())


def exception(exception_type: str, message: str) -> bytes:
    """An error inside the stream (``throttlingException``...), as AWS sends it mid-stream."""
    return encode_message({":exception-type": exception_type, ":content-type": "application/json",
                           ":message-type": "exception"}, json.dumps({"message": message}).encode())


class RawStream:
    """What botocore's ``EventStream`` reads from: ``stream()`` yields byte chunks.

    Messages are produced lazily, one per chunk, as a network stream delivers them.
    """

    def __init__(self, messages: Iterable[bytes]):
        self._messages = messages
        self.closed = False

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        for m in self._messages:
            if self.closed:
                return
            yield m

    def read(self, amt: int | None = None) -> bytes:
        return b"".join(self.stream())

    def close(self) -> None:
        self.closed = True


def parse_stream_response(service: str, operation: str, messages: Iterable[bytes],
                          headers: dict[str, str]) -> dict[str, Any]:
    """The parsed response botocore builds from an HTTP 200 event-stream answer."""
    from botocore import parsers
    from botocore.awsrequest import HeadersDict

    model = _service_model(service)
    op = model.operation_model(operation)
    parser = parsers.create_parser(model.metadata["protocol"])
    http_headers = HeadersDict({"content-type": "application/vnd.amazon.eventstream",
                                "x-amzn-requestid": "labkit-offline"})
    http_headers.update(headers)
    response = {"status_code": 200, "headers": http_headers, "body": RawStream(messages),
                "context": {"operation_name": operation}}
    return parser.parse(response, op.output_shape)


_models: dict[str, Any] = {}


def _service_model(service: str):
    if service not in _models:
        import botocore.session

        _models[service] = botocore.session.get_session().get_service_model(service)
    return _models[service]
