"""The janitor's reads and moves on the job store, all through time-ordered indexes or
the small slot set, so a sweep's cost follows what is due rather than every job kept."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from worker import lua
from worker.backends.base import RemoteJob
from worker.jobs import encode_fields
from worker.keys import Keys
from worker.states import SLOT_STATES, JobState

#: Local states whose record may lack the id of a remote job that exists (the start's
#: answer was lost, or the request came again after the store lost its data).
ADOPTABLE_STATES = frozenset({JobState.QUEUED, JobState.ADMITTED, JobState.DEAD})


@dataclass(frozen=True)
class LocalRef:
    """The few fields of a local record that reconciliation compares with the remote."""

    request_id: str
    state: JobState
    backend: str
    batch_evaluation_id: str | None
    started_at: float | None
    published_at: float | None


_REF_FIELDS = ("state", "backend", "batch_evaluation_id", "started_at", "published_at")


class JanitorIndexes:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        # redis-py types every reply as `Awaitable | Any` (sync and async share stubs).
        self.redis: Any = client
        self.keys = keys
        self._repair_slots = client.register_script(lua.REPAIR_SLOTS)
        self._trim = client.register_script(lua.TRIM_RECORDS)
        self._adopt = client.register_script(lua.ADOPT)

    # -- slots --------------------------------------------------------------------------
    def slot_problems(self) -> tuple[list[str], list[str]]:
        """(slot holders without a timer, slot set members that no longer hold a slot)."""
        members = sorted(_text(m) for m in self.redis.smembers(self.keys.active))
        pipe = self.redis.pipeline(transaction=False)
        for request_id in members:
            pipe.hget(self.keys.job(request_id), "state")
            pipe.zscore(self.keys.due, request_id)
        replies = pipe.execute()
        rearm, release = [], []
        for request_id, state, due in zip(members, replies[::2], replies[1::2], strict=True):
            if state is None or _text(state) not in SLOT_STATES:
                release.append(request_id)
            elif due is None:
                rearm.append(request_id)
        return rearm, release

    def repair_slots(self, request_ids: list[str], *, now: float) -> tuple[list[str], list[str]]:
        if not request_ids:
            return [], []
        keys = [self.keys.active, self.keys.due]
        rearmed, released = self._repair_slots(
            keys=keys, args=[now, self.keys.job(""), *request_ids]
        )
        return [_text(i) for i in rearmed], [_text(i) for i in released]

    # -- record retention ---------------------------------------------------------------
    def trim_candidates(self, *, cutoff: float, limit: int) -> list[str]:
        ids = self.redis.zrangebyscore(self.keys.published_by_time, "-inf", cutoff, 0, limit)
        return [_text(i) for i in ids]

    def trimmable(self, request_ids: list[str]) -> list[str]:
        """Those of ``request_ids`` whose remote job is gone (or never existed)."""
        refs = self.refs(request_ids)
        return [
            i
            for i in request_ids
            if i not in refs
            or refs[i].state == JobState.DELETED
            or (refs[i].state == JobState.PUBLISHED and not refs[i].batch_evaluation_id)
        ]

    def trim(self, request_ids: list[str], *, cutoff: float) -> list[str]:
        if not request_ids:
            return []
        keys = [
            self.keys.published_by_time,
            self.keys.jobs_by_time,
            self.keys.due,
            self.keys.remote_names,
        ]
        trimmed = self._trim(keys=keys, args=[cutoff, self.keys.job(""), *request_ids])
        return [_text(i) for i in trimmed]

    # -- reconciliation -----------------------------------------------------------------
    def live_refs(self) -> list[LocalRef]:
        """Every record with a step still to take (a timer) or a slot: the records that
        know a remote job that still exists."""
        ids = {_text(i) for i in self.redis.zrange(self.keys.due, 0, -1)}
        ids |= {_text(i) for i in self.redis.smembers(self.keys.active)}
        return list(self.refs(sorted(ids)).values())

    def refs(self, request_ids: Iterable[str]) -> dict[str, LocalRef]:
        ids = list(request_ids)
        pipe = self.redis.pipeline(transaction=False)
        for request_id in ids:
            pipe.hmget(self.keys.job(request_id), _REF_FIELDS)
        found: dict[str, LocalRef] = {}
        for request_id, values in zip(ids, pipe.execute(), strict=True):
            state, backend, remote_id, started, published = (
                None if v is None else _text(v) for v in values
            )
            if state is None:
                continue
            found[request_id] = LocalRef(
                request_id=request_id,
                state=JobState(state),
                backend=backend or "",
                batch_evaluation_id=remote_id or None,
                started_at=float(started) if started else None,
                published_at=float(published) if published else None,
            )
        return found

    def adoptable_owners(self, names: list[str]) -> dict[str, str]:
        """Remote name -> request_id for the named remote jobs whose request has a record
        that never learned its remote id (waiting, holding a slot, or dead-lettered after
        a lost start answer). One HMGET on the name index plus one read per match."""
        if not names:
            return {}
        owners = [_text(o) if o else None for o in self.redis.hmget(self.keys.remote_names, names)]
        matched = [(n, o) for n, o in zip(names, owners, strict=True) if o is not None]
        pipe = self.redis.pipeline(transaction=False)
        for _, request_id in matched:
            pipe.hmget(self.keys.job(request_id), ("state", "batch_evaluation_id"))
        found: dict[str, str] = {}
        for (name, request_id), (state, remote_id) in zip(matched, pipe.execute(), strict=True):
            if state is not None and not remote_id and _text(state) in ADOPTABLE_STATES:
                found[name] = request_id
        return found

    def adopt(self, request_id: str, remote: RemoteJob, *, now: float) -> bool:
        values = {
            "batch_evaluation_id": remote.id,
            "batch_evaluation_arn": remote.arn,
            "batch_evaluation_name": remote.name,
            "remote_status": remote.status,
            "started_at": remote.created_at or now,
            "updated_at": now,
            "attempts": 0,
            "first_error_at": None,
        }
        keys = [
            self.keys.job(request_id),
            self.keys.due,
            self.keys.active,
            self.keys.queued_by_deadline,
        ]
        return bool(self._adopt(keys=keys, args=[request_id, now, *encode_fields(values)]))

    # -- account capacity ---------------------------------------------------------------
    def oldest_retained(self, count: int) -> list[tuple[str, float]]:
        """(request_id, published_at) of the ``count`` oldest published jobs whose remote
        job still exists."""
        if count <= 0:
            return []
        rows = self.redis.zrange(self.keys.retained_by_time, 0, count - 1, withscores=True)
        return [(_text(i), float(score)) for i, score in rows]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
