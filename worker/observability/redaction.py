"""Keep secrets out of logs, dead letters and outcomes.

Two nets: patterns that recognise a secret by its shape or by the name it is given
(``secret_access_key=...``, ``x-api-key: ...``, ``Bearer ...``), and the exact values of
the secrets this process was configured with (:func:`register_secret`), which are found
wherever they appear, however a service or a library chose to quote them.
"""

from __future__ import annotations

import re
import threading
from typing import Any

#: Names under which a secret travels: AWS's, HTTP's and those of evalq's backends
#: (Aymara's ``x-api-key``, AgentOS's ``OS_SECURITY_KEY``).
_SENSITIVE_LABELS = (
    r"aws_secret_access_key|secret_access_key|aws_session_token|session_token"
    r"|password|passwd|secret|token|authorization|x-amz-security-token"
    r"|x-api-key|api[_-]?key|(?:os_)?security[_-]?key"
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # AWS access key ids and anything that looks like a secret key assignment.
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "[REDACTED-AWS-KEY-ID]"),
    # Bearer tokens, before the names: "authorization: Bearer <token>".
    (re.compile(r"(?i)\b(Bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [REDACTED]"),
    (
        # name=value, name: value, "name": "value", 'name': 'value' (a Bearer token is
        # redacted above, and the word kept).
        re.compile(rf"(?i)({_SENSITIVE_LABELS})(['\"]?\s*[=:]\s*['\"]?)(?!Bearer\s)[^\s,;\"'}}]+"),
        r"\1\2[REDACTED]",
    ),
    # Credentials inside URLs: redis://user:pass@host, https://user:pass@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:]*):([^/@\s]+)@"), r"\1\2:[REDACTED]@"),
    # SigV4 signatures and credential scopes.
    (re.compile(r"(?i)(Signature=)[0-9a-f]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(Credential=)[^,\s]+"), r"\1[REDACTED]"),
]

#: What every pattern above needs to find in a text (most texts have none of it): one
#: search instead of six substitutions on the logging hot path.
_MAYBE_SECRET = re.compile(rf"(?i)akia|asia|bearer|{_SENSITIVE_LABELS}|://|signature=|credential=")

#: Shorter values are not registered: they would blank out ordinary words.
MIN_REGISTERED_LENGTH = 6

#: Registered secrets, longest first, so a secret that contains another is removed whole.
_registered: tuple[str, ...] = ()
_registered_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact ``value`` wherever it appears from now on (a configured key or token)."""
    global _registered
    if value and len(value) >= MIN_REGISTERED_LENGTH:
        with _registered_lock:
            _registered = tuple(sorted({*_registered, value}, key=len, reverse=True))


def redact(text: str) -> str:
    for value in _registered:
        if value in text:
            text = text.replace(value, "[REDACTED]")
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_SECRET_KEY = re.compile(rf"(?i)({_SENSITIVE_LABELS})")


def redact_value(value: Any) -> Any:
    """``value`` (parsed JSON) with secrets redacted: in every string, and whole values of
    keys that name a secret."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            k: "[REDACTED]"
            if isinstance(k, str) and _SECRET_KEY.fullmatch(k) and isinstance(v, str)
            else redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value
