"""The step of a request with scenarios while it runs its items (state PREPARING).

Registered with scenarios, a request does not enter the backlog yet: its items run first
(``worker.jobs.invocations``, one short task per InvokeHarness call on the synchronous
queue). Its step, on its timer and whenever a call ends, sweeps the items
(``worker.jobs.items_store``): it readies what may go, ends attempts that died, hands ready
items out within the target's ``max_invocations``, and sets the timer. Once every item
has ended or failed:

* none ended: the job finishes FAILED, with each item's reason;
* else, ``ingestion_delay_seconds`` after the last stream ended (on the timer; no worker
  waits), it enters its producer's backlog (``enqueue``) with the per-item results
  frozen in its record; its batch evaluation names exactly the ended sessions
  (``worker.backends.agentcore.batch.name_sessions``) and starts through the usual
  admission, exactly once.

At its deadline a request still running its items finishes EXPIRED.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog

from api_contracts import OutcomeStatus
from api_contracts.scenarios import DEFAULT_INGESTION_DELAY_SECONDS
from worker.jobs import moves
from worker.jobs.finish import finish
from worker.jobs.items_store import ScenarioItems, Sweep
from worker.jobs.record import Job
from worker.jobs.results import StepResult
from worker.services import Services
from worker.settings import Settings

log = structlog.stdlib.get_logger("evalq.scenarios")

#: Longest error text an outcome carries for a run whose items all failed.
_MAX_ERROR = 2000


def stale_after(settings: Settings) -> float:
    """How long a claimed call may stay silent before it counts as dead: a live call
    connects within the connect timeout and then hears an event at least every read
    timeout (else the client gives up itself), plus the settle margin."""
    return (
        settings.aws_connect_timeout + settings.harness_read_timeout + settings.create_settle_margin
    )


def run_items(svc: Services, job: Job) -> StepResult:
    """The step of a PREPARING job."""
    now = svc.clock()
    items = ScenarioItems(svc.store)
    if now >= job.deadline_at:
        return _end(svc, job, items, OutcomeStatus.EXPIRED, "deadline passed while the "
                    "scenario items ran; no batch evaluation was started")  # fmt: skip
    settings = svc.settings
    sweep = items.sweep(
        job,
        now=now,
        stale_after=stale_after(settings),
        resend_after=settings.lease_seconds,
        max_failures=settings.scenario_item_retries,
        ingestion_delay=_ingestion_delay(job),
    )
    for call in sweep.resend:
        svc.dispatch_invoke(call.request_id, call.index, call.attempt, 0.0)
    if sweep.open:
        hand_out_invocations(svc, job.target)
        return StepResult.RUNNING_ITEMS
    if sweep.ended == 0:
        return _end(svc, job, items, OutcomeStatus.FAILED, None)
    if now < sweep.last_end + _ingestion_delay(job):
        return StepResult.INGESTING  # the sweep set the timer to the end of the delay
    return _enqueue(svc, job, items, sweep)


def hand_out_invocations(svc: Services, target_name: str) -> int:
    """Send a task for each ready item of the target that may go now."""
    target = svc.targets.get(target_name)
    if target is None:
        return 0
    calls = ScenarioItems(svc.store).dispatch(
        target_name,
        now=svc.clock(),
        limit=target.max_invocations,
        stale_after=stale_after(svc.settings),
    )
    for call in calls:
        svc.dispatch_invoke(call.request_id, call.index, call.attempt, 0.0)
    return len(calls)


def _enqueue(svc: Services, job: Job, items: ScenarioItems, sweep: Sweep) -> StepResult:
    results = item_results(job, items.states(job.request_id))
    if not moves.enqueue(svc, job, now=svc.clock(), scenarios=results):
        return StepResult.RACED
    items.forget(job.request_id)
    log.info("scenario sessions ready; request in the backlog",
             ended=sweep.ended, failed=sweep.failed)  # fmt: skip
    return StepResult.ENQUEUED


def _end(
    svc: Services, job: Job, items: ScenarioItems, status: OutcomeStatus, error: str | None
) -> StepResult:
    """Finish without a batch evaluation (every item failed, or the deadline came)."""
    results = item_results(job, items.states(job.request_id), unfinished="not finished "
                           "by the deadline")  # fmt: skip
    if error is None:
        error = _all_failed(results)
    step = finish(svc, job, status, None, error=error, scenarios=results)
    items.forget(job.request_id)
    return step


def item_results(
    job: Job, states: dict[int, dict[str, Any]], unfinished: str = "not finished"
) -> list[dict[str, Any]]:
    """The outcome's ``scenarios``: per item, ``{index, scenario_id, session_id,
    stop_reason, attempts, error}``; an item that did not end says why."""
    specs = (job.request.get("scenarios") or {}).get("items") or []
    results = []
    for index in range(job.scenario_items):
        state = states.get(index, {})
        status = state.get("status")
        ended = status == "ended"
        error = None
        if status == "failed":
            error = state.get("error") or "failed"
        elif not ended:
            last = state.get("error")
            error = f"{unfinished} (last error: {last})" if last else unfinished
        spec = specs[index] if index < len(specs) else {}
        results.append(
            {
                "index": index,
                "scenario_id": spec.get("scenario_id"),
                "session_id": state.get("session_id"),
                "stop_reason": state.get("stop_reason") if ended else None,
                "attempts": int(state.get("sessions", 0)),
                "error": error,
            }
        )
    return results


def _all_failed(results: list[dict[str, Any]]) -> str:
    by_error: dict[str, list[int]] = defaultdict(list)
    for result in results:
        by_error[str(result["error"])].append(result["index"])
    parts = [
        f"items {', '.join(map(str, indexes))}: {error}" for error, indexes in by_error.items()
    ]
    text = f"every scenario item failed ({len(results)}); " + "; ".join(parts)
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 3] + "..."


def _ingestion_delay(job: Job) -> float:
    scenarios = job.request.get("scenarios") or {}
    return float(scenarios.get("ingestion_delay_seconds", DEFAULT_INGESTION_DELAY_SECONDS))
