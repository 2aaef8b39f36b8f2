"""The dead-letter store: what could not succeed, kept for ops to inspect and replay.

Redis has no dead-letter exchange, so evalq keeps its own, as Sidekiq's dead set: a sorted
set of ids by last failure time plus one JSON document per entry, capped by count and age.
A request that fails again for the same reason lands on the same entry (its id is derived
from the request), so repeated deliveries do not multiply entries.

One entry takes at most ``max_entry_bytes`` as stored (``EVALQ_MAX_PAYLOAD_BYTES``): its
largest texts are cut to fit, each ending with a marker saying how much was kept
(``worker.dead_letters.sizes``); a request cut so is kept as text, and cannot be replayed.
Beside each document the store keeps the entry's metric labels in one hash
(``Keys.dead_letter_labels``), so counting entries never reads them.

An entry being replayed carries a mark (a token in one hash) until intake settles the
replay; see ``worker.dead_letters.replay``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis

from api_contracts import DeadLetter, ReasonCode
from worker.dead_letters.sizes import byte_size, cut_text
from worker.keys import Keys
from worker.lua import load_scripts
from worker.observability import metrics
from worker.observability.redaction import redact, redact_value

_NAMESPACE = uuid.UUID("6f0c3a52-43a4-4a64-9a8e-3c1f7f0d2b11")
#: Ids read per round trip when walking the index.
_PAGE = 500
#: How an entry too long to store is cut: in this order, each text by the excess, down to
#: a floor (bytes, at most 1/16 of the limit; below 1: that share of the limit). Names
#: first, then the error to a quarter of the limit, then the request, then the error.
_CUTS = (("task_name", 256), ("request_id", 256), ("worker_host", 256), ("error", 0.25),
         ("request", 0), ("error", 0))  # fmt: skip


def dead_letter_id(reason: ReasonCode, request_id: str | None, fingerprint: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{request_id or ''}|{reason.value}|{fingerprint}"))


def fingerprint_of(request: Any) -> str:
    text = request if isinstance(request, str) else repr(sorted(_flatten(request)))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


class DeadLetterStore:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        max_entries: int,
        max_age: float,
        max_entry_bytes: int = 256 * 1024,
    ):
        # redis-py types every reply as `Awaitable | Any` (sync and async share stubs).
        self.redis: Any = client
        self.keys = keys
        self.max_entries = max_entries
        self.max_age = max_age
        self.max_entry_bytes = max_entry_bytes
        self.scripts = load_scripts(client, "worker.dead_letters")

    # -- writing ------------------------------------------------------------------------
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
        target: str | None = None,
        also: Callable[[Any], None] | None = None,
        job_state: str | None = None,
        outcome: dict[str, Any] | None = None,
    ) -> DeadLetter:
        """Store a failure, or fold it into the entry of an earlier identical one.
        ``target``: the target the job was routed to, if it was (a metric label).
        ``also`` queues more writes (metrics) in the same transaction. ``job_state``: the
        state the job died in; ``outcome``: its outcome, when its end was known."""
        request, request_id, error = _storable(request), _storable(request_id), _storable(error)
        entry_id = dead_letter_id(reason, request_id, fingerprint or fingerprint_of(request))
        # Texts longer than a whole entry may be are cut before anything reads them.
        limit = self.max_entry_bytes
        error = cut_text(error, limit)
        request = cut_text(request, limit) if isinstance(request, str) else request
        labels = metrics.field(*metrics.dead_letter_labels(reason.value, request, target))
        key = self.keys.dead_letter(entry_id)
        letter: DeadLetter | None = None

        def write(pipe: Any) -> None:
            nonlocal letter
            raw = pipe.get(key)
            previous = None if raw is None else DeadLetter.model_validate_json(raw)
            letter = DeadLetter(
                dead_letter_id=entry_id,
                reason=reason,
                error=redact(error),
                request=redact_value(request),
                request_id=request_id,
                task_name=task_name,
                worker_host=socket.gethostname(),
                attempts=attempts + (previous.attempts if previous else 0),
                first_failed_at=min(
                    [_utc(first_failed_at or now)]
                    + ([previous.first_failed_at] if previous else [])
                ),
                last_failed_at=_utc(now),
                replay_count=max(replay_count, previous.replay_count if previous else 0),
                job_state=job_state,
                outcome=None if outcome is None else redact_value(outcome),
            )
            letter = fitted(letter, limit)
            pipe.multi()
            pipe.set(key, letter.model_dump_json())
            pipe.zadd(self.keys.dead_letters, {entry_id: now})
            pipe.hset(self.keys.dead_letter_labels, entry_id, labels)
            self._drop(cutoff=now - self.max_age, keep=self.max_entries, pipe=pipe)
            metrics.count_dead_letter(pipe, self.keys, reason.value, request, target)
            if also is not None:
                also(pipe)

        # WATCH the entry: two workers recording the same failure must both count.
        self.redis.transaction(write, key)
        assert letter is not None
        return letter

    def set_replay_count(self, entry_id: str, count: int) -> bool:
        """Raise (never lower) the entry's replay count; False if the entry is gone."""
        key = self.keys.dead_letter(entry_id)
        found = False

        def write(pipe: Any) -> None:
            nonlocal found
            raw = pipe.get(key)
            pipe.multi()
            if raw is None:
                return
            found = True
            letter = DeadLetter.model_validate_json(raw)
            letter.replay_count = max(letter.replay_count, count)
            pipe.set(key, fitted(letter, self.max_entry_bytes).model_dump_json())

        self.redis.transaction(write, key)
        return found

    def remove(self, entry_id: str) -> bool:
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.dead_letter(entry_id))
        pipe.zrem(self.keys.dead_letters, entry_id)
        pipe.hdel(self.keys.dead_letters_replaying, entry_id)
        pipe.hdel(self.keys.dead_letter_labels, entry_id)
        deleted, *_ = pipe.execute()
        return bool(deleted)

    def trim(self, now: float) -> int:
        """Drop entries older than ``max_age`` and the oldest beyond ``max_entries``."""
        return int(self._drop(cutoff=now - self.max_age, keep=self.max_entries))

    def purge_older_than(self, cutoff: float) -> int:
        """Drop every entry whose last failure is at or before ``cutoff`` (epoch seconds)."""
        return int(self._drop(cutoff=cutoff, keep=-1))

    def purge_all(self) -> int:
        return int(self._drop(cutoff=None, keep=0))

    # -- replay marks -------------------------------------------------------------------
    def mark_replaying(self, entry_id: str, token: str) -> None:
        self.redis.hset(self.keys.dead_letters_replaying, entry_id, token)

    def unmark_replaying(self, entry_id: str, token: str) -> bool:
        """Clear the mark if it still holds ``token``; True for exactly one caller."""
        args = {"dead_letter_id": entry_id, "token": token}
        return bool(self.scripts["claim_replay"](self.keys.fixed, args))

    def replaying(self) -> dict[str, str]:
        """Entries with a replay in flight: dead_letter_id -> token."""
        marks: dict[Any, Any] = self.redis.hgetall(self.keys.dead_letters_replaying)
        return dict(marks)

    # -- reading ------------------------------------------------------------------------
    def get(self, entry_id: str) -> DeadLetter | None:
        raw = self.redis.get(self.keys.dead_letter(entry_id))
        return None if raw is None else DeadLetter.model_validate_json(raw)

    def resolve(self, id_or_prefix: str) -> str | None:
        """The id of the one entry whose id is or starts with ``id_or_prefix``."""
        if self.redis.zscore(self.keys.dead_letters, id_or_prefix) is not None:
            return id_or_prefix
        matches = [i for i in self._ids(newest_first=True) if i.startswith(id_or_prefix.lower())]
        return matches[0] if len(matches) == 1 else None

    def iter(
        self,
        *,
        reason: str | None = None,
        since: float | None = None,
        until: float | None = None,
        newest_first: bool = True,
    ) -> Iterator[DeadLetter]:
        """Entries by last failure time, optionally of one reason or in a time window,
        read a page at a time."""
        for page in _pages(self._ids(since=since, until=until, newest_first=newest_first)):
            for letter in self._load(page):
                if reason is None or letter.reason == reason:
                    yield letter

    def find(
        self, *, reason: str | None = None, since: float | None = None, limit: int = 1000
    ) -> list[DeadLetter]:
        """Entries, newest failure first, optionally of one reason or since a time."""
        found: list[DeadLetter] = []
        for letter in self.iter(reason=reason, since=since):
            if len(found) >= limit:
                break
            found.append(letter)
        return found

    def count(self) -> int:
        return int(self.redis.zcard(self.keys.dead_letters))

    # -- internals ----------------------------------------------------------------------
    def _ids(
        self, *, since: float | None = None, until: float | None = None, newest_first: bool
    ) -> Iterator[str]:
        low = "-inf" if since is None else repr(since)
        high = "+inf" if until is None else repr(until)
        offset = 0
        while True:
            if newest_first:
                ids = self.redis.zrevrangebyscore(
                    self.keys.dead_letters, high, low, start=offset, num=_PAGE
                )
            else:
                ids = self.redis.zrangebyscore(
                    self.keys.dead_letters, low, high, start=offset, num=_PAGE
                )
            yield from ids
            if len(ids) < _PAGE:
                return
            offset += _PAGE

    def _drop(self, *, cutoff: float | None, keep: int, pipe: Any = None) -> Any:
        """Run the trim script (queued on ``pipe`` when given)."""
        args = {
            "entry_prefix": self.keys.dead_letter(""),
            "cutoff": "" if cutoff is None else repr(cutoff),
            "keep": keep,
        }
        return self.scripts["trim"](self.keys.fixed, args, client=pipe)

    def _load(self, ids: Iterable[str]) -> list[DeadLetter]:
        ids = list(ids)
        if not ids:
            return []
        raws: list[Any] = self.redis.mget([self.keys.dead_letter(i) for i in ids])
        return [DeadLetter.model_validate_json(r) for r in raws if r is not None]


