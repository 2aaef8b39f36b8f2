"""The janitor: one sweep keeps the remote account and the job store clean.

Each job's deadline stop and retention delete ride on the job's own timer
(``worker.lifecycle``); a sweep is the account-wide view and the safety net:

* requests still in the backlog at their deadline get their EXPIRED outcome;
* slot holders without a timer get one (so no deadline stop is missed), and slots that
  no job holds any more are released;
* local records are trimmed ``record_retention_seconds`` after their outcome;
* reconciliation pages through ListBatchEvaluations: a remote job with evalq's name
  prefix that no record knows is adopted when a record of its request exists, else
  stopped if running and deleted after retention; a record whose remote job is gone is
  resolved (and its outcome published). Jobs without the prefix are never touched;
* when the account nears its quota of jobs, the oldest published jobs are deleted early.

A sweep first makes a plan (plain data), then carries it out; ``evalq janitor --dry-run``
prints the plan. Every action re-checks its condition atomically (a Lua script or a
compare-and-set), so a plan that went stale does no harm. List, Stop and Delete share
the account-wide rate limits with every worker: a call that may not go now waits for
the next sweep or for the job's timer, never in a sleep. One janitor sweeps at a time
(a Redis lock), however many beat or worker hosts run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
import structlog

from worker.backends.base import RemoteJob
from worker.errors import EvalqError, RemoteConflict, RemoteJobNotFound
from worker.janitor_store import JanitorIndexes, LocalRef
from worker.lifecycle import admit_waiting
from worker.ratelimit import Operation
from worker.services import Services
from worker.states import RUNNING_STATES, JobState, is_terminal

log = structlog.stdlib.get_logger("evalq.janitor")

#: The backend whose account is reconciled (the one whose jobs carry the name prefix).
RECONCILED_BACKEND = "agentcore"
#: What a sweep does, in the order it does it (the keys of its report).
ACTIONS = (
    "expired",
    "rearmed",
    "released",
    "trimmed",
    "adopted",
    "stopped",
    "deleted",
    "deleted_early",
    "resolved",
)


@dataclass
class Plan:
    """What a sweep found to do; ids are request_ids, except remote orphans' ids."""

    now: float
    expire: list[str] = field(default_factory=list)
    rearm: list[str] = field(default_factory=list)
    release: list[str] = field(default_factory=list)
    #: Index entries whose record retention ended; ``trim`` are those trimmed now (the
    #: rest still have a remote job and are looked at again after its retention).
    trim_candidates: list[str] = field(default_factory=list)
    trim: list[str] = field(default_factory=list)
    #: Jobs in the remote account (all of them: the quota counts them all); None when
    #: the listing could not be made this sweep.
    remote_jobs: int | None = None
    adopt: list[tuple[str, RemoteJob]] = field(default_factory=list)
    stop: list[RemoteJob] = field(default_factory=list)
    delete: list[RemoteJob] = field(default_factory=list)
    #: (request_id, published_at) of published jobs deleted before their retention ends.
    delete_early: list[tuple[str, float]] = field(default_factory=list)
    #: Records whose remote job is gone: running ones are polled now (the poll finishes
    #: them), published ones are confirmed gone and marked deleted.
    resolve: list[LocalRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def actions(self) -> dict[str, list[str]]:
        return {
            "expired": self.expire,
            "rearmed": self.rearm,
            "released": self.release,
            "trimmed": self.trim,
            "adopted": [request_id for request_id, _ in self.adopt],
            "stopped": [job.id for job in self.stop],
            "deleted": [job.id for job in self.delete],
            "deleted_early": [request_id for request_id, _ in self.delete_early],
            "resolved": [ref.request_id for ref in self.resolve],
        }


@dataclass
class Report:
    """What a sweep did (or, for a dry run, would do)."""

    dry_run: bool
    skipped: bool = False
    remote_jobs: int | None = None
    done: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in ACTIONS})
    #: "action:id" of calls the rate limits (or a busy job) pushed to the next sweep.
    deferred: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(ids) for name, ids in self.done.items()} | {
            "deferred": len(self.deferred)
        }

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "dry_run": self.dry_run,
            "skipped": self.skipped,
            "remote_jobs": self.remote_jobs,
        }
        for name, ids in [*self.done.items(), ("deferred", self.deferred)]:
            body[name] = {"count": len(ids), "ids": ids}
        body["notes"] = self.notes
        return body


