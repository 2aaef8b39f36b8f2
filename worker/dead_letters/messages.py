"""Celery task messages read defensively: their raw bodies and the call they carry.

A protocol-2 body is ``[args, kwargs, embed]``; the older hybrid form is a mapping with
``args`` and ``kwargs``. Anything else cannot be turned into a call.
"""

from __future__ import annotations

import base64
import json
import re
from itertools import accumulate
from typing import Any

from worker.dead_letters.sizes import BASE64_MARKER as BASE64_MARKER  # (where it was)
from worker.dead_letters.sizes import cut_text, without_cut_marker

#: Deepest nesting of a raw body read back as a call: a valid request nests a dozen deep.
MAX_DEPTH = 100
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")

#: Header of a substitute envelope the reliable fetch (worker/runtime/broker.py) delivers
#: for an item on a queue that is no message; its value says why.
UNREADABLE_HEADER = "x-evalq-unreadable"
#: Header of a substitute for an item too long to hold a message within the limits, which
#: the fetch refused unread; its value is the item's size in bytes.
OVERSIZED_HEADER = "x-evalq-oversized"


def raw_body_text(body: bytes | str | None, *, keep_bytes: int, total: int | None = None) -> str:
    """The body as text (UTF-8 if it decodes, else ``base64:...``), at most ``keep_bytes``
    long: a longer one is cut, with a marker saying how much of it was kept. ``total``:
    the size of the message ``body`` is only the start of (the fetch's substitute of an
    oversized item keeps only the item's start)."""
    if body is None:
        return ""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    total = max(len(data), total or 0)
    head = data[:keep_bytes]  # a huge body is never decoded whole
    text = _text_start(head, cut=len(head) < len(data))
    if text is None:
        text = BASE64_MARKER + base64.b64encode(head).decode("ascii")
    return cut_text(text, keep_bytes, total=total)


def _text_start(head: bytes, *, cut: bool) -> str | None:
    """``head`` as UTF-8 text, less a character a cut split; None if it is not text."""
    for end in range(len(head), len(head) - (4 if cut else 1), -1):
        try:
            return head[: max(end, 0)].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def raw_body_bytes(text: str) -> bytes:
    """Inverse of :func:`raw_body_text` (for tests and tools): the bytes it kept."""
    text = without_cut_marker(text)
    if text.startswith(BASE64_MARKER):
        return base64.b64decode(text[len(BASE64_MARKER) :])
    return text.encode("utf-8")


def call_of(body: Any) -> tuple[list[Any], dict[str, Any]] | None:
    """``(args, kwargs)`` of a decoded task body, or None when it does not carry a call."""
    if isinstance(body, list | tuple) and len(body) == 3:
        args, kwargs, embed = body
        if isinstance(embed, dict | None):
            return _call(args, kwargs)
        return None
    if isinstance(body, dict) and "args" in body:
        return _call(body["args"], body.get("kwargs", {}))
    return None


def call_problem(body: Any) -> str | None:
    """Why a decoded body is not ``[args, kwargs, embed]`` (or the hybrid mapping)."""
    if call_of(body) is not None:
        return None
    if isinstance(body, list | tuple) and len(body) == 3:
        return "task arguments must be [list of args, mapping of kwargs, mapping]"
    if isinstance(body, dict) and "args" in body:
        return "task args must be a list and kwargs a mapping"
    return f"the body is not a task call [args, kwargs, embed] but a {type(body).__name__}"


def call_in_text(text: str) -> tuple[list[Any], dict[str, Any]] | None:
    """The call in a raw body kept as text, if it is JSON that carries one (and is nested
    no deeper than ``MAX_DEPTH``: deeper, the parser's recursion would fail)."""
    if text.startswith(BASE64_MARKER) or nesting_depth(text) > MAX_DEPTH:
        return None
    try:
        return call_of(json.loads(text))
    except (ValueError, RecursionError):
        return None


def deeper_than(value: Any, limit: int) -> bool:
    """True if ``value`` nests lists and mappings more than ``limit`` deep. Iterative, and
    it stops at the first branch past the limit: a hostile body cannot make it recurse
    (Celery's pool pickles decoded arguments, and pickle raises RecursionError from a
    few hundred levels on, in the worker's main process)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of JSON ``text`` nest, found without parsing it
    (strings are dropped, then the brackets left are counted)."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def _call(args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]] | None:
    if isinstance(args, list | tuple) and isinstance(kwargs, dict):
        return list(args), kwargs
    return None
