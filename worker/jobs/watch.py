"""Watching a target's running jobs with one listing per tick instead of a Get per job.

ListBatchEvaluations returns every job of an account with its status and session counts,
100 per page. One pass per tick over those pages sees every running job of the target;
a job that ended is handed to a worker at once, whose step reads the full body with the
job's only GetBatchEvaluation, or, for a job that asked for no insights and no dataset
run, from the listing's own summary, which then holds its whole outcome (no Get at all).
Running jobs a listing watches skip their own polls
(``worker.jobs.steps``) as long as the listing is fresh (``TargetKeys.watching``): if
the watcher stops, the next recheck of each job polls it again. A stopping job (past its
deadline) polls on its own, so it can ask for its stop again.

A listing costs a call per page per tick; per-job Gets cost a call per job per poll. The
watcher lists while the account's pages are no more than the target's running jobs (the
janitor keeps accounts small); else the jobs poll on their own, progress-projected.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from worker.backends.base import RemoteJob, is_terminal
from worker.backends.registry import Target
from worker.errors import EvalqError
from worker.jobs import moves
from worker.jobs.polling import observed_progress, projected_end
from worker.jobs.record import Progress
from worker.jobs.services import Services
from worker.jobs.states import REMOTE_LIVE_STATES, JobState, Move
from worker.jobs.store import Ref
from worker.jobs.watch_store import WatchStore
from worker.settings import Settings

log = structlog.stdlib.get_logger("evalq.watch")

#: Jobs per ListBatchEvaluations page (the service's largest).
PAGE_SIZE = 100
#: A listing stays fresh this many tick intervals.
FRESH_TICKS = 10
#: What the listing reads of each slot holder's record.
_WATCHED_FIELDS = (
    "batch_evaluation_id", "state", "remote_status", "progress_last", "listing_outcome",
    "progress_first",
)  # fmt: skip


def listing_lease(settings: Settings) -> float:
    """Seconds a sent ``evals.watch`` may wait for a worker before it expires unrun; the
    tick sends no other for that target meanwhile (``JobStore.survey``). Half the time a
    listing stays fresh: late, it still comes before the jobs fall back to their own polls."""
    return max(1.0, FRESH_TICKS * settings.tick_interval / 2)


@dataclass
class WatchReport:
    listed: bool = False
    pages: int = 0
    #: Jobs whose end the listing saw: handed to a worker.
    ended: list[str] | None = None
    #: Jobs whose progress the listing updated.
    progressed: int = 0


def watch(svc: Services, name: str) -> WatchReport:
    """One listing pass over target ``name`` (or none, when per-job polls are cheaper)."""
    target = svc.targets.get(name)
    report = WatchReport()
    if target is None or not svc.settings.watch_by_list:
        return report
    running = svc.store.active_count(name)
    pages = max(1, math.ceil(WatchStore(svc.store).remote_jobs(name) / PAGE_SIZE))
    if running == 0 or pages > running:
        _stop_watching(svc, target)
        return report
    lock = WatchStore(svc.store).lock(name, timeout=max(5.0, 5 * svc.settings.tick_interval))
    if not lock.acquire():
        return report  # the previous pass is still listing
    try:
        listing = _list(target)
        if listing is None:
            # Not listed (its rate, or the service said no): again at the next tick, not
            # at the end of the lease the tick claimed it for.
            svc.store.watch_at(name, svc.clock() + svc.settings.tick_interval)
            return report
        report.listed, report.pages = True, len(listing[1])
        _record(svc, target, listing[0], report)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()
    return report


def is_watched(svc: Services, target: Target) -> bool:
    """Whether a fresh listing watches the target's running jobs."""
    return WatchStore(svc.store).is_watched(target.name)


def _list(target: Target) -> tuple[list[RemoteJob], list[int]] | None:
    """Every page of the account's jobs, or None if the rate or the service said no."""
    jobs: list[RemoteJob] = []
    pages: list[int] = []
    token: str | None = None
    while True:
        if target.rate_limits.acquire("list") > 0:
            return None
        try:
            page, token = target.backend.list_page(token)
        except EvalqError as exc:
            log.warning("listing for the watch failed", target=target.name, error=str(exc))
            return None
        jobs += page
        pages.append(len(page))
        if not token:
            return jobs, pages


