"""Encoder of ``application/vnd.amazon.eventstream`` messages (what InvokeHarness streams).

botocore ships only the decoder (``botocore.eventstream.EventStreamBuffer``), and no
well-kept Python library encodes the format outside the AWS CRT's native RPC client, so
the ~20 lines of framing are written here from the format botocore decodes:

    [total length u32][headers length u32][prelude crc32 u32][headers][payload][message crc32]

Headers are ``[name length u8][name][type u8 = 7 (string)][value length u16][value]``.
The tests decode every frame with botocore's own parser, so encoder and decoder cannot
drift apart unnoticed.
"""

from __future__ import annotations

import json
import struct
from binascii import crc32
from typing import Any

#: Header value type 7: a UTF-8 string (botocore's ``EventStreamHeaderParser``).
_STRING = 7
CONTENT_TYPE = "application/vnd.amazon.eventstream"


def _crc(data: bytes, start: int = 0) -> int:
    return crc32(data, start) & 0xFFFFFFFF


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name))
        + raw_name
        + struct.pack(">BH", _STRING, len(raw_value))
        + raw_value
    )


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One framed message; botocore's ``EventStreamBuffer`` decodes it back."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(raw_headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", _crc(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", _crc(message))


def event_message(event_type: str, body: dict[str, Any]) -> bytes:
    """An event of the output stream (``:message-type: event``) with a JSON body."""
    headers = {
        ":message-type": "event",
        ":event-type": event_type,
        ":content-type": "application/json",
    }
    return encode_message(headers, json.dumps(body).encode())


def exception_message(exception_type: str, body: dict[str, Any]) -> bytes:
    """A modeled in-stream error (``:message-type: exception``); botocore raises it as
    ``EventStreamError`` with ``Code`` = the stream member name (``runtimeClientError``)."""
    headers = {
        ":message-type": "exception",
        ":exception-type": exception_type,
        ":content-type": "application/json",
    }
    return encode_message(headers, json.dumps(body).encode())