# -- the sweep ------------------------------------------------------------------------------
def sweep(svc: Services, *, dry_run: bool = False) -> Report:
    """Run one sweep now (unless another janitor holds the lock); a dry run only plans."""
    if dry_run:
        plan = make_plan(svc)
        return Report(True, remote_jobs=plan.remote_jobs, done=plan.actions(), notes=plan.notes)
    lock = svc.redis.lock(
        svc.keys.janitor_lock, timeout=svc.settings.janitor_lock_seconds, blocking=False
    )
    if not lock.acquire():
        log.info("another janitor is sweeping; skipped")
        return Report(False, skipped=True)
    try:
        report = carry_out(svc, make_plan(svc))
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    log.info("janitor sweep", remote_jobs=report.remote_jobs, **report.counts())
    return report


# -- planning -------------------------------------------------------------------------------
def make_plan(svc: Services) -> Plan:
    settings = svc.settings
    indexes = JanitorIndexes(svc.redis, svc.keys)
    now = svc.clock()
    plan = Plan(now=now)
    plan.expire = svc.store.overdue_queued(now=now, limit=settings.janitor_batch)
    plan.rearm, plan.release = indexes.slot_problems()
    cutoff = now - settings.record_retention_seconds
    plan.trim_candidates = indexes.trim_candidates(cutoff=cutoff, limit=settings.janitor_batch)
    plan.trim = indexes.trimmable(plan.trim_candidates)
    listing = _list_remote(svc, plan)
    if listing is not None:
        listed_at, remote = listing
        plan.remote_jobs = len(remote)
        early_orphans = _plan_reconciliation(svc, indexes, plan, listed_at, remote)
        _plan_capacity(svc, indexes, plan, early_orphans)
    return plan


def _list_remote(svc: Services, plan: Plan) -> tuple[float, list[RemoteJob]] | None:
    """Every job of the account, one rate-limited page at a time; None if a page must
    wait (the next sweep lists again) or the service failed."""
    backend = svc.backends.get(RECONCILED_BACKEND)
    if backend is None:
        return None
    listed_at = svc.clock()
    jobs: list[RemoteJob] = []
    token: str | None = None
    while True:
        if svc.rate_limits.acquire("list") > 0:
            plan.notes.append("listing deferred to the next sweep (shared list rate)")
            return None
        try:
            page, token = backend.list_page(token)
        except EvalqError as exc:
            log.warning("listing remote jobs failed", error=str(exc))
            plan.notes.append(f"listing failed: {exc}")
            return None
        jobs += page
        if not token:
            return listed_at, jobs


