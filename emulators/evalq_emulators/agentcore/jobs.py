"""Batch-evaluation jobs and their lifecycle, computed lazily from real time.

A job stores only when it was created (and when stop/delete were requested); its
status and progress at any instant follow from its immutable `JobPlan`, so no
background thread is needed and every reader sees a consistent picture.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from . import insights
from .config import EmulatorConfig
from .errors import field_validation_error
from .sources import TAG_SESSIONS, tag_number

ACTIVE_STATUSES = frozenset({"PENDING", "IN_PROGRESS", "STOPPING"})
RUNNING_STATUSES = frozenset({"PENDING", "IN_PROGRESS"})
TERMINAL_STATUSES = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED"})
OUTCOMES = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED")
# Every status a job can be reported in by /_emulator/stats and /_emulator/jobs.
REPORTED_STATUSES = ("PENDING", "IN_PROGRESS", "STOPPING", *OUTCOMES, "STOPPED", "DELETED")

TAG_DURATION = "emulator:duration"
TAG_OUTCOME = "emulator:outcome"
ACCOUNT_ID = "123456789012"


def _unit_hash(*parts: str) -> float:
    """Deterministic number in [0, 1) from strings (stable across processes, unlike hash())."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class JobPlan:
    """Everything about a job's future, fixed at creation; durations in real seconds."""

    sessions: int
    pending_real: float
    run_real: float
    stop_real: float
    outcome: str

    @property
    def failing_sessions(self) -> int:
        n = self.sessions
        if self.outcome == "COMPLETED_WITH_ERRORS":
            return max(1, n // 5) if n else 0
        if self.outcome == "FAILED":
            return n - n // 2
        return 0

    def failed_among_first(self, done: int) -> int:
        """How many of the first `done` finished sessions failed (spread evenly over time)."""
        n, f = self.sessions, self.failing_sessions
        if not n or not f:
            return 0
        if self.outcome == "FAILED":
            # The first half succeeds, then the job starts failing every session.
            return max(0, done - (n - f))
        return done * f // n


def build_plan(
    request: dict[str, Any], config: EmulatorConfig, sessions: int | None = None
) -> JobPlan:
    """Derive a job's plan from its request, its `emulator:*` tags and the config.

    ``sessions``: how many sessions the job evaluates (None: the tag's or the default,
    to check the tags before a job is made).
    """
    tags: dict[str, str] = request.get("tags") or {}
    if sessions is None:
        sessions = (
            tag_number(tags, TAG_SESSIONS, int) if TAG_SESSIONS in tags else config.default_sessions
        )
    if TAG_DURATION in tags:
        run_emulated = tag_number(tags, TAG_DURATION, float)
    else:
        # +-20% per job so concurrent jobs of one batch do not finish in lockstep.
        factor = 0.8 + 0.4 * _unit_hash(request["batchEvaluationName"])
        run_emulated = sessions * config.session_seconds * factor
    outcome = tags.get(TAG_OUTCOME, "COMPLETED")
    if outcome not in OUTCOMES:
        raise field_validation_error(
            [(f"tags.{TAG_OUTCOME}", f"Member must be one of {', '.join(OUTCOMES)}")]
        )
    return JobPlan(
        sessions=sessions,
        pending_real=config.real_seconds(config.pending_seconds),
        run_real=config.real_seconds(run_emulated),
        stop_real=config.real_seconds(config.stop_seconds),
        outcome=outcome,
    )


@dataclass(frozen=True)
class Snapshot:
    """A job as observed at one instant."""

    status: str
    updated_at: float
    started_at: float | None
    ended_at: float | None
    completed: int
    failed: int
    in_progress: int
    ignored: int


@dataclass
class Job:
    seq: int
    batch_evaluation_id: str
    arn: str
    name: str
    client_token: str | None
    # The Start parameters without clientToken: what idempotent replays are compared to.
    request: dict[str, Any]
    created_at: float
    plan: JobPlan
    start_output: dict[str, Any]
    #: The region the job was started in (the one its Start call was signed for).
    region: str = "us-east-1"
    #: Session ids the request names and, of those, the ones that existed at the start.
    sessions_named: list[str] | None = None
    sessions_found: list[str] | None = None
    #: What the harness was asked in each found session (for user-intent insights).
    prompts: dict[str, list[str]] = field(default_factory=dict)
    stop_requested_at: float | None = None
    deleted_at: float | None = None

    @property
    def pending_end(self) -> float:
        return self.created_at + self.plan.pending_real

    @property
    def run_end(self) -> float:
        return self.pending_end + self.plan.run_real

    def finished_by(self, t: float) -> int:
        """Sessions finished by real time `t`; they complete at evenly spaced instants."""
        n = self.plan.sessions
        if t < self.pending_end:
            return 0
        if t >= self.run_end or self.plan.run_real <= 0:
            return n
        return min(n, int((t - self.pending_end) * n / self.plan.run_real))

    def snapshot(self, now: float) -> Snapshot:
        n = self.plan.sessions
        stop = self.stop_requested_at
        if stop is not None:
            # Progress is frozen at the stop request; unfinished sessions end up ignored.
            done = self.finished_by(stop)
            failed = self.plan.failed_among_first(done)
            started = self.pending_end if stop >= self.pending_end else None
            stopped_at = stop + self.plan.stop_real
            if now < stopped_at:
                return Snapshot(
                    status="STOPPING",
                    updated_at=stop,
                    started_at=started,
                    ended_at=None,
                    completed=done - failed,
                    failed=failed,
                    in_progress=n - done,
                    ignored=0,
                )
            return Snapshot(
                status="STOPPED",
                updated_at=stopped_at,
                started_at=started,
                ended_at=stopped_at,
                completed=done - failed,
                failed=failed,
                in_progress=0,
                ignored=n - done,
            )
        if now < self.pending_end:
            return Snapshot(
                status="PENDING",
                updated_at=self.created_at,
                started_at=None,
                ended_at=None,
                completed=0,
                failed=0,
                in_progress=0,
                ignored=0,
            )
        if now < self.run_end:
            done = self.finished_by(now)
            failed = self.plan.failed_among_first(done)
            return Snapshot(
                status="IN_PROGRESS",
                # The last session completion counts as an update.
                updated_at=self.pending_end + (done * self.plan.run_real / n if n else 0.0),
                started_at=self.pending_end,
                ended_at=None,
                completed=done - failed,
                failed=failed,
                in_progress=n - done,
                ignored=0,
            )
        failed = self.plan.failed_among_first(n)
        return Snapshot(
            status=self.plan.outcome,
            updated_at=self.run_end,
            started_at=self.pending_end,
            ended_at=self.run_end,
            completed=n - failed,
            failed=failed,
            in_progress=0,
            ignored=0,
        )

    def status(self, now: float) -> str:
        if self.deleted_at is not None:
            return "DELETED"
        return self.snapshot(now).status

    # --- views -------------------------------------------------------------

    def _results(self, snap: Snapshot) -> dict[str, Any]:
        results: dict[str, Any] = {
            "numberOfSessionsCompleted": snap.completed,
            "numberOfSessionsInProgress": snap.in_progress,
            "numberOfSessionsFailed": snap.failed,
            "totalNumberOfSessions": self.plan.sessions,
            "numberOfSessionsIgnored": snap.ignored,
        }
        if snap.status in TERMINAL_STATUSES:
            results["evaluatorSummaries"] = [
                self._evaluator_summary(e["evaluatorId"], snap)
                for e in self.request.get("evaluators") or []
            ]
        return results

    def _evaluator_summary(self, evaluator_id: str, snap: Snapshot) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "evaluatorId": evaluator_id,
            "evaluationDimensionName": evaluator_id.rsplit(".", 1)[-1],
            "totalEvaluated": snap.completed,
            "totalFailed": snap.failed,
        }
        if snap.completed:
            # A plausible, stable score per (job, evaluator) in [0.55, 0.95].
            score = 0.55 + 0.4 * _unit_hash(self.name, evaluator_id)
            summary["statistics"] = {"averageScore": round(score, 4)}
        return summary

    def _error_details(self, snap: Snapshot) -> list[str] | None:
        if snap.status != "FAILED":
            return None
        return [
            f"Batch evaluation failed: {snap.failed} of {self.plan.sessions} sessions "
            "could not be evaluated (emulated failure)"
        ]

    def summary(self, now: float) -> dict[str, Any]:
        """A `BatchEvaluationSummary` as ListBatchEvaluations returns it."""
        snap = self.snapshot(now)
        return {
            "batchEvaluationId": self.batch_evaluation_id,
            "batchEvaluationArn": self.arn,
            "batchEvaluationName": self.name,
            "status": snap.status,
            "createdAt": self.created_at,
            "description": self.request.get("description"),
            "evaluators": self.request.get("evaluators"),
            "insights": self.request.get("insights"),
            "evaluationResults": self._results(snap),
            "errorDetails": self._error_details(snap),
            "kmsKeyArn": self.request.get("kmsKeyArn"),
            "updatedAt": snap.updated_at,
        }

    def details(self, now: float) -> dict[str, Any]:
        """The GetBatchEvaluation output: the summary, the request's configuration, and
        once the job completed, the results of its insights."""
        out = self.summary(now)
        out["dataSourceConfig"] = self.request.get("dataSourceConfig")
        out["outputConfig"] = self.start_output["outputConfig"]
        out["datasetExecutionDetails"] = _dataset_details(self.request)
        snap = self.snapshot(now)
        if snap.status in ("COMPLETED", "COMPLETED_WITH_ERRORS"):
            out.update(self._insights(snap.updated_at))
        return out

    def session_ids(self) -> list[str]:
        """The ids of the sessions evaluated: the named ones found, else emulated ones."""
        if self.sessions_found is not None:
            return self.sessions_found
        return [f"{self.name}-session-{i:04d}" for i in range(self.plan.sessions)]

    def _insights(self, ended_at: float) -> dict[str, Any]:
        return insights.results(
            [i["insightId"] for i in self.request.get("insights") or []],
            [e["evaluatorId"] for e in self.request.get("evaluators") or []],
            self.session_ids(),
            self.prompts,
            ended_at,
        )

    def control_view(self, now: float) -> dict[str, Any]:
        """The /_emulator/jobs entry: real epoch seconds for every lifecycle edge."""
        snap = self.snapshot(self.deleted_at if self.deleted_at is not None else now)
        return {
            "batchEvaluationId": self.batch_evaluation_id,
            "batchEvaluationName": self.name,
            "region": self.region,
            "clientToken": self.client_token,
            "status": self.status(now),
            "created_at": self.created_at,
            "started_at": snap.started_at,
            "ended_at": snap.ended_at,
            "stop_requested_at": self.stop_requested_at,
            "deleted_at": self.deleted_at,
            "tags": dict(self.request.get("tags") or {}),
            "evaluators": [e["evaluatorId"] for e in self.request.get("evaluators") or []],
            "sessions": self.plan.sessions,
            "sessions_named": self.sessions_named,
            "sessions_found": self.sessions_found,
            "test_scenario_ids": _scenario_ids(self.request),
        }


