"""What one step of a job did (``evals.advance`` returns it; logs and tests read it)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.jobs.record import Job
    from worker.jobs.services import Services


class StepResult(StrEnum):
    STALE = "stale"  #: the timer was handled by someone else
    BUSY = "busy"  #: another task holds the job's lock
    MISSING = "missing"  #: no such job
    IDLE = "idle"  #: the job's state has no step; its timer was cleared
    RATE_LIMITED = "rate_limited"  #: the shared rate said wait; the timer says when
    STARTED = "started"
    HANDED_OFF = "handed_off"  #: a synchronous run went to its own queue
    POLLED = "polled"
    WATCHED = "watched"  #: the target's listing watches it: no poll of its own
    STOPPING = "stopping"
    RACED = "raced"  #: another delivery moved the job first
    PUBLISHED = "published"
    WAITING = "waiting"  #: not due yet (retention, or a create's answer still on its way)
    DELETE_REFUSED = "delete_refused"  #: the remote job still runs; tried again later
    DELETED = "deleted"
    RETRY = "retry"  #: a retryable error; tried again later
    REQUEUED = "requeued"  #: the account is full; back on the backlog
    DEAD = "dead"  #: dead-lettered
    RUNNING_ITEMS = "running_items"  #: scenario items are still to end
    INGESTING = "ingesting"  #: every item ended; the traces' ingestion delay runs
    ENQUEUED = "enqueued"  #: its sessions are ready: in the backlog
    DRAINING = "draining"  #: a rollout waits for running jobs that use its evaluator
    UPDATE_CALLED = "update_called"  #: UpdateEvaluator was called
    #: The account's quota refused a rollout's call: it waits on its own timer.
    QUOTA_FULL = "quota_full"


#: A step of a job: what a worker does with it in one state.
Step = Callable[["Services", "Job"], StepResult]