def _record(svc: Services, target: Target, remote: list[RemoteJob], report: WatchReport) -> None:
    now = svc.clock()
    # Fresh for ten ticks: a watcher that stops (or falls behind that much under load)
    # leaves the jobs to their own polls.
    fresh_ms = max(1, int(FRESH_TICKS * 1000 * svc.settings.tick_interval))
    WatchStore(svc.store).listed(target.name, len(remote), now=now, fresh_ms=fresh_ms)
    # The target's slot holders, by remote id: every job that may skip its own polls is
    # one, whatever its name (records from before the name index have none).
    by_id = {
        remote_id: (owner, text, stored, progress, whole, first)
        for owner, (remote_id, text, stored, progress, whole, first)
        in svc.store.slot_holders(target.name, _WATCHED_FIELDS)
        if remote_id
    }  # fmt: skip
    report.ended = []
    #: The projected end of each job still running (None: no rate yet).
    ends: list[float | None] = []
    for job in remote:
        owner, text, stored, progress, whole, first = by_id.get(job.id, (None,) * 6)
        if owner is None or text not in REMOTE_LIVE_STATES:
            continue
        if not is_terminal(job.status):
            ends.append(_projected(job, first, now))
        state, ref = JobState(text), Ref(owner, target.name)
        if is_terminal(job.status):
            if not is_terminal(stored or ""):
                # A stopping job polls on its own (it may have to ask for its stop
                # again): its end is read with a Get.
                whole_outcome = whole == "1" and state == JobState.RUNNING
                _ended(svc, ref, state, job, now, whole=whole_outcome)
                report.ended.append(owner)
        elif _progress_changed(job, progress):
            fields = _progress_fields(job, now, first=progress is None)
            moves.move(svc, ref, Move.POLL, from_state=state, **fields)
            report.progressed += 1
    _time_next_listing(svc, target, ends, now)


def _projected(job: RemoteJob, first: str | None, now: float) -> float | None:
    """When the job's sessions will be done, from its first progress point and what the
    listing says now."""
    seen = observed_progress(job, now)
    if seen is None:
        return None
    return projected_end(json.loads(first) if first else vars(seen), vars(seen))


def _time_next_listing(svc: Services, target: Target, ends: list[float | None], now: float) -> None:
    """The target's next listing comes when its first running job is projected to end
    (``end_margin`` after), at least a tick and at most ``watch_recheck_seconds`` away
    (which bounds how late an end nobody foresaw is seen); none when nothing runs. The
    listing stays fresh until then, so the jobs skip their own polls meanwhile."""
    if not ends:
        svc.store.unwatch(target.name)
        return
    settings, policy = svc.settings, svc.poll_policy
    delays = [settings.poll_initial if end is None else policy.delay_to(end, now)
              for end in ends]  # fmt: skip
    delay = max(settings.tick_interval, min(settings.watch_recheck_seconds, *delays))
    svc.store.watch_at(target.name, now + delay)
    fresh = delay + FRESH_TICKS * settings.tick_interval
    WatchStore(svc.store).keep_watching(target.name, now=now, fresh_ms=max(1, int(1000 * fresh)))


def _ended(
    svc: Services, ref: Ref, state: JobState, job: RemoteJob, now: float, *, whole: bool
) -> None:
    """Record the end the listing saw and hand the job to a worker now: its step
    publishes the outcome, from this listing's summary when that is ``whole`` (no Get),
    else from the full body of the job's only GetBatchEvaluation."""
    listed: dict[str, Any] = {"listed_result": job.body} if whole else {}
    moved = moves.move(
        svc,
        ref,
        Move.POLL,
        from_state=state,
        due_at=now,
        remote_status=job.status,
        remote_ended_at=now,
        updated_at=now,
        **listed,
    )
    if moved:
        svc.dispatch(ref.request_id, None, 0.0)
        log.info("end seen by listing", request_id=ref.request_id, status=job.status)


def _progress_changed(job: RemoteJob, stored: str | None) -> bool:
    seen = Progress.from_counts(job.counts, 0.0)
    if seen is None:
        return False
    if stored is None:
        return True
    last: dict[str, Any] = json.loads(stored)
    return (last.get("completed"), last.get("failed")) != (seen.completed, seen.failed)


def _progress_fields(job: RemoteJob, now: float, *, first: bool) -> dict[str, Any]:
    seen = observed_progress(job, now)
    assert seen is not None
    fields: dict[str, Any] = {"progress_last": vars(seen), "remote_status": job.status}
    if first:
        fields["progress_first"] = vars(seen)
    return fields


def _stop_watching(svc: Services, target: Target) -> None:
    """Per-job polls take over: a job whose next poll waits on the listing is rechecked
    now rather than at its next recheck."""
    for request_id in WatchStore(svc.store).stop_watching(target.name):
        svc.store.schedule(request_id, svc.clock())