def _scenario_ids(request: dict[str, Any]) -> dict[str, str] | None:
    """sessionId -> testScenarioId of the request's sessionMetadata, if it carries any."""
    entries = (request.get("evaluationMetadata") or {}).get("sessionMetadata")
    if not entries:
        return None
    return {e["sessionId"]: e["testScenarioId"] for e in entries if e.get("testScenarioId")}


def _dataset_details(request: dict[str, Any]) -> dict[str, Any] | None:
    config = request.get("datasetExecutionConfig")
    if not config:
        return None
    dataset = config["dataset"]
    runtime = (config.get("agentInvocation") or {}).get("agentCoreRuntime")
    invocation: dict[str, Any] = {}
    if runtime:
        invocation["agentCoreRuntime"] = {
            "agentRuntimeEndpointArn": runtime["agentRuntimeEndpointArn"],
            "agentRuntimeVersion": "1",
            "requestTemplate": runtime.get("requestTemplate"),
        }
    return {
        "dataset": {
            "datasetId": dataset["datasetId"],
            "datasetVersion": dataset.get("datasetVersion", "DRAFT"),
        },
        "agentInvocation": invocation,
    }


def make_arn(region: str, batch_evaluation_id: str) -> str:
    return f"arn:aws:bedrock-agentcore:{region}:{ACCOUNT_ID}:batch-evaluation/{batch_evaluation_id}"
