"""The Celery application: JSON only, late acks, durable queues declared, the broker
connection as ``connections.py`` makes it from the settings."""

from __future__ import annotations

import gc
import logging
from typing import Any

from celery import Celery
from celery.signals import before_task_publish, setup_logging, worker_before_create_process
from kombu.entity import Exchange, Queue

from worker import task_names
from worker.observability.logs import configure_logging
from worker.runtime.connections import broker_settings, queue_arguments
from worker.runtime.heartbeat import WorkerHeartbeat
from worker.runtime.publishing import PUBLISH_RETRY_POLICY
from worker.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker = broker_settings(settings)
    app = Celery(
        "evalq",
        broker=broker.pop("broker_url"),
        include=["worker.runtime.tasks", "worker.runtime.dlq_tasks"],
    )
    arguments = queue_arguments(settings)
    app.conf.update(
        **broker,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task is acknowledged after it ran, and redelivered if its process died.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Durable queues (kombu's default), of the configured type on RabbitMQ.
        task_queues=[
            # Each on its own direct exchange, as a producer's Celery declares it.
            Queue(name, Exchange(name), name, queue_arguments=arguments)
            for name in settings.worker_queues
        ],
        task_default_queue=settings.control_queue,
        task_routes={
            task_names.SUBMIT: {"queue": settings.requests_queue},
            task_names.EVALUATOR_UPDATE: {"queue": settings.requests_queue},
            task_names.CANCEL: {"queue": settings.requests_queue},
            task_names.RUN: {"queue": settings.synchronous_queue},
            task_names.INVOKE: {"queue": settings.synchronous_queue},
            task_names.TICK: {"queue": settings.timers_queue},
            task_names.WATCH: {"queue": settings.timers_queue},
            task_names.SCHEDULES: {"queue": settings.timers_queue},
        },
        broker_connection_retry_on_startup=True,
        # No remote control: anyone who can write to the broker could otherwise shut the
        # workers down or make them consume other queues (docs/security.md). Nothing in
        # evalq uses it; `evalq health` reads heartbeats.
        worker_enable_remote_control=False,
        # Dispatching a step must survive a broker restart of a few seconds.
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        # Task events, so Flower and celery-exporter see every task, not only workers.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        # Time limits (sized in worker/settings.py): a hung pool process is killed and
        # replaced at the hard limit, and its message goes back on the queue instead of
        # being acknowledged as failed (every task is idempotent).
        task_annotations=time_limits(settings),
        task_acks_on_timeout=False,
        beat_scheduler="worker.runtime.beat:HeartbeatScheduler",
        beat_max_loop_interval=settings.heartbeat_interval,
        # Messages that fail before a task body runs become dead letters, not log lines.
        worker_consumer="worker.runtime.consumer:GuardedConsumer",
        enable_utc=True,
        timezone="UTC",
        beat_schedule={
            **schedules_entry(settings),
            "evalq-tick": {
                "task": task_names.TICK,
                "schedule": settings.tick_interval,
                # A tick nobody ran in time is worthless; the next one does its work.
                "options": {
                    "queue": settings.timers_queue,
                    "expires": 10 * settings.tick_interval,
                },
            },
            "evalq-janitor": {
                "task": task_names.JANITOR,
                "schedule": settings.janitor_interval,
                # Sweeps are serialised by a lock; a late one is replaced by the next.
                "options": {"queue": settings.control_queue, "expires": settings.janitor_interval},
            },
        },
    )
    app.steps["consumer"].add(WorkerHeartbeat)
    return app


def schedules_entry(settings: Settings) -> dict[str, Any]:
    """Beat's entry for evalq's own schedules, when there is a schedules file."""
    if settings.schedules_file is None:
        return {}
    interval = settings.schedules_interval
    return {
        "evalq-schedules": {
            "task": task_names.SCHEDULES,
            "schedule": interval,
            # A late run is replaced by the next, which finds the same slots due.
            "options": {"queue": settings.timers_queue, "expires": max(10 * interval, 5.0)},
        }
    }


def synchronous_lease(settings: Settings) -> float:
    """How long ``evals.run`` holds its job's lock: past its hard time limit, so a copy of
    its message the broker redelivers meanwhile finds the job busy."""
    return settings.synchronous_run_timeout + settings.remote_task_time_limit + 1.0


def time_limits(settings: Settings) -> dict[str, dict[str, float]]:
    """Soft and hard time limits of every task, by name."""
    store = (settings.store_task_soft_time_limit, settings.store_task_time_limit)
    remote = (settings.remote_task_soft_time_limit, settings.remote_task_time_limit)
    listing = (settings.janitor_soft_time_limit, settings.janitor_time_limit)
    # A synchronous run (or a scenario item's InvokeHarness stream) holds its process for
    # the whole remote call, then writes its result.
    run = settings.synchronous_run_timeout
    synchronous = (run + remote[0], run + remote[1])
    by_task = {
        task_names.SUBMIT: store,
        task_names.EVALUATOR_UPDATE: store,
        task_names.CANCEL: store,
        task_names.TICK: store,
        task_names.SCHEDULES: store,
        task_names.PING: store,
        task_names.DLQ_PURGE: store,
        task_names.ADVANCE: remote,
        task_names.DLQ_REPLAY: remote,
        task_names.RUN: synchronous,
        task_names.INVOKE: synchronous,
        task_names.WATCH: listing,
        task_names.JANITOR: listing,
    }
    return {
        name: {"soft_time_limit": soft, "time_limit": hard}
        for name, (soft, hard) in by_task.items()
    }


def send_to_intake(request: Any, headers: dict[str, str] | None = None) -> None:
    """Send a request exactly as a producer does: by task name (a rollout's by its own,
    ``replay.intake_task``), on the requests queue."""
    _send_intake(request, headers, get_settings().requests_queue)


def send_replay(request: Any, headers: dict[str, str]) -> None:
    """Send a dead letter's request back to intake with its replay header, on the control
    queue: only there does intake honour the header (producers cannot write to it)."""
    _send_intake(request, headers, get_settings().control_queue)


def allowed_tasks(settings: Settings) -> dict[str, frozenset[str]]:
    """The task names each queue may carry (the consumer's guard refuses the rest)."""
    return {
        settings.requests_queue: task_names.PUBLIC,
        settings.control_queue: task_names.CONTROL,
        settings.timers_queue: task_names.TIMERS,
        settings.synchronous_queue: task_names.SYNCHRONOUS,
    }


def _send_intake(request: Any, headers: dict[str, str] | None, queue: str) -> None:
    from worker.dead_letters.replay import intake_task

    app.send_task(intake_task(request), kwargs={"request": request}, queue=queue,
                  headers=headers)  # fmt: skip


@before_task_publish.connect
def _stamp_sender(properties: dict[str, Any] | None = None, **_: Any) -> None:
    """On RabbitMQ every task evalq sends carries its user as ``user_id``, which the
    broker checks against the connection: the consumer's guard runs internal tasks only
    from messages that carry one of evalq's users (docs/security.md)."""
    settings = get_settings()
    if properties is not None and settings.broker_is_amqp:
        properties["user_id"] = settings.broker_user


@worker_before_create_process.connect
def _share_before_fork(**_: Any) -> None:
    """Before a pool process is forked: import the client libraries of the configured
    backends (every pool process needs them; imported here, their pages are shared), and
    move everything allocated so far out of the garbage collector's reach, so that it
    does not write to those pages in each child and the children keep sharing them.
    About 20 MB less PSS for a worker of two processes (tests/bench/backlog.py)."""
    from worker.backends.catalog import import_backends

    import_backends(get_settings())
    gc.freeze()


class _WithoutNativeDelayNotice(logging.Filter):
    """Celery warns, on every task sent with a countdown while quorum queues are in use,
    that direct exchanges get no native delayed delivery. evalq's countdowns are shorter
    than one tick and meant to be held by the worker (consumer.py): the notice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Direct exchanges are not supported with native")


logging.getLogger("celery.app.base").addFilter(_WithoutNativeDelayNotice())


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


app = create_app()
