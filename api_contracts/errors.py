"""Readable explanations of validation errors, and the dead-letter reason they map to."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from api_contracts.dead_letter import ReasonCode

_DERIVED_BY_EVALQ = (
    "clientToken is not accepted: evalq derives it from request_id so a job starts only once"
)


def _printable(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\n``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def field_path(loc: Sequence[int | str]) -> str:
    """Dotted path of an error location (``evaluation.evaluators.0.evaluatorId``)."""
    return ".".join(_printable(str(part)) for part in loc) or "(root)"


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``<dotted field path>: <message>``."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"]
        if error["type"] == "extra_forbidden" and error["loc"][-1:] == ("clientToken",):
            message = _DERIVED_BY_EVALQ
        lines.append(f"{field_path(error['loc'])}: {_printable(message)}")
    return "\n".join(lines)


def reason_for_validation_error(exc: ValidationError) -> ReasonCode:
    """``unknown_backend`` when ``backend`` is among the problems, else ``invalid_request``."""
    if any(error["loc"][:1] == ("backend",) for error in exc.errors(include_url=False)):
        return ReasonCode.unknown_backend
    return ReasonCode.invalid_request
