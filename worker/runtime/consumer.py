"""Celery's consumer with evalq's intake guard: every message that cannot become a task
is dead-lettered (``worker.dead_letters.guard``), never dropped. Set as ``worker_consumer``."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from celery.worker.consumer import Consumer
from kombu.serialization import prepare_accept_content

from worker.dead_letters.guard import IntakeGuard
from worker.runtime.app import allowed_tasks
from worker.runtime.connections import internal_senders
from worker.runtime.root import services


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, with every message that cannot become a task dead-lettered."""

    class Blueprint(Consumer.Blueprint):  # type: ignore[misc]
        # Without native delayed delivery: on quorum queues it declares 28 exchanges and
        # quorum queues for countdowns of seconds to years, and evalq sends none longer
        # than one tick (worker/jobs/admission.py), which a worker holds in memory.
        default_steps = [
            step for step in Consumer.Blueprint.default_steps if "DelayedDelivery" not in step
        ]

    @cached_property
    def guard(self) -> IntakeGuard:
        svc = services()
        return IntakeGuard(
            svc.dead_letters,
            max_payload_bytes=svc.settings.max_payload_bytes,
            max_header_bytes=svc.settings.max_header_bytes,
            accept=frozenset(prepare_accept_content(self.app.conf.accept_content)),
            connection_errors=tuple(self.connection_errors or ()),
            allowed_tasks=allowed_tasks(svc.settings),
            max_depth=svc.settings.max_payload_depth,
            replay_queue=svc.settings.control_queue,
            public_queues=frozenset({svc.settings.requests_queue}),
            trusted_senders=internal_senders(svc.settings),
        )

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            if self.guard.unreadable(message) or self.guard.too_large(message):
                return None
            return handle(message)

        return on_task_received

    def update_strategies(self) -> None:
        super().update_strategies()
        for name, strategy in list(self.strategies.items()):
            self.strategies[name] = self.guard.screened(self.app.tasks[name], strategy)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self.guard.decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.guard.unknown_message(message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.guard.unknown_task(message)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.guard.invalid_task(message, exc)
