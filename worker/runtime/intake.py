"""The one wrapper of the intake tasks (``evals.submit``, ``evals.evaluator.update``,
``evals.cancel``), and the settling of the replays they carry.

Whatever intake raises, the request ends registered, dead-lettered, or back on the queue
(the job store out of reach or full, the task past its time limit): never acknowledged
with nothing done.

A replay (``worker.dead_letters.replay``) carries a mark, honoured only on a message
from the control queue; what intake did with the request settles it here, once:
accepted (created, requeued or already there), its entry leaves the store and the job
records one more replay; rejected again, the new entry's replay count is one more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
import structlog
from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded

from worker.dead_letters import replay
from worker.jobs import intake
from worker.jobs.cancel import CancelResult
from worker.jobs.intake import IntakeResult
from worker.jobs.services import Services
from worker.jobs.store import ACCEPTED, IntakeOutcome
from worker.runtime.root import services

log = structlog.stdlib.get_logger("evalq.tasks")

#: An intake call: ``intake.accept``, ``rollout_intake.accept_rollout`` or ``cancel``.
Accept = Callable[..., IntakeResult | CancelResult]

#: A request refused because the job store is full waits this long before it goes back
#: to the queue (a requeued message comes straight back to a free worker).
FULL_STORE_PAUSE_SECONDS = 1.0


def run(task: Task, accept: Accept, request: Any) -> dict[str, Any]:
    """Run one intake call for ``task`` and settle the replay its message carries."""
    svc = services()
    queue = (task.request.delivery_info or {}).get("routing_key")
    header = getattr(task.request, replay.REPLAY_HEADER, None)
    mark = replay.mark_of(header, queue, replay_queue=svc.settings.control_queue)
    user = svc.producers.vouched((task.request.properties or {}).get("user_id"))
    try:
        return take(svc, accept, request, mark=mark, broker_user=user).as_dict()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Nothing was decided. Acked as a failed task, the request would be gone; back
        # on the queue it waits for the job store (the connection retried for a while).
        log.warning("job store unreachable; request back on the queue", error=str(exc))
        raise Reject(exc, requeue=True) from exc
    except redis.exceptions.OutOfMemoryError as exc:
        # maxmemory reached under noeviction: each script either wrote all or nothing,
        # so the request waits on the queue until memory frees.
        log.warning("job store full; request back on the queue", error=str(exc))
        time.sleep(FULL_STORE_PAUSE_SECONDS)
        raise Reject(exc, requeue=True) from exc
    except SoftTimeLimitExceeded as exc:
        # Intake is idempotent: the request goes back on the queue, never away.
        log.warning("intake ran past its time limit; request back on the queue")
        raise Reject(exc, requeue=True) from exc
    except Exception as exc:
        # A bug, or input no check foresaw: the request becomes a dead letter that ops
        # can read and replay once it is fixed.
        log.exception("intake failed; request dead-lettered")
        result = intake.refuse_unexpected(svc, request, task.name, exc)
        settle(svc, mark, result)
        return result.as_dict()


def take(
    svc: Services,
    accept: Accept,
    raw: Any,
    *,
    mark: replay.ReplayMark | None = None,
    broker_user: str | None = None,
) -> IntakeResult | CancelResult:
    """One intake call (``broker_user``: who sent it, as the broker vouches), and the
    replay ``mark`` settled with what it did (a cancel is never a replay)."""
    result = accept(svc, raw, broker_user=broker_user)
    if isinstance(result, IntakeResult):
        settle(svc, mark, result)
    return result


def settle(svc: Services, mark: replay.ReplayMark | None, result: IntakeResult) -> None:
    """Settle the replay ``mark`` (if any) with what intake did with its message."""
    if mark is None:
        return
    if result.outcome in ACCEPTED and result.request_id is not None:
        _settle_accepted(svc, mark, result.request_id, result.outcome)
    elif result.dead_letter_id is not None:
        replay.settle_rejected(svc.dead_letters, mark, result.dead_letter_id)


def _settle_accepted(
    svc: Services, mark: replay.ReplayMark, request_id: str, outcome: IntakeOutcome
) -> None:
    """Intake accepted the replayed request: the entry leaves the store, if the mark still
    holds the token (exactly one delivery of the replay settles it)."""
    dead_letters = svc.dead_letters
    if not dead_letters.unmark_replaying(mark.dead_letter_id, mark.token):
        return
    letter = dead_letters.get(mark.dead_letter_id)
    dead_letters.remove(mark.dead_letter_id)
    if letter is None or outcome == IntakeOutcome.DUPLICATE:
        return
    job = svc.store.get(request_id)
    if job is not None:
        # A later failure of this job records the replays it went through.
        svc.store.update(request_id, replays=max(job.replays, letter.replay_count + 1))
