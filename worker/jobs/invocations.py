"""``evals.invoke``: one InvokeHarness call of one scenario item, read to the end of its
stream (a short task on the synchronous queue: it holds a worker process only while the
stream lasts).

A session id is invoked at most once: the task claims its attempt atomically before the
call (``worker.jobs.items_store``), so a redelivered task, or a second one sent for the same
attempt, does not call again. While the stream runs, each event refreshes the call's
in-flight entry; a call that falls silent (its worker was killed) is found dead by the
request's step, whose next attempt runs under a new session id. How the call ended is
recorded only if its attempt is still the item's:

* the stream ended: the session will be evaluated;
* the stream broke, or no answer came (``StreamInterrupted``: the session may have been
  used): a new attempt after a backoff, within the item's retries;
* refused before the stream (throttled, a 5xx, a full quota, no connection: the session
  was not used): the same attempt again after a backoff that grows with every refusal
  (throttling spends no retry);
* refused for good (validation, access, an unknown harness): the item is left out.

Then the request's step is woken and the freed place goes to the target's next ready item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
import structlog

from api_contracts import EvaluationRequest
from worker.errors import BackPressure, PermanentError, RetryableError, StreamInterrupted
from worker.jobs.items_store import CallResult, Invocation, ScenarioItems
from worker.jobs.remote import remote_calls
from worker.jobs.scenarios import hand_out_invocations
from worker.jobs.states import JobState
from worker.observability.redaction import redact
from worker.services import Services
from worker.targets.registry import Target

if TYPE_CHECKING:
    from worker.backends.agentcore.harness import HarnessClient

log = structlog.stdlib.get_logger("evalq.invocations")

#: Most often a running call refreshes its in-flight entry (seconds).
HEARTBEAT_SECONDS = 1.0


@dataclass(frozen=True)
class Ending:
    result: CallResult
    error: str = ""
    stop_reason: str = ""
    delay: float = 0.0
    spends: bool = True


def invoke(svc: Services, request_id: str, index: int, attempt: int) -> str:
    """Make attempt ``attempt`` of item ``index`` of ``request_id``, if it is still to be
    made and nobody made it; returns what happened (for logs and tests)."""
    structlog.contextvars.bind_contextvars(request_id=request_id, index=index, attempt=attempt)
    call = Invocation(request_id, index, attempt)
    job = svc.store.get(request_id)
    target = svc.targets.get(job.target) if job is not None else None
    if job is None or target is None or job.state != JobState.PREPARING:
        return "gone"
    items = ScenarioItems(svc.store)
    state = items.state(request_id, index)
    if state.get("status") != "dispatched" or state.get("attempt") != attempt:
        return "taken"  # made (or moved on) already: no rate spent
    wait = target.rate_limits.acquire("invoke")
    if wait > 0:
        svc.dispatch_invoke(request_id, index, attempt, wait)
        return "rate_limited"
    from worker.backends.agentcore.client import session_id  # boto3 only where it runs

    session = session_id(request_id, index, attempt)
    failures = items.claim(call, job.target, session_id=session, now=svc.clock())
    if failures is None:
        return "taken"
    log.info("invoking the harness", session_id=session)
    ending = _call(svc, job.request, index, session, target, _heartbeat(svc, items, call, target))
    if ending.result in (CallResult.RETRY, CallResult.INTERRUPTED):
        # Throttling spends no retry but backs off all the same, by every refusal so far.
        ending = _with_backoff(svc, ending, max(failures, int(state.get("refusals", 0))))
    recorded = items.record(
        call,
        job.target,
        ending.result,
        now=svc.clock(),
        stop_reason=ending.stop_reason,
        error=ending.error,
        not_before=svc.clock() + ending.delay,
        spends=ending.spends,
        max_failures=svc.settings.scenario_item_retries,
    )
    log.info("invocation ended", session_id=session, result=ending.result.value,
             recorded=recorded, error=ending.error or None)  # fmt: skip
    svc.dispatch(request_id, None, 0.0)  # its step sees the end now, not at its timer
    hand_out_invocations(svc, job.target)
    return ending.result.value


def _call(
    svc: Services,
    raw_request: dict[str, object],
    index: int,
    session: str,
    target: Target,
    heartbeat: Callable[[], None],
) -> Ending:
    try:
        harness = _harness(target)
        run = EvaluationRequest.model_validate(raw_request).scenarios
        assert run is not None  # a PREPARING job has scenarios
        item = run.items[index]
        with remote_calls(svc, target).measure("invoke_harness"):
            answer = harness.invoke(
                run.harnessArn, session, item.harness_messages(), run.qualifier,
                on_event=heartbeat, overrides=run.harness_overrides_for(index),
            )  # fmt: skip
    except StreamInterrupted as exc:
        return Ending(CallResult.INTERRUPTED, str(exc))
    except RetryableError as exc:
        # Answered (or never sent) before the stream: the session was not used.
        return Ending(CallResult.RETRY, str(exc), spends=exc.spends_attempt,
                      delay=exc.retry_after or 0.0)  # fmt: skip
    except BackPressure as exc:
        # An account quota (402) refused it before the stream: the session was not used;
        # tried again after the quota backoff, within the item's retries (it was taken
        # for a bug in the stream, and its session given up).
        return Ending(CallResult.RETRY, str(exc), delay=svc.settings.quota_backoff)
    except PermanentError as exc:
        return Ending(CallResult.FAILED, f"{exc.reason.value}: {exc}")
    except redis.RedisError:
        raise  # the store is unreachable: the call's silence ends the attempt
    except Exception as exc:
        # A bug while the stream was read: the session may have been used.
        log.exception("unexpected error in an InvokeHarness call")
        return Ending(CallResult.INTERRUPTED, redact(f"{type(exc).__name__}: {exc}"))
    return Ending(CallResult.ENDED, stop_reason=answer.stop_reason)


def _with_backoff(svc: Services, ending: Ending, failures: int) -> Ending:
    settings = svc.settings
    step = min(settings.retry_max, settings.retry_initial * 2 ** min(failures, 32))
    delay = max(ending.delay, step / 2 + svc.rng.uniform(0, step / 2))
    return Ending(ending.result, ending.error, ending.stop_reason, delay, ending.spends)


def _harness(target: Target) -> HarnessClient:
    harness: HarnessClient | None = getattr(target.backend, "harness", None)
    if harness is None:
        raise PermanentError(
            f"target {target.name!r} runs no AgentCore harness: scenarios run only with "
            "backend agentcore"
        )
    return harness


def _heartbeat(
    svc: Services, items: ScenarioItems, call: Invocation, target: Target
) -> Callable[[], None]:
    """A sign of life on each event, at most every ``HEARTBEAT_SECONDS``."""
    last = [svc.clock()]

    def beat() -> None:
        now = svc.clock()
        if now - last[0] < HEARTBEAT_SECONDS:
            return
        last[0] = now
        try:
            items.alive(call, target.name, now)
        except redis.RedisError:
            log.warning("could not refresh the call's in-flight entry")

    return beat
