"""The one place that moves a job and admits the next one.

A move that frees what admission waits on (a slot, or an evaluator a rollout drained)
says so in its result (:class:`~worker.jobs.store.Moved`, from the Lua move itself);
:func:`move` admits when it did, so no caller can forget to. A job that enters the
backlog (:func:`register`, :func:`enqueue`) is admitted here too, and the timer's tick
and the janitor's slot repair fill free slots through :func:`admit`. Nothing else in
``worker/`` calls the store's moves or its admission (``tests/unit/test_architecture.py``).

A requeue frees a slot but pauses admission (the account said it is full): it admits
nothing; the pause ends on the timer's tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api_contracts import EvaluationRequest, EvaluatorUpdateRequest
from worker.backends.base import RemoteJob
from worker.jobs.janitor_store import JanitorIndexes
from worker.jobs.record import Job
from worker.jobs.states import JobState, Move
from worker.jobs.store import Admission, JobRef, Moved, Registration
from worker.services import Services


def move(
    svc: Services,
    job: JobRef,
    move: Move,
    *,
    from_state: JobState | None = None,
    due_at: float | None = None,
    clear_due: bool = False,
    **values: Any,
) -> Moved:
    """Move the job (``JobStore.transition``); admit the next one if the move freed a slot."""
    moved = svc.store.transition(
        job, move, from_state=from_state, due_at=due_at, clear_due=clear_due, **values
    )
    if moved.freed:
        admit(svc, job.target)
    return moved


def admit(svc: Services, target: str) -> list[str]:
    """Fill the target's free slots from its backlog and hand each admitted job out."""
    configured = svc.targets.get(target)
    if configured is None:
        return []  # a target that left the configuration admits nothing
    return _hand_out(svc, svc.store.admit(target, now=svc.clock(), quota=configured.quota))


def register(
    svc: Services,
    request: EvaluationRequest,
    *,
    target: str,
    quota: int,
    remote_name: Callable[[str], str | None],
    backlog_cap: int | None,
    now: float,
    deadline_at: float,
    retention: float,
) -> Registration:
    """Register a request once (``move: create``, or ``prepare`` with scenarios) and fill
    the target's free slots in the same round trip."""
    registration, admission = svc.store.register(
        request,
        target=target,
        remote_name=remote_name,
        admit_quota=quota,
        backlog_cap=backlog_cap,
        now=now,
        deadline_at=deadline_at,
        retention=retention,
    )
    _hand_out(svc, admission)
    return registration


def register_rollout(
    svc: Services, request: EvaluatorUpdateRequest, *, target: str, now: float, deadline_at: float
) -> Registration:
    """Register an evaluator rollout once (``move: roll_out``): it takes no slot, so
    nothing is admitted."""
    return svc.store.register_rollout(request, target=target, now=now, deadline_at=deadline_at)


def enqueue(svc: Services, job: Job, *, now: float, **values: Any) -> bool:
    """A request whose scenario sessions are ready enters the backlog (``move: enqueue``)
    and may take a free slot at once; True if it moved."""
    if not svc.store.enqueue(job, now=now, **values):
        return False
    admit(svc, job.target)
    return True


def requeue(svc: Services, job: Job, *, now: float, pause_until: float) -> bool:
    """Back to the front of the backlog (``move: requeue``); admission pauses until
    ``pause_until``, so nothing is admitted now."""
    return svc.store.requeue(job, now=now, pause_until=pause_until)


def expire_queued(svc: Services, target: str, request_ids: list[str], *, now: float) -> list[str]:
    """Finish those of ``request_ids`` still queued past their deadline as EXPIRED
    (``move: expire_queued``; no slot is freed) and hand each to a worker to publish."""
    expired = svc.store.expire_queued(target, request_ids, now=now)
    for request_id in expired:
        svc.dispatch(request_id, None, 0.0)
    return expired


def repair_slots(
    svc: Services, indexes: JanitorIndexes, request_ids: list[str], *, now: float
) -> tuple[list[str], list[str]]:
    """The janitor's slot repair: (rearmed, released); a released slot admits."""
    rearmed, released = indexes.repair_slots(request_ids, now=now)
    if released:
        admit(svc, indexes.target)
    return rearmed, released


def adopt(
    svc: Services, indexes: JanitorIndexes, request_id: str, remote: RemoteJob, *, now: float
) -> bool:
    """The janitor found the remote job of a record that never learned it (``move:
    adopt``, to RUNNING): it frees no slot."""
    return indexes.adopt(request_id, remote, now=now)


def _hand_out(svc: Services, admission: Admission) -> list[str]:
    """Hand each admitted (or expired) job to a worker; returns the admitted ones."""
    for request_id in admission.admitted + admission.expired:
        svc.dispatch(request_id, None, 0.0)
    return admission.admitted
