"""Every Redis key evalq uses, in one place.

Keys hang off one prefix (``Settings.key_prefix``) so deployments can share a server and
tests can wipe exactly their own data. Two families:

* :class:`Keys`: what is global: job records and their locks, the timer, the listing
  index, dead letters, the janitor's lock;
* :class:`TargetKeys` (``Keys.target(name)``): what belongs to one target (one account):
  its slots, backlog, admission pause, rate windows, remote-name index and the indexes
  the janitor sweeps per account. The implicit target ``default`` keeps the names these
  keys had before targets existed, so an upgrade needs no data migration.

Lua scripts name their keys as the properties here are named (``worker.lua``), so a store
hands a script ``{**keys.fixed, **keys.target(name).fixed}`` and the script takes what it
names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

#: The target whose keys have no target segment (``worker.targets.config``).
DEFAULT_TARGET = "default"


def _properties(instance: Any) -> dict[str, str]:
    return {
        name: getattr(instance, name)
        for name, member in vars(type(instance)).items()
        if isinstance(member, property)
    }


@dataclass(frozen=True)
class TargetKeys:
    """The keys of one target; ``prefix`` is the target's own (``evalq:t:NAME``)."""

    prefix: str

    @cached_property
    def fixed(self) -> dict[str, str]:
        """Every key that takes no argument, by its property name."""
        return _properties(self)

    @property
    def active(self) -> str:
        """Set: request_ids holding one of the account's active-job slots."""
        return f"{self.prefix}:active"

    def backlog(self, producer: str, priority: int = 0) -> str:
        """List: request_ids of one producer at one priority waiting for a slot, oldest
        first."""
        return f"{self.backlog_prefix}{priority}:{producer}"

    @property
    def backlog_prefix(self) -> str:
        """What every backlog list's name starts with (admission appends the rest)."""
        return f"{self.prefix}:backlog:"

    def backlog_turns(self, priority: int | str) -> str:
        """Sorted set: producers with requests waiting at ``priority``, by the admission
        round in which each has its next turn (fair admission, docs/throughput.md).
        ``backlog_turns("")`` is the common prefix."""
        return f"{self.prefix}:backlog-turns:{priority}"

    @property
    def backlog_rounds(self) -> str:
        """Hash: priority -> the admission round of the last request admitted at it."""
        return f"{self.prefix}:backlog-rounds"

    @property
    def admission_paused_until(self) -> str:
        """String: epoch seconds before which no job is admitted (after a quota error)."""
        return f"{self.prefix}:admission-paused-until"

    @property
    def queued_by_deadline(self) -> str:
        """Sorted set: request_id of every QUEUED job by its deadline (backlog expiry)."""
        return f"{self.prefix}:queued-deadlines"

    @property
    def published_by_time(self) -> str:
        """Sorted set: request_id of published jobs by the time their record's retention
        starts counting (trimming local records)."""
        return f"{self.prefix}:published"

    @property
    def retained_by_time(self) -> str:
        """Sorted set: request_id of PUBLISHED jobs whose remote job still exists, by
        published time (early deletion when the account fills up)."""
        return f"{self.prefix}:retained"

    @property
    def remote_names(self) -> str:
        """Hash: remote job name -> request_id, so the janitor can match a remote job that
        no record knows (lost start answer, lost data) to its request in O(1)."""
        return f"{self.prefix}:remote-names"

    def rate_limit(self, operation: str) -> str:
        """List: times of the latest calls of one remote operation (the shared sliding
        window of ``worker.backends.ratelimit``)."""
        return f"{self.prefix}:rate:{operation}"

    @property
    def deletions(self) -> str:
        """Sorted set: request_ids of published jobs whose remote job the janitor deletes
        in bulk (services that delete many in one call), by when the deletion fell due."""
        return f"{self.prefix}:deletions"

    @property
    def watch_lock(self) -> str:
        """String: held while one task lists this target's jobs (``worker.jobs.watch``)."""
        return f"{self.prefix}:lock:watch"

    @property
    def watching(self) -> str:
        """String with a short expiry: a fresh listing watches the target's running jobs,
        so they skip their own polls (``worker.jobs.watch``)."""
        return f"{self.prefix}:watching"

    @property
    def remote_jobs(self) -> str:
        """String: how many jobs the account held at the last listing (watch mode)."""
        return f"{self.prefix}:remote-jobs"

    @property
    def invocations_ready(self) -> str:
        """Sorted set: scenario items ready to be invoked (``request_id|index|attempt``), by
        their index: every run's first item goes before any run's second (round-robin)."""
        return f"{self.prefix}:invocations-ready"

    @property
    def invocations(self) -> str:
        """Sorted set: InvokeHarness calls in flight (``request_id|index|attempt``), by
        their last sign of life (dispatch, claim, each event): at most the target's
        ``max_invocations``; a silent one is found dead (docs/scenarios.md)."""
        return f"{self.prefix}:invocations"

    @property
    def draining_evaluators(self) -> str:
        """Hash: evaluator id -> rollouts draining it (kept by the moves): admission passes
        over queued jobs that use one (docs/evaluators.md)."""
        return f"{self.prefix}:draining-evaluators"

    @property
    def held(self) -> str:
        """List: queued request_ids that admission passed over because they use a
        draining evaluator, in the order it met them; back to the front of their
        producers' backlogs once none of their evaluators drains."""
        return f"{self.prefix}:held"


