"""The names evalq gives remote jobs: the janitor recognises its own by their prefix, and
services without an idempotency key are searched by name after a lost answer."""

from __future__ import annotations

import hashlib


def derived_name(prefix: str, request_id: str) -> str:
    """A unique name for the request's remote job (``[a-zA-Z][a-zA-Z0-9_]{0,47}`` with a
    short prefix): the same request always gets the same name."""
    return prefix + hashlib.sha256(request_id.encode()).hexdigest()[:32]


def run_name(prefix: str, request_id: str, given: str | None) -> str:
    """The name of a run on a service searched by name (Aymara, Agno): always the derived
    name, so it is unique and carries the prefix; a name the producer gave follows it."""
    derived = derived_name(prefix, request_id)
    return f"{derived} {given}" if given else derived
