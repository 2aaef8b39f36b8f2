"""The janitor: one sweep keeps the remote account and the job store clean.

Each job's deadline stop and retention delete ride on the job's own timer
(``worker.jobs.steps``); a sweep is the account-wide view and the safety net:

* requests still in the backlog at their deadline get their EXPIRED outcome;
* slot holders without a timer get one (so no deadline stop is missed), and slots that
  no job holds any more are released;
* local records are trimmed ``record_retention_seconds`` after their outcome;
* reconciliation pages through ListBatchEvaluations: a remote job with evalq's name
  prefix that no record knows is adopted when a record of its request exists, else
  stopped if running (never deleted while it runs, where the service can stop) and
  deleted once it ended: at once if its request moved on without it, else after
  retention; a record whose remote job is gone is resolved (and its outcome
  published). Jobs without the prefix are never touched;
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
from typing import Any

import redis
import structlog

from api_contracts import ReasonCode
from worker.backends.base import RemoteJob
from worker.backends.ratelimit import Operation
from worker.errors import EvalqError, PermanentError, RemoteConflict, RemoteJobNotFound
from worker.janitor.plan import Plan, make_plan
from worker.jobs import moves
from worker.jobs.advance import dead_letter
from worker.jobs.janitor_store import JanitorIndexes, LocalRef
from worker.jobs.states import JobState, Move
from worker.jobs.store import Ref
from worker.keys import DEFAULT_TARGET
from worker.services import Services
from worker.targets.registry import Target

log = structlog.stdlib.get_logger("evalq.janitor")

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
    "deleted_after_retention",
    "forgotten",
)


@dataclass
class Report:
    """What a sweep did (or, for a dry run, would do)."""

    dry_run: bool
    skipped: bool = False
    #: Jobs in the remote accounts listed this sweep (None: no listing was made).
    remote_jobs: int | None = None
    done: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in ACTIONS})
    #: "action:id" of calls the rate limits (or a busy job) pushed to the next sweep.
    deferred: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Each target's counts (``counts()``) and remote jobs.
    by_target: dict[str, dict[str, int | None]] = field(default_factory=dict)

    def add(self, target: str, part: Report) -> None:
        """Fold one target's report into this one."""
        for name, ids in part.done.items():
            self.done[name] += ids
        self.deferred += part.deferred
        self.notes += [note if target == DEFAULT_TARGET else f"{target}: {note}"
                       for note in part.notes]  # fmt: skip
        if part.remote_jobs is not None:
            self.remote_jobs = (self.remote_jobs or 0) + part.remote_jobs
        self.by_target[target] = {**part.counts(), "remote_jobs": part.remote_jobs}

    def remote_jobs_by_target(self) -> dict[str, int]:
        """Jobs each listed target's account held (targets not listed are left out)."""
        listed = {name: counts.get("remote_jobs") for name, counts in self.by_target.items()}
        return {name: jobs for name, jobs in listed.items() if jobs is not None}

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
        body["targets"] = [{"target": name, **counts} for name, counts in self.by_target.items()]
        return body


# -- the sweep ------------------------------------------------------------------------------
def sweep(svc: Services, *, dry_run: bool = False) -> Report:
    """Run one sweep of every target now (unless another janitor holds the lock); a dry
    run only plans. A target that fails is noted; the others are swept all the same."""
    if dry_run:
        return _each_target(svc, dry_run=True)
    lock = svc.redis.lock(
        svc.keys.janitor_lock, timeout=svc.settings.janitor_lock_seconds, blocking=False
    )
    if not lock.acquire():
        log.info("another janitor is sweeping; skipped")
        return Report(False, skipped=True)
    try:
        report = _each_target(svc, dry_run=False)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    log.info("janitor sweep", remote_jobs=report.remote_jobs, **report.counts())
    return report


def _each_target(svc: Services, *, dry_run: bool) -> Report:
    report = Report(dry_run)
    if not dry_run:
        report.done["forgotten"] = forget_dead(svc)
    for target in svc.targets:
        try:
            plan = make_plan(svc, target)
            part = (
                Report(True, remote_jobs=plan.remote_jobs, done=plan.actions(), notes=plan.notes)
                if dry_run
                else carry_out(svc, target, plan)
            )
        except redis.RedisError:
            raise  # the job store is down: no target can be swept
        except Exception as exc:
            log.exception("sweeping a target failed", target=target.name)
            part = Report(dry_run, notes=[f"sweep failed: {type(exc).__name__}: {exc}"])
        report.add(target.name, part)
    return report


