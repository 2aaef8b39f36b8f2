"""How big what producers send is, and the cut that keeps what evalq stores of it within
a limit.

A text evalq had to cut ends with a marker saying how much of the original it kept,
``…[cut: kept N of M bytes]`` (bytes of UTF-8), so a reader (and ``evalq dlq replay``)
knows the rest is gone. Sizes are counted without recursion: a value nested thousands
deep is measured like any other.
"""

from __future__ import annotations

import base64
import re
from typing import Any

#: Starts a raw body that is not UTF-8 text and is kept base64-encoded.
BASE64_MARKER = "base64:"
#: What ends a text cut short (N: bytes of the original kept, M: the original's size).
CUT_MARKER = "…[cut: kept {kept} of {total} bytes]"
_CUT = re.compile(r"…\[cut: kept (\d+) of (\d+) bytes\]\Z")


def byte_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (a lone surrogate counts as the 3 bytes it would take)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def cut_of(text: Any) -> tuple[int, int] | None:
    """``(kept, total)`` bytes if ``text`` is a cut text, else None."""
    match = _CUT.search(text) if isinstance(text, str) else None
    return None if match is None else (int(match[1]), int(match[2]))


def without_cut_marker(text: str) -> str:
    """``text`` without the marker a cut left at its end (what was kept)."""
    found = _CUT.search(text)
    return text if found is None else text[: found.start()]


def cut_text(text: str, keep_bytes: int, *, total: int | None = None) -> str:
    """``text`` if it is whole and at most ``keep_bytes`` long, else its start and the
    marker, at most ``keep_bytes`` in all (never less than the marker alone).

    ``total``: the original's size when ``text`` is already only its start (then the
    marker is added even if ``text`` fits). A text cut before is cut again from the same
    original. A ``base64:`` text is cut in whole groups, and counts the bytes it encodes."""
    earlier = _CUT.search(text)
    if earlier is not None:
        text, total = text[: earlier.start()], int(earlier[2])
    encoded = _base64_bytes(text)
    data = text.encode("utf-8", "surrogatepass") if encoded is None else encoded
    total = len(data) if total is None else max(total, len(data))
    if len(data) == total and byte_size(text) <= keep_bytes:
        return text
    room = keep_bytes - byte_size(CUT_MARKER.format(kept=total, total=total))
    if encoded is None:
        kept = _whole_characters(data[: max(room, 0)])
        return kept + CUT_MARKER.format(kept=byte_size(kept), total=total)
    part = encoded[: max(room - len(BASE64_MARKER), 0) // 4 * 3]
    kept = BASE64_MARKER + base64.b64encode(part).decode("ascii")
    return kept + CUT_MARKER.format(kept=len(part), total=total)


def _base64_bytes(text: str) -> bytes | None:
    """The bytes a ``base64:...`` text holds (None for any other text)."""
    if not text.startswith(BASE64_MARKER):
        return None
    try:
        return base64.b64decode(text[len(BASE64_MARKER) :], validate=True)
    except ValueError:
        return None


def _whole_characters(data: bytes) -> str:
    """``data`` (the start of UTF-8 text) as text, less a character the cut split."""
    for end in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:end].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue
    return ""


def json_size(value: Any, stop_above: int) -> int:
    """About how many bytes ``value`` takes as compact JSON (escapes not counted), counted
    only until that is over ``stop_above`` (a larger value then reads as just over it)."""
    size, stack = 0, [value]
    while stack and size <= stop_above:
        item = stack.pop()
        if isinstance(item, str):
            size += byte_size(item) + 2
        elif isinstance(item, dict):
            size += 2 + 2 * len(item)  # braces, a colon and a comma per member
            stack += [k if isinstance(k, str) else str(k) for k in item]
            stack += item.values()
        elif isinstance(item, list | tuple):
            size += 2 + len(item)
            stack += item
        else:
            size += len(str(item))
    return size
