"""Celery tasks: thin wrappers that get this process's services and call the job domain."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task
from celery.signals import task_postrun, task_prerun

from worker import task_names
from worker.janitor import sweep
from worker.jobs import admission, advance, invocations, rollout_intake, watch
from worker.jobs.cancel import cancel as cancel_request
from worker.jobs.intake import accept
from worker.jobs.results import StepResult
from worker.jobs.start import after_busy_run, synchronous_step
from worker.observability import metrics
from worker.runtime import intake
from worker.runtime.app import app, synchronous_lease
from worker.runtime.replicas import wait_for_replicas
from worker.runtime.root import schedule_runner, services


@app.task(name=task_names.SUBMIT, bind=True)
def submit(self: Task, request: Any) -> dict[str, Any]:
    """Intake (public contract v1): ``send_task("evals.submit", kwargs={"request": {...}})``.
    A call with other arguments never gets here: the consumer's guard dead-letters it
    (``bad_task_signature``) with the raw message."""
    return intake.run(self, accept, request)


@app.task(name=task_names.EVALUATOR_UPDATE, bind=True)
def evaluator_update(self: Task, request: Any) -> dict[str, Any]:
    """Evaluator rollouts (public contract v1): ``send_task("evals.evaluator.update",
    kwargs={"request": {...}})``; validated, registered and dead-lettered like a submit."""
    return intake.run(self, rollout_intake.accept_rollout, request)


@app.task(name=task_names.CANCEL, bind=True)
def cancel(self: Task, request: Any) -> dict[str, Any]:
    """Cancel a request (public contract v1): ``send_task("evals.cancel", kwargs={"request":
    {"request_id", "producer", "reason"}})``; a producer cancels only its own."""
    return intake.run(self, cancel_request, request)


@app.task(name=task_names.INVOKE)
def invoke_item(request_id: str, index: int, attempt: int) -> str:
    """One InvokeHarness call of one scenario item (the synchronous queue)."""
    return invocations.invoke(services(), request_id, index, attempt)


@app.task(name=task_names.ADVANCE)
def advance_job(request_id: str, lease_token: float | None = None) -> str:
    return advance.advance(services(), request_id, lease_token).value


@app.task(name=task_names.RUN)
def run_synchronously(request_id: str) -> str:
    """A synchronous service's create (Agno runs the whole eval in it); the job's lock is
    held for as long as the call may take. A job found busy before any create is handed
    off again (``start.after_busy_run``)."""
    svc = services()
    lease = synchronous_lease(svc.settings)
    result = advance.advance(svc, request_id, step_of=synchronous_step, lease=lease)
    if result is StepResult.BUSY:
        after_busy_run(svc, request_id)
    return result.value


@app.task(name=task_names.TICK)
def tick() -> int:
    svc = services()
    handed_out = admission.tick(svc)
    metrics.tick_done(svc.redis, svc.keys, svc.clock())
    return handed_out


@app.task(name=task_names.SCHEDULES)
def run_schedules() -> dict[str, Any]:
    """Submit the slots of evalq's own schedules that came due, each once."""
    runner = schedule_runner()
    return {} if runner is None else runner.run().as_dict()


@app.task(name=task_names.WATCH)
def watch_target(target: str) -> int:
    return len(watch.watch(services(), target).ended or [])


@app.task(name=task_names.JANITOR)
def janitor_sweep() -> dict[str, Any]:
    svc = services()
    try:
        report = sweep.sweep(svc)
    except Exception:
        metrics.janitor_run(svc.redis, svc.keys, "failed")
        raise
    if report.skipped:
        metrics.janitor_run(svc.redis, svc.keys, "skipped")
    else:
        listed = report.remote_jobs_by_target()
        metrics.janitor_run(svc.redis, svc.keys, "ok", actions=report.counts(),
                            remote_jobs=listed, now=svc.clock())  # fmt: skip
    return report.to_dict()


@app.task(name=task_names.PING)
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


@task_postrun.connect
def _wait_for_replicas(**_: Any) -> None:
    # Runs in the pool process before the task's message is acknowledged.
    svc = services()
    wait_for_replicas(svc.settings, svc.redis)