# -- acting ---------------------------------------------------------------------------------
def carry_out(svc: Services, target: Target, plan: Plan) -> Report:
    report = Report(False, remote_jobs=plan.remote_jobs, notes=list(plan.notes))
    done = report.done
    indexes = JanitorIndexes(svc.store, target.name)
    now = svc.clock()

    done["expired"] = moves.expire_queued(svc, target.name, plan.expire, now=now)
    done["rearmed"], done["released"] = moves.repair_slots(
        svc, indexes, plan.rearm + plan.release, now=now
    )
    if done["released"]:
        log.warning("released slots no job held", request_ids=done["released"])
    cutoff = now - svc.settings.record_retention_seconds
    done["trimmed"] = indexes.trim(plan.trim_candidates, cutoff=cutoff)

    for request_id, remote in plan.adopt:
        _adopt(svc, indexes, request_id, remote, report)
    if plan.stop or plan.delete:
        backend = target.backend
        _call_each(target, report, "stop", "stopped", plan.stop,
                   lambda job: backend.stop(job.id, job.scope))  # fmt: skip
        _call_each(target, report, "delete", "deleted", plan.delete,
                   lambda job: backend.delete(job.id, job.scope))  # fmt: skip
    _delete_early(svc, target, plan, report, now)
    for ref in plan.resolve:
        _resolve(svc, target, ref, report, now)
    if plan.bulk_delete:
        _delete_in_bulk(svc, target, plan.bulk_delete, report, now)
    return report


def forget_dead(svc: Services) -> list[str]:
    """DEAD records go with their dead letter (purged, replayed away, or trimmed by the
    store's caps): the job store cannot fill up with dead jobs."""
    settings = svc.settings
    forgotten = svc.store.forget_dead(
        dead_letter_key=svc.keys.dead_letter,
        died_before=svc.clock() - settings.dead_letter_max_age_seconds,
        limit=settings.janitor_batch,
    )
    if forgotten:
        log.info("dead records forgotten with their dead letters", count=len(forgotten))
    return forgotten


def _adopt(
    svc: Services, indexes: JanitorIndexes, request_id: str, remote: RemoteJob, report: Report
) -> None:
    # The job lock keeps the adoption from racing a start in flight for the same record.
    lock = svc.store.lock(request_id, svc.settings.lease_seconds)
    if not lock.acquire():
        report.deferred.append(f"adopt:{request_id}")
        return
    try:
        if moves.adopt(svc, indexes, request_id, remote, now=svc.clock()):
            report.done["adopted"].append(request_id)
            log.info("remote job adopted", request_id=request_id, batch_evaluation_id=remote.id)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def _call_each(
    target: Target,
    report: Report,
    operation: Operation,
    action: str,
    jobs: list[RemoteJob],
    call: Callable[[RemoteJob], object],
) -> None:
    """Stop or delete orphans while the shared rate allows; the rest wait a sweep."""
    for position, job in enumerate(jobs):
        if target.rate_limits.acquire(operation) > 0:
            report.deferred += [f"{operation}:{j.id}" for j in jobs[position:]]
            return
        try:
            call(job)  # a delete of a job that is gone (404) returns: it counts as done
        except RemoteJobNotFound:
            continue  # a stop of a job that is gone: nothing left to stop or delete
        except RemoteConflict:
            # Stop: it ended meanwhile (deleted by a later sweep). Delete: it runs again
            # or still (a service that cannot stop a run refuses to delete it meanwhile).
            if operation == "delete":
                log.warning("delete of an orphan refused: it still runs",
                            batch_evaluation_id=job.id)  # fmt: skip
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