def _plan_reconciliation(
    svc: Services, indexes: JanitorIndexes, plan: Plan, listed_at: float, remote: list[RemoteJob]
) -> list[tuple[float, RemoteJob]]:
    """Plan adoptions, orphan stops and deletes, and resolutions; returns the terminal
    orphans still inside their retention (with their end time) for the capacity step."""
    settings = svc.settings
    # Records are read after the listing, so a job listed was started before the read:
    # its record knows it, or is a slot holder whose start is in flight (adoptable).
    refs = [r for r in indexes.live_refs() if r.backend == RECONCILED_BACKEND]
    known = {r.batch_evaluation_id for r in refs if r.batch_evaluation_id}
    unknown = [
        job
        for job in remote
        if (job.name or "").startswith(settings.job_name_prefix) and job.id not in known
    ]
    owners = indexes.adoptable_owners([job.name for job in unknown if job.name])
    early_orphans: list[tuple[float, RemoteJob]] = []
    for job in unknown:
        owner = owners.get(job.name or "")
        if owner is not None:
            plan.adopt.append((owner, job))
        elif job.status in RUNNING_STATES:
            plan.stop.append(job)
        elif is_terminal(job.status):
            ended = _ended_at(job)
            if ended + settings.default_retention_seconds <= plan.now:
                plan.delete.append(job)
            else:
                early_orphans.append((ended, job))
    listed = {job.id for job in remote}
    for ref in refs:
        if ref.batch_evaluation_id is None or ref.batch_evaluation_id in listed:
            continue
        if ref.state in (JobState.RUNNING, JobState.STOPPING):
            since = ref.started_at
        elif ref.state == JobState.PUBLISHED:
            since = ref.published_at
        else:
            continue
        if since is not None and since < listed_at:
            plan.resolve.append(ref)
    return early_orphans


def _plan_capacity(
    svc: Services, indexes: JanitorIndexes, plan: Plan, early_orphans: list[tuple[float, RemoteJob]]
) -> None:
    """Near the account's quota of jobs, plan deleting the oldest finished ones early:
    evalq's published jobs and its terminal orphans, oldest end first."""
    settings = svc.settings
    assert plan.remote_jobs is not None
    mark = min(settings.account_high_water, settings.account_max_jobs)
    excess = plan.remote_jobs - len(plan.delete) - (mark - 1)
    if excess <= 0:
        return
    gone = {ref.request_id for ref in plan.resolve}
    published = [(at, rid) for rid, at in indexes.oldest_retained(excess) if rid not in gone]
    candidates: list[tuple[float, str, RemoteJob | None]] = [
        *((at, rid, None) for at, rid in published),
        *((at, job.id, job) for at, job in early_orphans),
    ]
    for at, request_id, orphan in sorted(candidates, key=lambda c: c[0])[:excess]:
        if orphan is not None:
            plan.delete.append(orphan)
        else:
            plan.delete_early.append((request_id, at))
    plan.notes.append(
        f"account nearly full: {plan.remote_jobs} of {settings.account_max_jobs} jobs "
        f"(high-water mark {settings.account_high_water})"
    )


