"""The Celery messages job steps send (``Services.dispatch*``): evals.advance, evals.watch,
evals.run and evals.invoke, by name. The app is imported on first use, so commands that
never send (status, dlq list) start without it."""

from __future__ import annotations

from worker import task_names
from worker.jobs.watch import listing_lease
from worker.settings import get_settings


def dispatch_advance(request_id: str, lease_token: float | None, countdown: float) -> None:
    """Send ``evals.advance`` for a job, by name, with at most a short countdown."""
    from worker.runtime.app import app

    app.send_task(
        task_names.ADVANCE,
        args=[request_id],
        kwargs={"lease_token": lease_token},
        countdown=countdown if countdown > 0.001 else None,
    )


def dispatch_watch(target: str) -> None:
    """Send ``evals.watch`` for a target, on the timers queue (job steps do not delay it);
    one nobody ran within its lease is dropped (the next tick after the lease sends
    another)."""
    from worker.runtime.app import app

    settings = get_settings()
    app.send_task(task_names.WATCH, args=[target], queue=settings.timers_queue,
                  expires=listing_lease(settings))  # fmt: skip


def dispatch_sync(request_id: str) -> None:
    """Send ``evals.run`` for a job whose create runs its whole eval (Agno's)."""
    from worker.runtime.app import app

    app.send_task(task_names.RUN, args=[request_id], queue=get_settings().synchronous_queue)


def dispatch_invoke(request_id: str, index: int, attempt: int, countdown: float) -> None:
    """Send ``evals.invoke`` for one scenario item, on the synchronous queue (its stream
    holds a worker process while it lasts); the countdown is a rate limit's short wait."""
    from worker.runtime.app import app

    app.send_task(
        task_names.INVOKE,
        args=[request_id, index, attempt],
        queue=get_settings().synchronous_queue,
        countdown=countdown if countdown > 0.001 else None,
    )
