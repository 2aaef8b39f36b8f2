"""Celery task messages read defensively: their raw bodies and the call they carry.

A protocol-2 body is ``[args, kwargs, embed]``; the older hybrid form is a mapping with
``args`` and ``kwargs``. Anything else cannot be turned into a call.
"""

from __future__ import annotations

import base64
import json
from typing import Any

#: Header of a substitute envelope the reliable fetch (worker/runtime/broker.py) delivers
#: for an item on a queue that is no message; its value says why.
UNREADABLE_HEADER = "x-evalq-unreadable"
#: Marks a raw body that is not UTF-8 text and is kept base64-encoded.
BASE64_MARKER = "base64:"


def raw_body_text(body: bytes | str | None, *, keep_bytes: int) -> tuple[str, bool]:
    """The body as text (UTF-8 if it decodes, else ``base64:...``), at most ``keep_bytes``
    of it, and whether it was cut."""
    if body is None:
        return "", False
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    cut = len(data) > keep_bytes
    # A cut may split a character: give up to 3 bytes back to keep whole characters.
    for end in [len(data)] if not cut else range(keep_bytes, keep_bytes - 4, -1):
        try:
            return data[:end].decode("utf-8"), cut
        except UnicodeDecodeError:
            continue
    return BASE64_MARKER + base64.b64encode(data[:keep_bytes]).decode("ascii"), cut


def raw_body_bytes(text: str) -> bytes:
    """Inverse of :func:`raw_body_text` (for tests and tools)."""
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
    """The call in a raw body kept as text, if it is JSON that carries one."""
    if text.startswith(BASE64_MARKER):
        return None
    try:
        return call_of(json.loads(text))
    except ValueError:
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


def _call(args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]] | None:
    if isinstance(args, list | tuple) and isinstance(kwargs, dict):
        return list(args), kwargs
    return None
