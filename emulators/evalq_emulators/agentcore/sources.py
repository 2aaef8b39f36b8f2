"""What a batch evaluation reads from its request besides its plan: the sessions it names
and how they are found, its ``timeRange``, where its results go (``outputConfig``), and
the ``emulator:*`` tags that steer them."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from .config import NAMED_SESSIONS, EmulatorConfig
from .errors import field_validation_error

TAG_SESSIONS = "emulator:sessions"
TAG_NAMED_SESSIONS = "emulator:named_sessions"
#: The span the emulated background traffic of an account's log groups covers: its
#: sessions are spread evenly over the day before a job starts (for ``timeRange``).
TRAFFIC_SECONDS = 24 * 3600.0
#: Where results go when the request names no log group (the service-managed default).
DEFAULT_RESULTS_PREFIX = "/aws/bedrock-agentcore/evaluations/results/"
DEFAULT_METRICS_NAMESPACE = "Bedrock-AgentCore/Evaluations"


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
    total = tag_number(tags, TAG_SESSIONS, int) if TAG_SESSIONS in tags else config.default_sessions
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


def tag_number(tags: dict[str, str], key: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(tags[key])
    except ValueError:
        value = -1
    if value < 0:
        raise field_validation_error([(f"tags.{key}", "Member must be a non-negative number")])
    return value
