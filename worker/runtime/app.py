"""The Celery application: JSON only, late acks, prefetch 1, queues declared."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu.entity import Queue

from worker import task_names
from worker.observability.logs import configure_logging
from worker.runtime.publishing import PUBLISH_RETRY_POLICY
from worker.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery(
        "evalq",
        broker=settings.broker_url,
        include=["worker.runtime.tasks", "worker.runtime.dlq_tasks"],
    )
    app.conf.update(
        broker_transport=broker_transport(settings),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task is acknowledged after it ran, and redelivered if its process died.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[
            Queue(settings.requests_queue),
            Queue(settings.control_queue),
            Queue(settings.synchronous_queue),
        ],
        task_default_queue=settings.control_queue,
        task_routes={
            task_names.SUBMIT: {"queue": settings.requests_queue},
            task_names.EVALUATOR_UPDATE: {"queue": settings.requests_queue},
            task_names.RUN: {"queue": settings.synchronous_queue},
            task_names.INVOKE: {"queue": settings.synchronous_queue},
        },
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # Look for messages of dead workers every restore_interval seconds, not every
            # 100 s (kombu's default interval x throttle), since our timeout is short.
            "unacked_restore_interval": settings.restore_interval,
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": 60,
            "fetch_wait": settings.broker_fetch_wait,
        },
        broker_connection_retry_on_startup=True,
        # Dispatching a step must survive a broker restart of a few seconds.
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        # Messages that fail before a task body runs become dead letters, not log lines.
        worker_consumer="worker.runtime.consumer:GuardedConsumer",
        enable_utc=True,
        timezone="UTC",
        beat_schedule={
            "evalq-tick": {
                "task": task_names.TICK,
                "schedule": settings.tick_interval,
                # A tick nobody ran in time is worthless; the next one does its work.
                "options": {
                    "queue": settings.control_queue,
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
    return app


def broker_transport(settings: Settings) -> str | None:
    """kombu's Redis transport loses a message popped by a worker killed before it was
    recorded as unacknowledged; ours records it in the same step (worker/runtime/broker.py)."""
    scheme = settings.broker_url.partition("://")[0]
    if settings.broker_reliable_fetch and scheme in ("redis", "rediss"):
        return "worker.runtime.broker:ReliableRedisTransport"
    return None


def send_to_intake(request: Any, headers: dict[str, str] | None = None) -> None:
    """Send a request exactly as a producer does: by task name (a rollout's by its own,
    ``replay.intake_task``), on the requests queue."""
    from worker.dead_letters.replay import intake_task

    app.send_task(
        intake_task(request),
        kwargs={"request": request},
        queue=get_settings().requests_queue,
        headers=headers,
    )


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


app = create_app()
