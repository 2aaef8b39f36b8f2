"""Publishing outcomes to the downstream queues with kombu.

An outcome is a plain JSON message (not a Celery task) so consumers in any language can
read it. Delivery is at least once: a crash between publishing and recording it publishes
again, with the same ``event_id`` for consumers to de-duplicate on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kombu.entity import Queue

from api_contracts import EvaluationOutcome, EvaluatorUpdateOutcome

#: Publishing (an outcome, or a task sent by a task) rides out a broker restart of a few
#: seconds; the Celery app uses the same policy for the tasks it sends.
PUBLISH_RETRY_POLICY = {
    "max_retries": 20,
    "interval_start": 0.1,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


class OutcomePublisher:
    def __init__(self, app: Any) -> None:
        #: The Celery app: its producer pool holds the broker connections.
        self.app = app

    def publish(
        self, outcome: EvaluationOutcome | EvaluatorUpdateOutcome, queues: Iterable[str]
    ) -> list[str]:
        body = outcome.model_dump(mode="json")
        sent: list[str] = []
        with self.app.producer_or_acquire() as producer:
            for name in dict.fromkeys(queues):
                producer.publish(
                    body,
                    serializer="json",
                    exchange="",
                    routing_key=name,
                    declare=[Queue(name)],
                    delivery_mode=2,
                    headers={
                        "event_id": outcome.event_id,
                        "schema_version": outcome.schema_version,
                    },
                    retry=True,
                    retry_policy=PUBLISH_RETRY_POLICY,
                )
                sent.append(name)
        return sent