def fitted(letter: DeadLetter, limit: int) -> DeadLetter:
    """``letter``, at most ``limit`` bytes as stored. While it is longer, its texts are cut
    in the order of ``_CUTS``, each by the excess but not below its floor (a request
    object becomes its JSON text, cut)."""
    for name, floor in _CUTS:
        bottom = int(floor * limit) if floor < 1 else min(int(floor), limit // 16)
        for _ in range(3):  # the marker a cut adds may call for one more, shorter cut
            over = _stored_size(letter) - limit
            if over <= 0:
                return letter
            text = _text(getattr(letter, name))
            raw, stored = byte_size(text), len(json.dumps(text, ensure_ascii=False).encode())
            # Escapes make stored JSON longer than the text: cut in the same proportion.
            keep = max(raw - -(-over * raw // max(stored, 1)), bottom)
            if keep >= raw:
                break
            letter = letter.model_copy(update={name: cut_text(text, keep)})
    return letter


def _stored_size(letter: DeadLetter) -> int:
    return len(letter.__pydantic_serializer__.to_json(letter))


def _text(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _pages(ids: Iterable[str]) -> Iterator[list[str]]:
    page: list[str] = []
    for entry_id in ids:
        page.append(entry_id)
        if len(page) == _PAGE:
            yield page
            page = []
    if page:
        yield page


def _storable(value: Any) -> Any:
    """``value`` with lone surrogates (JSON allows ``"\\ud800"``, UTF-8 does not) written
    as escapes, so hostile text can always be stored and shown."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _flatten(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _flatten(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _flatten(v, f"{path}[{i}]")]
    return [(path, repr(value))]
