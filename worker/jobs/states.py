"""The job state machine: the one table of every move a job can make.

Every write of a job's state, in Python or in Lua, names a :class:`Move` and goes through
this table: ``JobStore.transition`` checks it in Lua, and the job scripts
(``worker/jobs/scripts/*.lua``) get it rendered in (``worker.jobs.scripts``), so no Lua
source holds a state name. A test runs every script from every state and fails if one
moves a job along an edge that is not here.

::

    (new) --create--> QUEUED --admit--> ADMITTED --start--> RUNNING --finish--> FINISHED
                       |  ^                 |  ^               |                  |
                       |  +----requeue------+  |            stop (deadline)    publish
                       |  (account full)       |               v                  v
                       +--expire_queued--> FINISHED       STOPPING --finish--> PUBLISHED
    QUEUED | ADMITTED | PREPARING --cancel (no remote job yet)--> FINISHED
                                                                                  |
    any state but DELETED and DEAD --dead_letter--> DEAD                 delete  v
                                                                              DELETED
    QUEUED | ADMITTED | DEAD --adopt (the janitor found its remote job)--> RUNNING

A replay takes a dead job back to where it died (``REPLAY_MOVES``), so it resumes and
never spends a second remote run: one that died before its remote job existed goes to
the backlog (replay); one whose remote job runs, to RUNNING (resume: it polls, or stops
past its deadline); one that died publishing, to FINISHED (republish); one whose remote
delete failed, to PUBLISHED (retry_delete)::

    DEAD --replay--> QUEUED     DEAD --resume--> RUNNING     DEAD --republish--> FINISHED
    DEAD --retry_delete--> PUBLISHED

A request with scenarios runs its items before it enters the backlog
(docs/scenarios.md); an evaluator rollout is a record of its own kind that never does
(docs/evaluators.md)::

    (new) --prepare--> PREPARING --enqueue (sessions ready)--> QUEUED
                          |  --finish (every item failed, or the deadline)--> FINISHED
    DEAD --replay_scenarios--> PREPARING     (it died before its sessions were ready)

    (new) --roll_out--> DRAINING --update (UpdateEvaluator called)--> UPDATING
                           |                                              |
                           +--finish (deadline)--> FINISHED <--finish-----+ (ACTIVE or
    DEAD --replay_rollout--> DRAINING                                       UPDATE_FAILED)
    DEAD --resume_update--> UPDATING   (it died after UpdateEvaluator was called)

PREPARING, DRAINING and UPDATING may also be dead-lettered.

Self-moves write fields and timers without changing the state: ``poll`` (RUNNING,
STOPPING, UPDATING), ``cut_retention`` (PUBLISHED), ``disarm`` (a timer fired on a job
with no step).
"""

from __future__ import annotations

from collections.abc import Mapping
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
    PREPARING = "PREPARING"  #: runs its scenario items; not in the backlog yet
    #: A rollout: waits until no running job uses its evaluator (at once without drain).
    DRAINING = "DRAINING"
    UPDATING = "UPDATING"  #: a rollout: UpdateEvaluator was called; waits for ACTIVE


class Move(StrEnum):
    """A named transition. Its edges (from -> to) are in :data:`MOVES`."""

    CREATE = "create"  #: intake registers a new request
    REPLAY = "replay"  #: a dead-lettered request comes in again (it had no remote job)
    RESUME = "resume"  #: a dead job whose remote job runs comes in again: it polls
    REPUBLISH = "republish"  #: a job that died publishing its outcome comes in again
    RETRY_DELETE = "retry_delete"  #: a job whose remote delete failed comes in again
    ADMIT = "admit"  #: a free slot
    EXPIRE_QUEUED = "expire_queued"  #: its deadline passed in the backlog (outcome EXPIRED)
    #: its producer (or ops) cancelled it before it had a remote job (outcome CANCELLED)
    CANCEL = "cancel"
    REQUEUE = "requeue"  #: the account said it is full: back to the front of the backlog
    START = "start"  #: the remote job was started
    ADOPT = "adopt"  #: the janitor found the remote job of a record that never learned it
    POLL = "poll"  #: a poll saw it still running (or the janitor brings the poll forward)
    STOP = "stop"  #: past its deadline: a stop was requested
    #: The remote job ended (or an admitted job expired unstarted, a scenario run ended
    #: without a session to evaluate or at its deadline, a rollout's evaluator settled).
    FINISH = "finish"
    PUBLISH = "publish"  #: the outcome was published
    CUT_RETENTION = "cut_retention"  #: the account is nearly full: delete it early
    DELETE = "delete"  #: the remote job was deleted after its retention
    DEAD_LETTER = "dead_letter"  #: it cannot succeed
    DISARM = "disarm"  #: a timer fired on a job with no step to take: the timer goes
    PREPARE = "prepare"  #: intake registers a request with scenarios: its items run first
    ENQUEUE = "enqueue"  #: its sessions are ready: to the back of its producer's backlog
    REPLAY_SCENARIOS = "replay_scenarios"  #: a request that died running its items comes again
    ROLL_OUT = "roll_out"  #: intake registers an evaluator rollout
    UPDATE = "update"  #: the drain is over and UpdateEvaluator was called
    REPLAY_ROLLOUT = "replay_rollout"  #: a dead-lettered rollout comes in again
    #: a rollout that died after UpdateEvaluator was called comes in again: it reads
    RESUME_UPDATE = "resume_update"


