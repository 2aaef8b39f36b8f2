"""Publishing outcomes to the downstream queues with kombu.

An outcome is a plain JSON message (not a Celery task) so consumers in any language can
read it. Delivery is at least once: a crash between publishing and recording it publishes
again, with the same ``event_id`` for consumers to de-duplicate on.

Each queue is declared before the first publish to it, durable (and of the configured
type on RabbitMQ), so a consumer may bind before or after evalq publishes; on RabbitMQ
every publish waits for the broker's confirm (``connections.py``), so an outcome the
broker refused raises here and the publish step is retried.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
import structlog
from amqp.exceptions import MessageNacked
from kombu.entity import Queue
from kombu.exceptions import OperationalError

from api_contracts import EvaluationOutcome, EvaluatorUpdateOutcome
from worker.errors import QueueRefused, RetryableError
from worker.jobs.services import Published

log = structlog.stdlib.get_logger("evalq.publishing")

#: Publishing (an outcome, or a task sent by a task) rides out a broker restart of a few
#: seconds; the Celery app uses the same policy for the tasks it sends.
PUBLISH_RETRY_POLICY = {
    "max_retries": 20,
    "interval_start": 0.1,
    "interval_step": 0.5,
    "interval_max": 1.0,
}

#: AMQP reply code of a declaration that differs from the existing queue's.
_PRECONDITION_FAILED = 406


class OutcomePublisher:
    def __init__(
        self,
        app: Any,
        queue_arguments: dict[str, str] | None = None,
        sender: str | None = None,
    ) -> None:
        #: The Celery app: its producer pool holds the broker connections.
        self.app = app
        #: Arguments the queues are declared with (``{"x-queue-type": "quorum"}``).
        self.queue_arguments = queue_arguments
        #: RabbitMQ: evalq's user, stamped as ``user_id`` (the broker checks it), so a
        #: consumer can tell evalq's outcomes from anyone else's.
        self.sender = sender

    def publish(
        self, outcome: EvaluationOutcome | EvaluatorUpdateOutcome, queues: Iterable[str]
    ) -> Published:
        body = outcome.model_dump(mode="json")
        headers = {"event_id": outcome.event_id, "schema_version": outcome.schema_version}
        done = Published()
        with self.app.producer_or_acquire() as producer:
            for name in dict.fromkeys(queues):
                try:
                    self._publish(producer, body, headers, name)
                except (QueueRefused, RetryableError) as exc:
                    done.failed[name] = exc
                    continue
                done.sent.append(name)
        return done

    def _publish(self, producer: Any, body: Any, headers: dict[str, Any], name: str) -> None:
        try:
            self._declare_and_send(producer, body, headers, name)
        except redis.exceptions.ResponseError as exc:
            # Redis refused the write itself (WRONGTYPE: the name is a key of another type).
            raise QueueRefused(f"queue {name!r} refuses the outcome: {exc}") from exc
        except OperationalError as exc:
            # The publish step is tried again later, within the job's retry budget.
            if isinstance(exc.__cause__, MessageNacked):
                # RabbitMQ did not take it: a full queue that rejects publishes, an alarm.
                raise RetryableError(f"the broker refused the outcome for queue {name!r}") from exc
            raise RetryableError(f"the broker is unreachable: {exc}") from exc

    def _declare_and_send(
        self, producer: Any, body: Any, headers: dict[str, Any], name: str
    ) -> None:
        queue = Queue(name, queue_arguments=self.queue_arguments, durable=True)
        try:
            self._send(producer, body, headers, name, declare=[queue])
        except Exception as exc:
            if getattr(exc, "reply_code", None) != _PRECONDITION_FAILED:
                raise
            # The queue exists, declared otherwise by its consumer (another type, not
            # durable): it is still where the outcome goes. The refusal closed the channel,
            # which is the connection's default one: reconnect for a fresh one.
            log.info("queue declared otherwise by its consumer; used as it is", queue=name)
            producer.connection.close()
            producer.revive(producer.connection)
            self._send(producer, body, headers, name, declare=[])

    def _send(
        self, producer: Any, body: Any, headers: dict[str, Any], name: str, declare: list[Queue]
    ) -> None:
        stamp = {} if self.sender is None else {"user_id": self.sender}
        producer.publish(
            body,
            serializer="json",
            exchange="",
            routing_key=name,
            declare=declare,
            delivery_mode=2,
            headers=headers,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            **stamp,
        )