@cache
def _target_keys(prefix: str, name: str) -> TargetKeys:
    if name == DEFAULT_TARGET:
        return TargetKeys(prefix)
    return TargetKeys(f"{prefix}:t:{name}")


@dataclass(frozen=True)
class Keys:
    prefix: str = "evalq"

    @cached_property
    def fixed(self) -> dict[str, str]:
        """Every key that takes no argument, by its property name."""
        return _properties(self)

    def target(self, name: str) -> TargetKeys:
        """The keys of target ``name`` (made once per name: hot paths ask often)."""
        return _target_keys(self.prefix, name)

    def job(self, request_id: str) -> str:
        """Hash: one job record per producer ``request_id``."""
        return f"{self.prefix}:job:{request_id}"

    def job_lock(self, request_id: str) -> str:
        """String: short lease held while one task advances a job."""
        return f"{self.prefix}:lock:job:{request_id}"

    def scenario_items(self, request_id: str) -> str:
        """Hash: index -> the JSON state of one scenario item of a request (attempt,
        status, session, end), while the request runs its items."""
        return f"{self.prefix}:items:{request_id}"

    @property
    def jobs_by_time(self) -> str:
        """Sorted set: request_id by acceptance time (listing, retention)."""
        return f"{self.prefix}:jobs"

    @property
    def due(self) -> str:
        """Sorted set: request_id by the epoch time its next step is due (the timer)."""
        return f"{self.prefix}:due"

    @property
    def watch_due(self) -> str:
        """Sorted set: target name -> when its listing is next due (the earliest projected
        end of its running jobs, at most ``watch_recheck_seconds`` away): a tick lists
        only the targets whose time has come (``worker.jobs.watch``)."""
        return f"{self.prefix}:watch-due"

    @property
    def stalled(self) -> str:
        """Sorted set: request_id of jobs whose timer fired without moving them, by how
        many times in a row (``Job.stalls``)."""
        return f"{self.prefix}:stalled"

    @property
    def dead_jobs(self) -> str:
        """Sorted set: request_id of DEAD job records by when they died (kept by the moves);
        the janitor forgets a record once its dead letter is gone."""
        return f"{self.prefix}:dead-jobs"

    @property
    def dead_letters(self) -> str:
        """Sorted set: dead_letter_id by last failure time."""
        return f"{self.prefix}:dead"

    def dead_letter(self, dead_letter_id: str) -> str:
        """String: one dead letter as JSON."""
        return f"{self.prefix}:dead:{dead_letter_id}"

    @property
    def dead_letter_labels(self) -> str:
        """Hash: dead_letter_id -> its metric labels ``reason|backend|target``, written with
        the entry and dropped with it, so the exporter never reads a whole entry."""
        return f"{self.prefix}:dead-labels"

    @property
    def dead_letters_replaying(self) -> str:
        """Hash: dead_letter_id -> token of the replay sent for it and not yet settled."""
        return f"{self.prefix}:dead-replaying"

    @property
    def janitor_lock(self) -> str:
        """String: held by the one janitor sweeping now (redis-py ``Lock``)."""
        return f"{self.prefix}:lock:janitor"

    # -- schedules (docs/schedules.md) ---------------------------------------------------
    def schedule(self, name: str) -> str:
        """Hash: one schedule's state: ``cursor`` (the start of the last slot handled,
        submitted or missed), ``since`` (when evalq first ran it), ``last_slot``,
        ``last_request_id``, ``last_job_id``, ``last_outcome`` (the last slot submitted)
        and ``pending_at`` (when the slots in ``schedule_pending`` were claimed)."""
        return f"{self.prefix}:schedule:{name}"

    def schedule_pending(self, name: str) -> str:
        """Hash: slot start -> the request JSON of each slot of a schedule claimed and not
        yet handed to intake (a run that died in between is taken over after a lease)."""
        return f"{self.prefix}:schedule-pending:{name}"

    @property
    def schedules(self) -> str:
        """Hash: name -> period (seconds) of every schedule of the file in force, written
        by each run (the exporter reads it; a refused entry's name maps to "")."""
        return f"{self.prefix}:schedules"

    @property
    def schedule_errors(self) -> str:
        """Hash: entry ("schedules[2] nightly", or "file") -> why the schedules file
        refused it, as the last run found it."""
        return f"{self.prefix}:schedule-errors"

    @property
    def metrics_schedule_slots(self) -> str:
        """Hash: the ``evalq_schedule_slots`` family, counted by the schedule scripts."""
        return self.metrics("evalq_schedule_slots")

    # -- observability ------------------------------------------------------------------
    def metrics(self, family: str) -> str:
        """Hash: one metric family's cluster-wide counters, label values -> count
        (``worker.observability.metrics``)."""
        return f"{self.prefix}:metrics:{family}"

    @property
    def metrics_requests(self) -> str:
        """Hash: the ``evalq_requests`` family, counted by the intake script."""
        return self.metrics("evalq_requests")

    @property
    def last_tick(self) -> str:
        """String: epoch seconds at which the last ``evals.tick`` ended."""
        return f"{self.prefix}:last-tick"

    @property
    def heartbeats(self) -> str:
        """Sorted set: "role:node" of every worker and beat by its last heartbeat."""
        return f"{self.prefix}:heartbeats"

    @property
    def janitor_state(self) -> str:
        """Hash: what the last janitor sweep saw (``remote_jobs:<target>``, ``finished_at``)."""
        return f"{self.prefix}:janitor-state"
