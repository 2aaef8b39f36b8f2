"""The job record: one Redis hash per request, and its typed view."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from worker.backends.base import SessionCounts
from worker.jobs.states import JobState
from worker.keys import DEFAULT_TARGET


@dataclass
class Progress:
    """A remote job's session counts (``RemoteJob.counts``) when they were seen."""

    completed: int = 0
    total: int = 0
    failed: int = 0
    observed_at: float = 0.0
    #: When the remote says the counts last changed (its ``updatedAt``), if it says so.
    changed_at: float | None = None

    @property
    def done(self) -> int:
        return self.completed + self.failed

    @classmethod
    def from_counts(cls, counts: SessionCounts | None, observed_at: float) -> Progress | None:
        if counts is None:
            return None
        return cls(counts.completed, counts.total, counts.failed, observed_at)


_JSON_FIELDS = {
    "request",
    "result",
    "progress_first",
    "progress_last",
    "remote_scope",
    "scenarios",
    "published_to",
    "reply_failures",
    "listed_result",
}
_FLOAT_FIELDS = {
    "accepted_at",
    "deadline_at",
    "admitted_at",
    "started_at",
    "finished_at",
    "published_at",
    "deleted_at",
    "updated_at",
    "first_error_at",
    "retention_seconds",
    "remote_ended_at",
    "create_intent_at",
    "create_timeout",
    "prepared_at",
    "update_called_at",
    "active_at",
    "cancel_requested_at",
}
_INT_FIELDS = {
    "priority", "polls", "attempts", "replays", "creates", "scenario_items", "stalls",
    "quota_waits", "claims",
}  # fmt: skip

#: ``Job.kind`` of an evaluator rollout (``worker.jobs.rollouts``); evaluation requests
#: have none.
ROLLOUT = "rollout"


@dataclass
class Job:
    request_id: str
    state: JobState
    request: dict[str, Any]
    payload_hash: str
    producer: str
    backend: str
    accepted_at: float
    deadline_at: float
    retention_seconds: float
    priority: int = 0
    #: The target (account) it runs in; records from before targets existed ran in the
    #: implicit one.
    target: str = DEFAULT_TARGET
    admitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    #: When evalq first saw the remote job terminal (for the end-to-outcome delay).
    remote_ended_at: float | None = None
    published_at: float | None = None
    deleted_at: float | None = None
    updated_at: float | None = None
    batch_evaluation_id: str | None = None
    batch_evaluation_arn: str | None = None
    batch_evaluation_name: str | None = None
    #: The name the remote job gets (given by the producer or derived); indexed.
    remote_name: str | None = None
    remote_status: str | None = None
    #: Where the remote job lives besides its id (``worker.backends.base.Scope``).
    remote_scope: dict[str, Any] | None = None
    #: A create sent to a service without an idempotency key whose answer has not come
    #: (when it was sent, and how long it may take): before any other create, the run is
    #: looked up by name (``worker.jobs.steps``).
    create_intent_at: float | None = None
    create_timeout: float | None = None
    #: Creates sent for this job (services without an idempotency key).
    creates: int = 0
    outcome_status: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    progress_first: dict[str, Any] | None = None
    progress_last: dict[str, Any] | None = None
    polls: int = 0
    attempts: int = 0
    first_error_at: float | None = None
    last_error: str | None = None
    replays: int = 0
    #: Timer firings in a row whose step moved nothing (a retry, a refused delete): a job
    #: with many is listed as stalled (``Keys.stalled``, ``evalq jobs --stalled``).
    stalls: int = 0
    #: Times a tick handed out its timer since a step last set it: each hand-out past the
    #: first doubles the timer's lease (``claim_due.lua``).
    claims: int = 0
    #: The state it was dead-lettered in (a replay takes it back there) and its entry.
    dead_from: str | None = None
    dead_letter_id: str | None = None
    #: The queues its outcome went to so far, and reply queues that refused it:
    #: ``{queue: {"failures": n, "error": text, "dropped": bool}}``.
    published_to: list[str] | None = None
    reply_failures: dict[str, Any] | None = None
    #: A cancel was asked for (``evals.cancel``, ``evalq jobs stop``): its steps stop the
    #: remote job (or never start it), and the outcome is CANCELLED with this reason.
    cancel_requested_at: float | None = None
    cancel_reason: str | None = None
    #: "1" when the listing that sees the remote job end holds its whole outcome (no
    #: insights asked for, no dataset run): it finishes without a GetBatchEvaluation.
    listing_outcome: str | None = None
    #: That listing's summary of the ended job, the outcome's ``result``.
    listed_result: dict[str, Any] | None = None
    #: ``rollout`` for an evaluator rollout (docs/evaluators.md); unset for a request.
    kind: str | None = None
    #: The evaluators the request's batch uses, comma-separated: admission holds the job
    #: while a rollout drains one of them.
    evaluators: str | None = None
    #: How many scenario items the request runs before it enters the backlog (0: none).
    scenario_items: int = 0
    #: When its sessions were ready and it entered the backlog.
    prepared_at: float | None = None
    #: Per scenario item: ``{index, scenario_id, session_id, stop_reason, attempts,
    #: error}`` (the outcome's ``scenarios``; the ended ones are evaluated).
    scenarios: list[dict[str, Any]] | None = None
    #: A rollout: the evaluator it updates, the one it drains (when ``drain``), when
    #: UpdateEvaluator was called and when GetEvaluator was first seen ACTIVE after it.
    evaluator_id: str | None = None
    drain_evaluator: str | None = None
    update_called_at: float | None = None
    #: UpdateEvaluator's ``updatedAt`` (the service's clock, ISO 8601): a GetEvaluator
    #: saying ACTIVE with an older one was read before the update took (``rollouts``).
    update_answered_updated_at: str | None = None
    active_at: float | None = None
    #: A rollout: how often the account's quota refused its call (it gives up past
    #: ``rollout_quota_max_waits``).
    quota_waits: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_rollout(self) -> bool:
        return self.kind == ROLLOUT

    @property
    def producer_request_id(self) -> str:
        """The request_id as its producer sent it (the job id may be scoped by producer:
        ``producer/request_id``, where another producer's record holds the id)."""
        given = self.request.get("request_id")
        return given if isinstance(given, str) else self.request_id

    @property
    def reply_to(self) -> list[str]:
        return list(self.request.get("reply_to") or [])

    @property
    def correlation(self) -> dict[str, str]:
        return dict(self.request.get("correlation") or {})

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Job:
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        for name, text in raw.items():
            if name not in known:
                continue
            if name in _JSON_FIELDS:
                values[name] = json.loads(text) if text else None
            elif name in _FLOAT_FIELDS:
                values[name] = float(text) if text else None
            elif name in _INT_FIELDS:
                values[name] = int(text or 0)
            else:
                values[name] = text or None
        values["state"] = JobState(values["state"])
        return cls(**values)


def encode_fields(values: dict[str, Any]) -> list[str]:
    """Flatten ``{name: value}`` into the ``[name, text, ...]`` list a hash write takes."""
    flat: list[str] = []
    for name, value in values.items():
        if name in _JSON_FIELDS:
            text = "" if value is None else json.dumps(value, separators=(",", ":"))
        elif value is None:
            text = ""
        else:
            text = str(value)
        flat += [name, text]
    return flat