def _ended_at(job: RemoteJob) -> float:
    """When a terminal remote job ended (its last update), else when it was created."""
    updated = job.body.get("updatedAt")
    if isinstance(updated, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(updated).timestamp()
    return job.created_at or 0.0


# -- acting ---------------------------------------------------------------------------------
def carry_out(svc: Services, plan: Plan) -> Report:
    report = Report(False, remote_jobs=plan.remote_jobs, notes=list(plan.notes))
    done = report.done
    indexes = JanitorIndexes(svc.redis, svc.keys)
    now = svc.clock()

    for request_id in svc.store.expire_queued(plan.expire, now=now):
        svc.dispatch(request_id, None, 0.0)
        done["expired"].append(request_id)
    done["rearmed"], done["released"] = indexes.repair_slots(plan.rearm + plan.release, now=now)
    if done["released"]:
        log.warning("released slots no job held", request_ids=done["released"])
        admit_waiting(svc)
    cutoff = now - svc.settings.record_retention_seconds
    done["trimmed"] = indexes.trim(plan.trim_candidates, cutoff=cutoff)

    for request_id, remote in plan.adopt:
        _adopt(svc, indexes, request_id, remote, report)
    backend = svc.backend(RECONCILED_BACKEND) if plan.stop or plan.delete else None
    if backend is not None:
        _call_each(svc, report, "stop", "stopped", plan.stop, backend.stop)
        _call_each(svc, report, "delete", "deleted", plan.delete, backend.delete)
    _delete_early(svc, plan, report, now)
    for ref in plan.resolve:
        _resolve(svc, ref, report, now)
    return report


def _adopt(
    svc: Services, indexes: JanitorIndexes, request_id: str, remote: RemoteJob, report: Report
) -> None:
    # The job lock keeps the adoption from racing a start in flight for the same record.
    lock = svc.store.lock(request_id, svc.settings.lease_seconds)
    if not lock.acquire():
        report.deferred.append(f"adopt:{request_id}")
        return
    try:
        if indexes.adopt(request_id, remote, now=svc.clock()):
            report.done["adopted"].append(request_id)
            log.info("remote job adopted", request_id=request_id, batch_evaluation_id=remote.id)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def _call_each(
    svc: Services,
    report: Report,
    operation: Operation,
    action: str,
    jobs: list[RemoteJob],
    call: Callable[[str], object],
) -> None:
    """Stop or delete orphans while the shared rate allows; the rest wait a sweep."""
    for position, job in enumerate(jobs):
        if svc.rate_limits.acquire(operation) > 0:
            report.deferred += [f"{operation}:{j.id}" for j in jobs[position:]]
            return
        try:
            call(job.id)
        except RemoteJobNotFound:
            continue
        except RemoteConflict:
            # Stop: it ended meanwhile (deleted after retention later). Delete: it runs.
            if operation == "delete":
                report.deferred.append(f"{operation}:{job.id}")
            continue
        except EvalqError as exc:
            log.warning(
                f"{operation} of an orphan failed", batch_evaluation_id=job.id, error=str(exc)
            )
            report.deferred.append(f"{operation}:{job.id}")
            continue
        report.done[action].append(job.id)
        log.info(f"orphan remote job {action}", batch_evaluation_id=job.id, name=job.name)


def _delete_early(svc: Services, plan: Plan, report: Report, now: float) -> None:
    """Cut the retention of the oldest published jobs to now: their own timers delete
    them right away, at the shared delete rate, with the usual 409/404 handling."""
    for request_id, published_at in plan.delete_early:
        moved = svc.store.transition(
            request_id,
            JobState.PUBLISHED,
            expected=frozenset({JobState.PUBLISHED}),
            due_at=now,
            retention_seconds=max(0.0, now - published_at),
            updated_at=now,
        )
        if moved:
            report.done["deleted_early"].append(request_id)
    if plan.delete_early:
        log.warning(
            "account nearly full: deleting the oldest published jobs early",
            remote_jobs=plan.remote_jobs,
            high_water=svc.settings.account_high_water,
            max_jobs=svc.settings.account_max_jobs,
            request_ids=report.done["deleted_early"],
            orphans=[job.id for job in plan.delete],
        )


def _resolve(svc: Services, ref: LocalRef, report: Report, now: float) -> None:
    """A record whose remote job is gone: poll it now if it runs (the poll's 404 finishes
    it as FAILED and publishes the outcome); if published, confirm and mark it deleted."""
    if ref.state != JobState.PUBLISHED:
        if svc.store.transition(
            ref.request_id, ref.state, expected=frozenset({ref.state}), due_at=now
        ):
            report.done["resolved"].append(ref.request_id)
        return
    if svc.rate_limits.acquire("get") > 0:
        report.deferred.append(f"resolve:{ref.request_id}")
        return
    assert ref.batch_evaluation_id is not None
    try:
        svc.backend(ref.backend).get(ref.batch_evaluation_id)
    except RemoteJobNotFound:
        if svc.store.transition(
            ref.request_id,
            JobState.DELETED,
            expected=frozenset({JobState.PUBLISHED}),
            clear_due=True,
            deleted_at=now,
            updated_at=now,
        ):
            report.done["resolved"].append(ref.request_id)
            log.info("remote job already gone; record marked deleted", request_id=ref.request_id)
    except EvalqError as exc:
        report.deferred.append(f"resolve:{ref.request_id}")
        log.warning("confirming a vanished remote job failed", error=str(exc))
