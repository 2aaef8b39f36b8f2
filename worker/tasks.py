"""Celery tasks: thin wrappers that build the per-process services and call lifecycle."""

from __future__ import annotations

import os
from typing import Any

import redis
import structlog
from celery.exceptions import Reject
from celery.signals import task_postrun, task_prerun

from worker import janitor, lifecycle, replay
from worker.app import ADVANCE_TASK, JANITOR_TASK, SUBMIT_TASK, TICK_TASK, app
from worker.publishing import OutcomePublisher
from worker.services import Services, build_services
from worker.settings import get_settings

log = structlog.stdlib.get_logger("evalq.tasks")

_services: Services | None = None
_services_pid: int | None = None


def services() -> Services:
    """Services of this process; rebuilt after a fork (sockets must not be shared)."""
    global _services, _services_pid
    if _services is None or _services_pid != os.getpid():
        _services = build_services(
            get_settings(), publisher=OutcomePublisher(app), dispatch=_dispatch_advance
        )
        _services_pid = os.getpid()
    return _services


def _dispatch_advance(request_id: str, lease_token: float | None, countdown: float) -> None:
    advance.apply_async(
        args=[request_id],
        kwargs={"lease_token": lease_token},
        countdown=countdown if countdown > 0.001 else None,
    )


@app.task(name=SUBMIT_TASK)
def submit(request: Any) -> dict[str, Any]:
    """Intake (public contract v1): ``send_task("evals.submit", kwargs={"request": {...}})``.
    A call with other arguments never gets here: the consumer's guard dead-letters it
    (``bad_task_signature``) with the raw message."""
    svc = services()
    try:
        result = vars(lifecycle.accept(svc, request, task_name=SUBMIT_TASK))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Nothing was decided. Acked as a failed task, the request would be gone; back
        # on the queue it waits for the job store (the connection retried for a while).
        log.warning("job store unreachable; request back on the queue", error=str(exc))
        raise Reject(exc, requeue=True) from exc
    # A replay of a dead letter (worker.replay) is settled by what intake did with it.
    mark = replay.ReplayMark.from_header(getattr(submit.request, replay.REPLAY_HEADER, None))
    replay.settle_intake(
        svc.dead_letters,
        svc.store,
        mark,
        request_id=result.get("request_id"),
        outcome=result["outcome"],
        new_entry_id=result.get("dead_letter_id"),
    )
    return result


@app.task(name=ADVANCE_TASK)
def advance(request_id: str, lease_token: float | None = None) -> str:
    return lifecycle.advance(services(), request_id, lease_token)


@app.task(name=TICK_TASK)
def tick() -> int:
    return lifecycle.tick(services())


@app.task(name=JANITOR_TASK)
def janitor_sweep() -> dict[str, Any]:
    return janitor.sweep(services()).to_dict()


@app.task(name="evals.ping")
def ping() -> str:
    """Does nothing: a health check, and the no-op baseline of the intake benchmark."""
    return "pong"


@task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


@task_postrun.connect
def _clear_task_context(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
