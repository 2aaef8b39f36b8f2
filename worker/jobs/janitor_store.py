"""The janitor's store: its reads and moves on the job records, all through time-ordered
indexes or the small slot set, so a sweep's cost follows what is due rather than every job
kept."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from worker.backends.base import RemoteJob
from worker.jobs.record import encode_fields
from worker.jobs.states import SLOT_STATES, JobState, Move, sources
from worker.jobs.store import JobStore
from worker.jobs.store_base import StoreBase
from worker.keys import DEFAULT_TARGET

#: Local states whose record may lack the id of a remote job that exists (the start's
#: answer was lost, or the request came again after the store lost its data).
ADOPTABLE_STATES = sources(Move.ADOPT)


@dataclass(frozen=True)
class LocalRef:
    """The few fields of a local record that reconciliation compares with the remote."""

    request_id: str
    state: JobState
    target: str
    batch_evaluation_id: str | None
    started_at: float | None
    published_at: float | None
    #: Where the remote job lives besides its id (``worker.backends.base.Scope``).
    scope: dict[str, str]


_REF_FIELDS = (
    "state", "target", "batch_evaluation_id", "started_at", "published_at", "remote_scope",
)  # fmt: skip


class JanitorIndexes(StoreBase):
    """Reads and moves of one target's records, for the janitor."""

    def __init__(self, store: JobStore, target: str) -> None:
        super().__init__(store.redis, store.keys, store.scripts)
        self.target = target
        self.target_keys = store.keys.target(target)
        self._fixed = {**store.keys.fixed, **self.target_keys.fixed}

    # -- slots --------------------------------------------------------------------------
    def slot_problems(self) -> tuple[list[str], list[str]]:
        """(slot holders without a timer, slot set members that no longer hold a slot)."""
        members = sorted(self.redis.smembers(self.target_keys.active))
        pipe = self.redis.pipeline(transaction=False)
        for request_id in members:
            pipe.hget(self.keys.job(request_id), "state")
            pipe.zscore(self.keys.due, request_id)
        replies = pipe.execute()
        rearm, release = [], []
        for request_id, state, due in zip(members, replies[::2], replies[1::2], strict=True):
            if state is None or state not in SLOT_STATES:
                release.append(request_id)
            elif due is None:
                rearm.append(request_id)
        return rearm, release

    def repair_slots(self, request_ids: list[str], *, now: float) -> tuple[list[str], list[str]]:
        if not request_ids:
            return [], []
        args = {"now": now, "job_prefix": self.keys.job("")}
        rearmed, released = self.scripts["repair_slots"](self._fixed, args, request_ids)
        return list(rearmed), list(released)

    # -- record retention ---------------------------------------------------------------
    def trim_candidates(self, *, cutoff: float, limit: int) -> list[str]:
        return list(
            self.redis.zrangebyscore(self.target_keys.published_by_time, "-inf", cutoff, 0, limit)
        )

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
        args = {"cutoff": cutoff, "job_prefix": self.keys.job("")}
        return list(self.scripts["trim_records"](self._fixed, args, request_ids))

    # -- reconciliation -----------------------------------------------------------------
    def live_refs(self) -> list[LocalRef]:
        """The target's records that know a remote job which should still exist: slot
        holders and published jobs kept for their retention."""
        ids = set(self.redis.smembers(self.target_keys.active))
        ids |= set(self.redis.zrange(self.target_keys.retained_by_time, 0, -1))
        return [r for r in self.refs(sorted(ids)).values() if r.target == self.target]

    def refs(self, request_ids: Iterable[str]) -> dict[str, LocalRef]:
        ids = list(request_ids)
        pipe = self.redis.pipeline(transaction=False)
        for request_id in ids:
            pipe.hmget(self.keys.job(request_id), _REF_FIELDS)
        found: dict[str, LocalRef] = {}
        for request_id, values in zip(ids, pipe.execute(), strict=True):
            state, target, remote_id, started, published, scope = values
            if state is None:
                continue
            found[request_id] = LocalRef(
                request_id=request_id,
                state=JobState(state),
                target=target or DEFAULT_TARGET,
                batch_evaluation_id=remote_id or None,
                started_at=float(started) if started else None,
                published_at=float(published) if published else None,
                scope=json.loads(scope) if scope else {},
            )
        return found

    def owners(self, names: list[str]) -> tuple[dict[str, str], set[str]]:
        """For the named remote jobs: (name -> request_id of those whose record never
        learned its remote id and may adopt it: waiting, holding a slot, or dead-lettered
        after a lost start answer; names whose record is past that: it has another
        remote job, or gave up). One HMGET on the name index plus one read per match."""
        if not names:
            return {}, set()
        owners = self.redis.hmget(self.target_keys.remote_names, names)
        matched = [(n, o) for n, o in zip(names, owners, strict=True) if o is not None]
        pipe = self.redis.pipeline(transaction=False)
        for _, request_id in matched:
            pipe.hmget(self.keys.job(request_id), ("state", "batch_evaluation_id"))
        adoptable: dict[str, str] = {}
        superseded: set[str] = set()
        for (name, request_id), (state, remote_id) in zip(matched, pipe.execute(), strict=True):
            if state is None:
                continue
            if not remote_id and state in ADOPTABLE_STATES:
                adoptable[name] = request_id
            else:
                superseded.add(name)
        return adoptable, superseded

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
        keys = {**self._fixed, "job": self.keys.job(request_id)}
        args = {"request_id": request_id, "now": now}
        return bool(self.scripts["adopt"](keys, args, encode_fields(values)))

    # -- account capacity ---------------------------------------------------------------
    def oldest_retained(self, count: int) -> list[tuple[str, float]]:
        """(request_id, published_at) of the ``count`` oldest published jobs whose remote
        job still exists."""
        if count <= 0:
            return []
        rows = self.redis.zrange(self.target_keys.retained_by_time, 0, count - 1, withscores=True)
        return [(i, float(score)) for i, score in rows]
