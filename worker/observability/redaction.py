"""Keep secrets out of logs, dead letters and outcomes."""

from __future__ import annotations

import re
from typing import Any

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # AWS access key ids and anything that looks like a secret key assignment.
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "[REDACTED-AWS-KEY-ID]"),
    (
        re.compile(
            r"(?i)(aws_secret_access_key|secret_access_key|aws_session_token|session_token"
            r"|password|passwd|secret|token|authorization|x-amz-security-token)"
            r"(\s*[=:]\s*|\"\s*:\s*\")[^\s,;\"']+"
        ),
        r"\1\2[REDACTED]",
    ),
    # Credentials inside URLs: redis://user:pass@host, https://user:pass@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s:]*):([^/@\s]+)@"), r"\1\2:[REDACTED]@"),
    # SigV4 signatures and credential scopes.
    (re.compile(r"(?i)(Signature=)[0-9a-f]+"), r"\1[REDACTED]"),
    (re.compile(r"(?i)(Credential=)[^,\s]+"), r"\1[REDACTED]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_SECRET_KEY = re.compile(
    r"(?i)(aws_secret_access_key|secret_access_key|aws_session_token|session_token"
    r"|password|passwd|secret|token|authorization|x-amz-security-token)"
)


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