_Q, _A, _R, _S = JobState.QUEUED, JobState.ADMITTED, JobState.RUNNING, JobState.STOPPING
_F, _P, _X, _D = JobState.FINISHED, JobState.PUBLISHED, JobState.DELETED, JobState.DEAD
_PR, _DR, _UP = JobState.PREPARING, JobState.DRAINING, JobState.UPDATING

#: The law: for each move, the state it leads to from each state it may start from.
#: ``None`` stands for "no record yet".
MOVES: Mapping[Move, Mapping[JobState | None, JobState]] = {
    Move.CREATE: {None: _Q},
    Move.REPLAY: {_D: _Q},
    Move.RESUME: {_D: _R},
    Move.REPUBLISH: {_D: _F},
    Move.RETRY_DELETE: {_D: _P},
    Move.ADMIT: {_Q: _A},
    Move.EXPIRE_QUEUED: {_Q: _F},
    Move.CANCEL: {_Q: _F, _A: _F, _PR: _F},
    Move.REQUEUE: {_A: _Q},
    Move.START: {_A: _R},
    Move.ADOPT: {_Q: _R, _A: _R, _D: _R},
    Move.POLL: {_R: _R, _S: _S, _UP: _UP},
    Move.STOP: {_R: _S},
    Move.FINISH: {_A: _F, _R: _F, _S: _F, _PR: _F, _DR: _F, _UP: _F},
    Move.PUBLISH: {_F: _P},
    Move.CUT_RETENTION: {_P: _P},
    Move.DELETE: {_P: _X},
    Move.DEAD_LETTER: {s: _D for s in (_Q, _A, _R, _S, _F, _P, _PR, _DR, _UP)},
    Move.DISARM: {_Q: _Q, _D: _D, _X: _X},
    Move.PREPARE: {None: _PR},
    Move.ENQUEUE: {_PR: _Q},
    Move.REPLAY_SCENARIOS: {_D: _PR},
    Move.ROLL_OUT: {None: _DR},
    Move.UPDATE: {_DR: _UP},
    Move.REPLAY_ROLLOUT: {_D: _DR},
    Move.RESUME_UPDATE: {_D: _UP},
}

#: The move a replay takes for a job that died in each state (its record's ``dead_from``):
#: back to where it was, never to a second remote run. A record from before ``dead_from``
#: existed replays by what it holds (``register.lua``).
REPLAY_MOVES: Mapping[JobState, Move] = {
    _Q: Move.REPLAY,
    _A: Move.REPLAY,  # no remote job yet; a start whose answer never came is looked up
    _R: Move.RESUME,
    _S: Move.RESUME,  # past its deadline: the poll asks for the stop again
    _F: Move.REPUBLISH,
    _P: Move.RETRY_DELETE,
    _PR: Move.REPLAY_SCENARIOS,
    _DR: Move.REPLAY_ROLLOUT,
    _UP: Move.RESUME_UPDATE,
}

#: Every edge of the table: state -> the states a job may go to from it.
ALLOWED_TRANSITIONS: Mapping[JobState | None, frozenset[JobState]] = {
    state: frozenset(edges[state] for edges in MOVES.values() if state in edges)
    for state in [None, *JobState]
}


def sources(move: Move) -> frozenset[JobState]:
    """The states ``move`` may start from."""
    return frozenset(s for s in MOVES[move] if s is not None)


# -- what follows from a state: Redis indexes kept by the moves themselves -----------------
#: States that hold one of the account's active-job slots (the ``active`` set).
SLOT_STATES = frozenset({_A, _R, _S})
#: States of a request waiting in the backlog (the deadline index).
BACKLOG_STATES = frozenset({_Q})
#: The outcome is out and the remote job is kept until its retention ends (the
#: record-retention index, and the index of remote jobs kept).
RETAINED_STATES = frozenset({_P})
#: The outcome is out: the record may be trimmed once its own retention ends.
TRIMMABLE_STATES = frozenset({_P, _X})
#: The remote job exists and has not ended.
REMOTE_LIVE_STATES = frozenset({_R, _S})
#: A request running its scenario items (they may be dispatched and claimed).
PREPARING_STATES = frozenset({_PR})
#: A dead-lettered job (the index the janitor forgets them by, with their dead letter).
DEAD_STATES = frozenset({_D})
#: A rollout whose evaluator is held from admission (the target's draining index), from
#: its registration until its outcome is known.
DRAINING_STATES = frozenset({_DR, _UP})
