"""The janitor's plan: what one sweep found to do, as plain data (``evalq janitor
--dry-run`` prints it). Making it reads the job store's indexes and lists the remote
account; it changes nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from worker.backends.base import STOPPABLE_STATUSES, RemoteJob, is_terminal
from worker.errors import EvalqError
from worker.jobs.janitor_store import JanitorIndexes, LocalRef
from worker.jobs.states import REMOTE_LIVE_STATES, JobState
from worker.services import Services
from worker.targets.registry import Target

log = structlog.stdlib.get_logger("evalq.janitor")


@dataclass
class Plan:
    """What a sweep found to do in one target; ids are request_ids, except remote
    orphans' ids."""

    target: str
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
    #: Published jobs whose retention ended, deleted in one call per scope (services
    #: that delete in bulk).
    bulk_delete: list[LocalRef] = field(default_factory=list)
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
            "deleted_after_retention": [ref.request_id for ref in self.bulk_delete],
        }


def make_plan(svc: Services, target: Target) -> Plan:
    settings = svc.settings
    indexes = JanitorIndexes(svc.store, target.name)
    now = svc.clock()
    plan = Plan(target=target.name, now=now)
    plan.expire = svc.store.overdue_queued(target.name, now=now, limit=settings.janitor_batch)
    plan.rearm, plan.release = indexes.slot_problems()
    cutoff = now - settings.record_retention_seconds
    plan.trim_candidates = indexes.trim_candidates(cutoff=cutoff, limit=settings.janitor_batch)
    plan.trim = indexes.trimmable(plan.trim_candidates)
    if target.backend.capabilities.bulk_delete:
        due = svc.store.deletions_due(target.name, now=now, limit=settings.janitor_batch)
        plan.bulk_delete = [ref for ref in indexes.refs(due).values() if ref.batch_evaluation_id]
    listing = _list_remote(svc, target, plan)
    if listing is not None:
        listed_at, remote = listing
        plan.remote_jobs = len(remote)
        early_orphans = _plan_reconciliation(svc, target, indexes, plan, listed_at, remote)
        _plan_capacity(target, indexes, plan, early_orphans)
    return plan


def _list_remote(svc: Services, target: Target, plan: Plan) -> tuple[float, list[RemoteJob]] | None:
    """Every job of the account, one rate-limited page at a time; None if a page must
    wait (the next sweep lists again) or the service failed."""
    listed_at = svc.clock()
    jobs: list[RemoteJob] = []
    token: str | None = None
    while True:
        if target.rate_limits.acquire("list") > 0:
            plan.notes.append("listing deferred to the next sweep (shared list rate)")
            return None
        try:
            page, token = target.backend.list_page(token)
        except EvalqError as exc:
            log.warning("listing remote jobs failed", error=str(exc))
            plan.notes.append(f"listing failed: {exc}")
            return None
        jobs += page
        if not token:
            return listed_at, jobs


def _plan_reconciliation(
    svc: Services,
    target: Target,
    indexes: JanitorIndexes,
    plan: Plan,
    listed_at: float,
    remote: list[RemoteJob],
) -> list[tuple[float, RemoteJob]]:
    """Plan adoptions, orphan stops and deletes, and resolutions; returns the terminal
    orphans still inside their retention (with their end time) for the capacity step.
    Only jobs with the target's own name prefix are evalq's here."""
    settings = svc.settings
    prefix = target.config.job_name_prefix
    # Records are read after the listing, so a job listed was started before the read:
    # its record knows it, or is a slot holder whose start is in flight (adoptable).
    refs = indexes.live_refs()
    known = {r.batch_evaluation_id for r in refs if r.batch_evaluation_id}
    unknown = [job for job in remote if (job.name or "").startswith(prefix) and job.id not in known]
    owners, superseded = indexes.owners([job.name for job in unknown if job.name])
    can_stop = target.backend.capabilities.can_stop
    early_orphans: list[tuple[float, RemoteJob]] = []
    for job in unknown:
        owner = owners.get(job.name or "")
        if owner is not None:
            plan.adopt.append((owner, job))
        elif job.status in STOPPABLE_STATUSES:
            # Running: a delete would be refused (409) while it runs on, so it is stopped
            # first; a service that cannot stop a run has only the delete to end it.
            (plan.stop if can_stop else plan.delete).append(job)
        elif not is_terminal(job.status):
            continue  # stopping or being deleted: looked at again by the next sweep
        elif job.name in superseded:
            # Its request has another remote job (a create sent twice by a service
            # without an idempotency key), gave up on this one (it came after the
            # deadline) or was dead-lettered while it ran: nobody waits for it.
            plan.delete.append(job)
        else:
            ended = _ended_at(job)
            if ended + settings.default_retention_seconds <= plan.now:
                plan.delete.append(job)
            else:
                early_orphans.append((ended, job))
    listed = {job.id for job in remote}
    for ref in refs:
        if ref.batch_evaluation_id is None or ref.batch_evaluation_id in listed:
            continue
        if ref.state in REMOTE_LIVE_STATES:
            since = ref.started_at
        elif ref.state == JobState.PUBLISHED:
            since = ref.published_at
        else:
            continue
        if since is not None and since < listed_at:
            plan.resolve.append(ref)
    return early_orphans


def _plan_capacity(
    target: Target,
    indexes: JanitorIndexes,
    plan: Plan,
    early_orphans: list[tuple[float, RemoteJob]],
) -> None:
    """Near the account's quota of jobs, plan deleting the oldest finished ones early:
    evalq's published jobs and its terminal orphans, oldest end first."""
    high_water, max_jobs = target.config.account_high_water, target.config.account_max_jobs
    assert plan.remote_jobs is not None
    mark = min(high_water, max_jobs)
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
        f"account nearly full: {plan.remote_jobs} of {max_jobs} jobs (high-water mark {high_water})"
    )


def _ended_at(job: RemoteJob) -> float:
    """When a terminal remote job ended (its last update), else when it was created."""
    updated = job.body.get("updatedAt")
    if isinstance(updated, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(updated).timestamp()
    return job.created_at or 0.0
