"""The ``Publisher`` of the worker's ``Services``: outcomes published with the Celery app's
producer pool (``worker.runtime.publishing``)."""

from __future__ import annotations

from collections.abc import Iterable

from api_contracts import EvaluationOutcome, EvaluatorUpdateOutcome
from worker.jobs.services import Published
from worker.settings import get_settings


class CeleryPublisher:
    """Publishes outcomes with the Celery app's producer pool; the app is imported on first
    use, so commands that never publish (status, dlq list) start without it."""

    def publish(
        self, outcome: EvaluationOutcome | EvaluatorUpdateOutcome, queues: Iterable[str]
    ) -> Published:
        from worker.runtime.app import app
        from worker.runtime.connections import queue_arguments
        from worker.runtime.publishing import OutcomePublisher

        settings = get_settings()
        sender = settings.broker_user if settings.broker_is_amqp else None
        publisher = OutcomePublisher(app, queue_arguments(settings), sender)
        return publisher.publish(outcome, queues)
