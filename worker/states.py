"""The job state machine: local states, remote statuses, and which moves are allowed.

::

    QUEUED --admit--> ADMITTED --start--> RUNNING --terminal--> FINISHED --publish--> PUBLISHED
      |                  |  ^ (quota)        |                      ^                     |
      |                  |  +-- QUEUED       +--deadline--> STOPPING+                     v
      +--deadline--------+------------------------------------------+                  DELETED
    any non-final --permanent error--> DEAD --replay--> QUEUED
    QUEUED | ADMITTED | DEAD without a remote id --janitor adopts a remote job--> RUNNING
    PUBLISHED --janitor cuts the retention (account nearly full)--> PUBLISHED
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "QUEUED"  #: accepted, waiting in the backlog for a slot
    ADMITTED = "ADMITTED"  #: holds a slot; the remote start is not confirmed yet
    RUNNING = "RUNNING"  #: the remote job exists and is not terminal
    STOPPING = "STOPPING"  #: past its deadline; a stop was requested
    FINISHED = "FINISHED"  #: final status known; the outcome is not yet published
    PUBLISHED = "PUBLISHED"  #: outcome published; the remote job waits for retention
    DELETED = "DELETED"  #: remote job deleted after retention
    DEAD = "DEAD"  #: dead-lettered; ops may replay it


#: States that hold one of the account's active-job slots.
SLOT_STATES = frozenset({JobState.ADMITTED, JobState.RUNNING, JobState.STOPPING})

ALLOWED_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset(
        {JobState.ADMITTED, JobState.RUNNING, JobState.FINISHED, JobState.DEAD}
    ),
    JobState.ADMITTED: frozenset(
        {JobState.RUNNING, JobState.QUEUED, JobState.FINISHED, JobState.DEAD}
    ),
    JobState.RUNNING: frozenset(
        {JobState.RUNNING, JobState.STOPPING, JobState.FINISHED, JobState.DEAD}
    ),
    JobState.STOPPING: frozenset({JobState.STOPPING, JobState.FINISHED, JobState.DEAD}),
    JobState.FINISHED: frozenset({JobState.PUBLISHED}),
    JobState.PUBLISHED: frozenset({JobState.PUBLISHED, JobState.DELETED}),
    JobState.DELETED: frozenset(),
    JobState.DEAD: frozenset({JobState.QUEUED, JobState.RUNNING}),
}


def sources_of(new: JobState) -> frozenset[JobState]:
    """Every state from which ``new`` may be entered."""
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if new in targets)


class RemoteStatus(StrEnum):
    """BatchEvaluationStatus of the AgentCore service model."""

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    DELETING = "DELETING"


#: Remote statuses in which StopBatchEvaluation is accepted (elsewhere it answers 409).
RUNNING_STATES = frozenset({RemoteStatus.PENDING, RemoteStatus.IN_PROGRESS})
INTERMEDIATE_STATES = frozenset(
    {RemoteStatus.PENDING, RemoteStatus.IN_PROGRESS, RemoteStatus.STOPPING}
)
SUCCESS_STATES = frozenset({RemoteStatus.COMPLETED, RemoteStatus.COMPLETED_WITH_ERRORS})
FAILURE_STATES = frozenset({RemoteStatus.FAILED, RemoteStatus.STOPPED})
TERMINAL_STATES = SUCCESS_STATES | FAILURE_STATES


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATES
