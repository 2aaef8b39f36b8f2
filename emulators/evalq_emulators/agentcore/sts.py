"""AWS STS ``AssumeRole`` (query protocol, XML) on the emulator's port, and the check that
every call signed with temporary credentials uses credentials the emulator issued and
that have not expired: a test can prove that a target's assumed role is refreshed before
it expires (``worker.backends.agentcore.client.session_for``)."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

from .errors import ApiError

_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]+)/")
#: SigV4's credential scope: ``Credential=KEY/YYYYMMDD/REGION/SERVICE/aws4_request``.
_SCOPE_REGION = re.compile(r"Credential=[^/,\s]+/[0-9]{8}/([a-z0-9-]+)/")


def signed_region(authorization: str | None) -> str | None:
    """The region a SigV4-signed call is signed for (None: not signed)."""
    found = _SCOPE_REGION.search(authorization or "")
    return found[1] if found else None


class IssuedCredentials:
    """What ``AssumeRole`` handed out, and which keys signed the calls."""

    def __init__(self, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self.assume_role_calls = 0
        self.calls_by_key: Counter[str] = Counter()

    def assume_role(self, body: bytes) -> tuple[int, bytes]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        role = form.get("RoleArn", "")
        session = form.get("RoleSessionName", "emulated")
        key = "ASIA" + secrets.token_hex(8).upper()
        with self._lock:
            self.assume_role_calls += 1
            expires = self._clock() + self.lifetime
            self._expiry[key] = expires
        account = role.split(":")[4] if role.count(":") >= 5 else "123456789012"
        stamp = datetime.fromtimestamp(expires, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleResult><Credentials>"
            f"<AccessKeyId>{key}</AccessKeyId>"
            f"<SecretAccessKey>{secrets.token_hex(20)}</SecretAccessKey>"
            f"<SessionToken>{secrets.token_hex(32)}</SessionToken>"
            f"<Expiration>{stamp}</Expiration>"
            "</Credentials><AssumedRoleUser>"
            f"<AssumedRoleId>AROAEMULATED:{session}</AssumedRoleId>"
            f"<Arn>arn:aws:sts::{account}:assumed-role/{role.rsplit('/', 1)[-1]}/{session}</Arn>"
            "</AssumedRoleUser></AssumeRoleResult>"
            f"<ResponseMetadata><RequestId>{secrets.token_hex(8)}</RequestId></ResponseMetadata>"
            "</AssumeRoleResponse>"
        )
        return 200, xml.encode()

    def reset_counts(self) -> None:
        """Start the counters again; what was issued stays valid until it expires."""
        with self._lock:
            self.assume_role_calls = 0
            self.calls_by_key.clear()

    def check(self, authorization: str | None) -> None:
        """Refuse a call signed with temporary credentials the emulator did not issue or
        that expired (as AWS does: 403 ExpiredTokenException)."""
        found = _CREDENTIAL.search(authorization or "")
        if found is None:
            return
        key = found[1]
        with self._lock:
            self.calls_by_key[key] += 1
            expires = self._expiry.get(key)
        if key.startswith("ASIA") and (expires is None or expires <= self._clock()):
            raise ApiError("ExpiredTokenException", "The security token included in the "
                           "request is expired")  # fmt: skip

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {"assume_role_calls": self.assume_role_calls,
                    "calls_by_key": dict(self.calls_by_key)}  # fmt: skip


def is_assume_role(method: str, path: str, body: bytes) -> bool:
    return method == "POST" and path in ("", "/") and b"Action=AssumeRole" in body