def _delete_early(svc: Services, target: Target, plan: Plan, report: Report, now: float) -> None:
    """Cut the retention of the oldest published jobs to now: their own timers delete
    them right away, at the shared delete rate, with the usual 409/404 handling."""
    for request_id, published_at in plan.delete_early:
        moved = moves.move(
            svc,
            Ref(request_id, target.name),
            Move.CUT_RETENTION,
            due_at=now,
            retention_seconds=max(0.0, now - published_at),
            updated_at=now,
        )
        if moved:
            report.done["deleted_early"].append(request_id)
    if plan.delete_early:
        log.warning(
            "account nearly full: deleting the oldest published jobs early",
            target=target.name,
            remote_jobs=plan.remote_jobs,
            high_water=target.config.account_high_water,
            max_jobs=target.config.account_max_jobs,
            request_ids=report.done["deleted_early"],
            orphans=[job.id for job in plan.delete],
        )


def _resolve(svc: Services, target: Target, ref: LocalRef, report: Report, now: float) -> None:
    """A record whose remote job is gone: poll it now if it runs (the poll's 404 finishes
    it as FAILED and publishes the outcome); if published, confirm and mark it deleted."""
    if ref.state != JobState.PUBLISHED:
        if moves.move(svc, ref, Move.POLL, from_state=ref.state, due_at=now):
            report.done["resolved"].append(ref.request_id)
        return
    if target.rate_limits.acquire("get") > 0:
        report.deferred.append(f"resolve:{ref.request_id}")
        return
    assert ref.batch_evaluation_id is not None
    try:
        target.backend.get(ref.batch_evaluation_id, ref.scope)
    except RemoteJobNotFound:
        if moves.move(
            svc,
            ref,
            Move.DELETE,
            clear_due=True,
            deleted_at=now,
            updated_at=now,
        ):
            report.done["resolved"].append(ref.request_id)
            log.info("remote job already gone; record marked deleted", request_id=ref.request_id)
    except EvalqError as exc:
        report.deferred.append(f"resolve:{ref.request_id}")
        log.warning("confirming a vanished remote job failed", error=str(exc))


def _delete_in_bulk(
    svc: Services, target: Target, refs: list[LocalRef], report: Report, now: float
) -> None:
    """Delete the remote jobs of published jobs whose retention ended, in one call per
    scope (the service's bulk delete), at the shared delete rate."""
    if target.rate_limits.acquire("delete") > 0:
        report.deferred += [f"delete:{ref.request_id}" for ref in refs]
        return
    try:
        target.backend.delete_many([(ref.batch_evaluation_id or "", ref.scope) for ref in refs])
    except PermanentError as exc:
        # Refused for good (access, a database that is gone): each job becomes a dead
        # letter whose replay deletes again, rather than a warning every sweep.
        log.error("bulk delete refused", target=target.name, error=str(exc))
        _dead_letter_each(svc, target, refs, exc.reason, str(exc))
        return
    except EvalqError as exc:
        log.warning("bulk delete failed", target=target.name, error=str(exc))
        # Tried again every sweep within the retry budget's time since the delete was
        # due, then a dead letter as well (it was a warning every sweep for ever).
        late = _due_longer_than(svc, target, refs, svc.settings.retry_max_seconds, now)
        error = f"gave up after {svc.settings.retry_max_seconds:g} s: {exc}"
        _dead_letter_each(svc, target, late, ReasonCode.retries_exhausted, error)
        report.deferred += [f"delete:{ref.request_id}" for ref in refs if ref not in late]
        return
    for ref in refs:
        if moves.move(svc, ref, Move.DELETE, deleted_at=now, updated_at=now):
            report.done["deleted_after_retention"].append(ref.request_id)
    svc.store.deletion_done(target.name, [ref.request_id for ref in refs])


def _due_longer_than(
    svc: Services, target: Target, refs: list[LocalRef], seconds: float, now: float
) -> list[LocalRef]:
    """The refs whose bulk delete has been due for longer than ``seconds``."""
    due = svc.store.deletions_due_at(target.name, [ref.request_id for ref in refs])
    return [ref for ref, at in zip(refs, due, strict=True) if at is not None and now - at > seconds]


def _dead_letter_each(
    svc: Services, target: Target, refs: list[LocalRef], reason: ReasonCode, error: str
) -> None:
    """Each job's bulk delete is given up on: a dead letter whose replay deletes again."""
    if not refs:
        return
    svc.store.deletion_done(target.name, [ref.request_id for ref in refs])
    for job in filter(None, (svc.store.get(ref.request_id) for ref in refs)):
        dead_letter(svc, job, reason, error)
