"""Batch-evaluation jobs and their lifecycle, computed lazily from real time.

A job stores only when it was created (and when stop/delete were requested); its
status and progress at any instant follow from its immutable `JobPlan`, so no
background thread is needed and every reader sees a consistent picture.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import insights
from .config import NAMED_SESSIONS, EmulatorConfig
from .errors import field_validation_error

ACTIVE_STATUSES = frozenset({"PENDING", "IN_PROGRESS", "STOPPING"})
RUNNING_STATUSES = frozenset({"PENDING", "IN_PROGRESS"})
TERMINAL_STATUSES = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED"})
OUTCOMES = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED")
# Every status a job can be reported in by /_emulator/stats and /_emulator/jobs.
REPORTED_STATUSES = ("PENDING", "IN_PROGRESS", "STOPPING", *OUTCOMES, "STOPPED", "DELETED")

TAG_SESSIONS = "emulator:sessions"
TAG_DURATION = "emulator:duration"
TAG_OUTCOME = "emulator:outcome"
TAG_NAMED_SESSIONS = "emulator:named_sessions"
ACCOUNT_ID = "123456789012"
#: The span the emulated background traffic of an account's log groups covers: its
#: sessions are spread evenly over the day before a job starts (for ``timeRange``).
TRAFFIC_SECONDS = 24 * 3600.0
#: Where results go when the request names no log group (the service-managed default).
DEFAULT_RESULTS_PREFIX = "/aws/bedrock-agentcore/evaluations/results/"
DEFAULT_METRICS_NAMESPACE = "Bedrock-AgentCore/Evaluations"


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


def named_sessions(request: dict[str, Any]) -> list[str] | None:
    """The session ids a request's CloudWatch filter names (None: it names none)."""
    source = (request.get("dataSourceConfig") or {}).get("cloudWatchLogs") or {}
    filters = source.get("filterConfig") or {}
    named = list(filters.get("sessionIds") or [])
    named += [entry["sessionId"] for entry in filters.get("sessionTraceIds") or []]
    return list(dict.fromkeys(named)) or None


def named_mode(request: dict[str, Any], config: EmulatorConfig) -> str:
    """How named sessions are found: ``traces`` (a session the harness never ran is a
    trace of the producer's own agent) or ``harness`` (only sessions the harness ran)."""
    mode = str((request.get("tags") or {}).get(TAG_NAMED_SESSIONS, config.named_sessions))
    if mode not in NAMED_SESSIONS:
        raise field_validation_error(
            [(f"tags.{TAG_NAMED_SESSIONS}", f"Member must be one of {', '.join(NAMED_SESSIONS)}")]
        )
    return mode


def time_window(request: dict[str, Any]) -> tuple[float, float] | None:
    """The request's ``timeRange`` (either source's) as epoch seconds [start, end)."""
    source = request.get("dataSourceConfig") or {}
    logs = source.get("cloudWatchLogs") or {}
    span = (logs.get("filterConfig") or {}).get("timeRange") or (
        source.get("onlineEvaluationConfigSource") or {}
    ).get("timeRange")
    if not span:
        return None
    start, end = span.get("startTime"), span.get("endTime")
    return (
        -math.inf if start is None else _epoch(start),
        math.inf if end is None else _epoch(end),
    )


def _epoch(value: Any) -> float:
    """A wire timestamp (epoch seconds, or ISO 8601 from other clients) in seconds."""
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def background_sessions(request: dict[str, Any], config: EmulatorConfig, now: float) -> int:
    """Sessions of a request that names none: the log groups' traffic (the
    ``emulator:sessions`` tag, else ``default_sessions``), spread over the day before
    ``now``, within the request's ``timeRange`` if it has one."""
    tags: dict[str, str] = request.get("tags") or {}
    total = (
        _tag_number(tags, TAG_SESSIONS, int) if TAG_SESSIONS in tags else config.default_sessions
    )
    window = time_window(request)
    if window is None or total == 0:
        return int(total)
    step = TRAFFIC_SECONDS / total
    return sum(1 for i in range(total) if window[0] <= now - (i + 0.5) * step < window[1])


def output_config(request: dict[str, Any], batch_evaluation_id: str) -> dict[str, Any]:
    """Where the job's results are written, as the service reports it: the request's
    ``outputConfig`` with the defaults it left out (a dedicated, service-managed log
    group and the default metrics namespace)."""
    given = (request.get("outputConfig") or {}).get("cloudWatchConfig") or {}
    destination = given.get("resultDestination", "DEDICATED_LOG_GROUP")
    out = {
        "resultDestination": destination,
        "metricsNamespace": given.get("metricsNamespace", DEFAULT_METRICS_NAMESPACE),
    }
    if destination == "DEDICATED_LOG_GROUP":
        out["logGroupName"] = (
            given.get("logGroupName") or DEFAULT_RESULTS_PREFIX + batch_evaluation_id
        )
    if given.get("logStreamName"):
        out["logStreamName"] = given["logStreamName"]
    return {"cloudWatchConfig": out}


def check_output_config(request: dict[str, Any]) -> None:
    """What the model's documentation says the service refuses in ``outputConfig``."""
    given = (request.get("outputConfig") or {}).get("cloudWatchConfig") or {}
    group, namespace = given.get("logGroupName") or "", given.get("metricsNamespace") or ""
    errors = []
    if given.get("resultDestination") == "SOURCE_LOG_GROUP" and group:
        errors.append(("outputConfig.cloudWatchConfig.logGroupName",
                       "must not be set when resultDestination is SOURCE_LOG_GROUP"))  # fmt: skip
    if group.startswith("/aws/bedrock-agentcore/evaluations/"):
        errors.append(("outputConfig.cloudWatchConfig.logGroupName",
                       "must not be under the service-reserved namespace "
                       "/aws/bedrock-agentcore/evaluations/"))  # fmt: skip
    if namespace.startswith("AWS/"):
        errors.append(("outputConfig.cloudWatchConfig.metricsNamespace",
                       "must not begin with AWS/"))  # fmt: skip
    if errors:
        raise field_validation_error(errors)


def build_plan(
    request: dict[str, Any], config: EmulatorConfig, sessions: int | None = None
) -> JobPlan:
    """Derive a job's plan from its request, its `emulator:*` tags and the config.

    ``sessions``: how many sessions the job evaluates (None: the tag's or the default,
    to check the tags before a job is made).
    """
    tags: dict[str, str] = request.get("tags") or {}
    named_mode(request, config)
    if sessions is None:
        sessions = (
            _tag_number(tags, TAG_SESSIONS, int)
            if TAG_SESSIONS in tags
            else config.default_sessions
        )
    if TAG_DURATION in tags:
        run_emulated = _tag_number(tags, TAG_DURATION, float)
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


def _tag_number(tags: dict[str, str], key: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(tags[key])
    except ValueError:
        value = -1
    if value < 0:
        raise field_validation_error([(f"tags.{key}", "Member must be a non-negative number")])
    return value


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
