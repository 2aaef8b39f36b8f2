"""The dead-letter store: what could not succeed, kept for ops to inspect and replay.

Redis has no dead-letter exchange, so evalq keeps its own, as Sidekiq's dead set: a sorted
set of ids by last failure time plus one JSON document per entry, capped by count and age.
A request that fails again for the same reason lands on the same entry (its id is derived
from the request), so repeated deliveries do not multiply entries.
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import redis

from api_contracts import DeadLetter, ReasonCode
from worker.keys import Keys
from worker.redaction import redact

_NAMESPACE = uuid.UUID("6f0c3a52-43a4-4a64-9a8e-3c1f7f0d2b11")


def dead_letter_id(reason: ReasonCode, request_id: str | None, fingerprint: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{request_id or ''}|{reason.value}|{fingerprint}"))


def fingerprint_of(request: Any) -> str:
    text = request if isinstance(request, str) else repr(sorted(_flatten(request)))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class DeadLetterStore:
    def __init__(self, client: redis.Redis, keys: Keys, *, max_entries: int, max_age: float):
        # redis-py types every reply as `Awaitable | Any` (sync and async share stubs).
        self.redis: Any = client
        self.keys = keys
        self.max_entries = max_entries
        self.max_age = max_age

    def record(
        self,
        *,
        reason: ReasonCode,
        error: str,
        request: dict[str, Any] | str | None,
        request_id: str | None,
        now: float,
        task_name: str | None = None,
        attempts: int = 1,
        first_failed_at: float | None = None,
        replay_count: int = 0,
        fingerprint: str | None = None,
    ) -> DeadLetter:
        entry_id = dead_letter_id(reason, request_id, fingerprint or fingerprint_of(request))
        previous = self.get(entry_id)
        first = _utc(first_failed_at or now)
        if previous is not None:
            first = min(first, previous.first_failed_at)
            attempts += previous.attempts
            replay_count = max(replay_count, previous.replay_count)
        letter = DeadLetter(
            dead_letter_id=entry_id,
            reason=reason,
            error=redact(error),
            request=request,
            request_id=request_id,
            task_name=task_name,
            worker_host=socket.gethostname(),
            attempts=attempts,
            first_failed_at=first,
            last_failed_at=_utc(now),
            replay_count=replay_count,
        )
        pipe = self.redis.pipeline()
        pipe.set(self.keys.dead_letter(entry_id), letter.model_dump_json())
        pipe.zadd(self.keys.dead_letters, {entry_id: now})
        pipe.execute()
        self.trim(now)
        return letter

    def get(self, entry_id: str) -> DeadLetter | None:
        raw = self.redis.get(self.keys.dead_letter(entry_id))
        return None if raw is None else DeadLetter.model_validate_json(raw)

    def find(
        self, *, reason: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[DeadLetter]:
        """Entries, newest failure first, optionally of one reason or since a time."""
        ids: list[Any] = self.redis.zrevrangebyscore(
            self.keys.dead_letters, "+inf", since if since is not None else "-inf"
        )
        letters = self._load(_text(i) for i in ids)
        if reason is not None:
            letters = [d for d in letters if d.reason == reason]
        return letters[:limit]

    def count(self) -> int:
        return int(self.redis.zcard(self.keys.dead_letters))

    def remove(self, entry_id: str) -> bool:
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.dead_letter(entry_id))
        pipe.zrem(self.keys.dead_letters, entry_id)
        deleted, _ = pipe.execute()
        return bool(deleted)

    def trim(self, now: float) -> int:
        """Drop entries older than ``max_age`` and the oldest beyond ``max_entries``."""
        old: list[Any] = self.redis.zrangebyscore(
            self.keys.dead_letters, "-inf", now - self.max_age
        )
        total = int(self.redis.zcard(self.keys.dead_letters))
        excess = total - len(old) - self.max_entries
        if excess > 0:
            old += self.redis.zrange(self.keys.dead_letters, len(old), len(old) + excess - 1)
        for entry_id in old:
            self.remove(_text(entry_id))
        return len(old)

    def _load(self, ids: Iterable[str]) -> list[DeadLetter]:
        ids = list(ids)
        if not ids:
            return []
        raws: list[Any] = self.redis.mget([self.keys.dead_letter(i) for i in ids])
        return [DeadLetter.model_validate_json(r) for r in raws if r is not None]


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _flatten(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _flatten(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _flatten(v, f"{path}[{i}]")]
    return [(path, repr(value))]
