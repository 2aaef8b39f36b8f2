"""Admission and the timer: what fills each target's slots and hands due steps out.

* the tick fills a target's free slots from its backlog (fairly: ``scripts/admit.lua``)
  through ``worker.jobs.moves.admit``, which hands each admitted job to a worker (every
  move that frees a slot admits there too);
* :func:`expire_backlog` gives requests whose deadline passed in a target's backlog their
  EXPIRED outcome;
* :func:`tick` (beat's ``evals.tick``) hands every timer due before the next tick to a
  worker, with a short countdown, then, for the targets that need it (one survey of
  every target: ``JobStore.survey``), does both of the above and sends the watch of
  those whose listing is due (``worker.jobs.watch``: timed by their jobs' projected
  ends). An idle target costs a tick a few reads in that survey and nothing else; a full
  or paused target admits nothing and holds no other target back.
"""

from __future__ import annotations

import structlog

from worker.backends.registry import Target
from worker.jobs import moves
from worker.jobs.services import Services
from worker.jobs.watch import listing_lease
from worker.observability import metrics

log = structlog.stdlib.get_logger("evalq.admission")


def expire_backlog(svc: Services, target: str, limit: int | None = None) -> list[str]:
    """Give every request whose deadline passed in the target's backlog its EXPIRED
    outcome now (not only when admission reaches it); the deadline index keeps this
    O(due)."""
    now = svc.clock()
    overdue = svc.store.overdue_queued(target, now=now, limit=limit or svc.settings.tick_batch)
    return moves.expire_queued(svc, target, overdue, now=now)


def tick(svc: Services) -> int:
    """Hand every timer due before the next tick to a worker, with a short countdown."""
    now = svc.clock()
    settings = svc.settings
    timers = svc.store.claim_due(
        now=now,
        horizon=settings.tick_interval,
        lease=settings.lease_seconds,
        limit=settings.tick_batch,
    )
    for timer in timers:
        svc.dispatch(timer.request_id, timer.lease_token, max(0.0, timer.due_at - now))
    again = sum(timer.claims > 1 for timer in timers)
    if again:
        # Lost tasks, or a control queue longer than the lease: each of these timers now
        # waits twice as long before it is handed out again.
        log.warning("timers handed out again: their tasks had not come back within "
                    "the lease", timers=again, lease=settings.lease_seconds)  # fmt: skip
        metrics.timer_leases_expired(svc.redis, svc.keys, again)
    targets = list(svc.targets)
    quotas = {target.name: target.quota for target in targets}
    work = svc.store.survey(quotas, now=now, listing_lease=listing_lease(settings))
    for target in targets:
        todo = work[target.name]
        if todo.overdue:
            expire_backlog(svc, target.name)
        if todo.admit:
            moves.admit(svc, target.name)
        if todo.listing_due and _watches(svc, target):
            svc.dispatch_watch(target.name)
    return len(timers)


def _watches(svc: Services, target: Target) -> bool:
    """Whether the target's running jobs are watched by a listing (else they poll)."""
    return svc.settings.watch_by_list and target.backend.capabilities.watch_by_list
