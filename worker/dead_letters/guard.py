"""Messages that fail before a task body runs become dead letters; the worker goes on.

Celery drops (logs and acks or rejects) a message it cannot turn into a task call, and
some malformed bodies only fail later in the pool, where the message is acked as a failed
task. Both lose the message. ``IntakeGuard`` instead:

* dead-letters an item on the queue that is no kombu envelope at all, which the reliable
  transport (worker/broker.py) hands over as a substitute (``undecodable_message``);
* dead-letters a body over ``max_payload_bytes`` before anything parses it
  (``payload_too_large``);
* checks, before Celery builds a request, that the body is ``[args, kwargs, embed]`` and
  that the arguments fit the task's signature (``bad_task_signature``);
* turns Celery's hooks for undecodable bodies (``undecodable_message``), content types
  other than JSON (``unsupported_content_type``), unknown task names and other invalid
  messages (``bad_task_signature``) into dead letters.

Each keeps the raw body. The message is acknowledged only after its dead letter is
stored; when the store cannot be written, it goes back to the queue instead.
``worker.runtime.consumer`` plugs the guard into Celery's consumer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from celery.exceptions import InvalidTaskError
from celery.utils.log import get_logger
from kombu.exceptions import ContentDisallowed, DecodeError

from api_contracts import ReasonCode
from worker.dead_letters import replay
from worker.dead_letters.messages import UNREADABLE_HEADER, call_of, call_problem, raw_body_text
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.store import IntakeOutcome, JobStore

log = structlog.stdlib.get_logger("evalq.intake_guard")
_celery_logger = get_logger(__name__)

#: Raw bodies are kept up to this multiple of the size limit (an oversized one is cut).
KEEP_FACTOR = 4

Strategy = Callable[..., Any]


class IntakeGuard:
    """Dead-letters one message and acknowledges it (or requeues it if that fails)."""

    def __init__(
        self,
        dead_letters: DeadLetterStore,
        jobs: JobStore,
        *,
        max_payload_bytes: int,
        accept: frozenset[str] = frozenset({"application/json"}),
        clock: Callable[[], float] = time.time,
        connection_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.dead_letters = dead_letters
        self.jobs = jobs
        self.max_payload_bytes = max_payload_bytes
        self.accept = accept
        self.clock = clock
        self.connection_errors = connection_errors

    # -- checks -------------------------------------------------------------------------
    def unreadable(self, message: Any) -> bool:
        """Dead-letter the message if the broker found no usable envelope on its list (the
        transport then delivers the raw item as the body); True if it did."""
        why = _headers(message).get(UNREADABLE_HEADER)
        if why is None:
            return False
        queue = (message.delivery_info or {}).get("routing_key")
        self.dead_letter(
            message,
            ReasonCode.undecodable_message,
            f"the item on queue {queue!r} is not a kombu message envelope: {why}",
        )
        return True

    def too_large(self, message: Any) -> bool:
        """Dead-letter the message if its body is over the limit; True if it was."""
        size = len(message.body or b"")
        if size <= self.max_payload_bytes:
            return False
        self.dead_letter(
            message,
            ReasonCode.payload_too_large,
            f"message body of {size} bytes is over the limit of {self.max_payload_bytes} bytes",
        )
        return True

    def problem_with_call(self, task: Any, message: Any, body: Any) -> str | None:
        """Why the message cannot be a call of ``task`` (None if it can). Bodies that do not
        decode raise kombu's errors, which Celery hands to the consumer's hooks."""
        if body is None:
            content_type = message.content_type or "application/data"
            # kombu passes its "raw" content types through undecoded: not JSON either.
            if content_type not in self.accept:
                raise ContentDisallowed(f"refusing to deserialize content of {content_type!r}")
            if not message.body:
                raise DecodeError("the body is empty")
        payload = message.payload if body is None else body
        problem = call_problem(payload)
        if problem is not None:
            return problem
        headers = _headers(message)
        # Protocol 2 carries the task id in the headers, protocol 1 in the body.
        envelope = payload if "task" not in headers and isinstance(payload, dict) else headers
        if not isinstance(envelope.get("id"), str):
            return "the message has no task id"
        call = call_of(payload)
        signature = getattr(task, "__header__", None)
        if call is None or signature is None:
            return None
        args, kwargs = call
        try:
            signature(*args, **kwargs)
        except TypeError as exc:
            return f"{task.name}: {exc}"
        return None

    def screened(self, task: Any, strategy: Strategy) -> Strategy:
        """``strategy`` preceded by :meth:`problem_with_call` (Celery's strategies build the
        request, and a body that is not a call would only fail later in the pool)."""

        def screen_then_run(message: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
            problem = self.problem_with_call(task, message, body)
            if problem is not None:
                raise InvalidTaskError(problem)
            return strategy(message, body, *args, **kwargs)

        return screen_then_run

    # -- what Celery's consumer hooks hand over -----------------------------------------
    def decode_error(self, message: Any, exc: Exception) -> None:
        if isinstance(exc, ContentDisallowed):
            self.invalid_task(message, exc)
            return
        self.dead_letter(
            message,
            ReasonCode.undecodable_message,
            f"body of content type {message.content_type!r} could not be decoded: {exc}",
        )

    def unknown_message(self, message: Any) -> None:
        self.dead_letter(
            message,
            ReasonCode.undecodable_message,
            "not a Celery task message (no task name in its headers or body)",
        )

    def unknown_task(self, message: Any) -> None:
        self.dead_letter(
            message,
            ReasonCode.bad_task_signature,
            f"no task named {_headers(message).get('task')!r} is registered",
        )

    def invalid_task(self, message: Any, exc: Exception) -> None:
        if isinstance(exc, ContentDisallowed):
            self.dead_letter(
                message,
                ReasonCode.unsupported_content_type,
                f"content type {message.content_type!r} is not accepted (JSON only)",
            )
            return
        self.dead_letter(message, ReasonCode.bad_task_signature, f"invalid task: {exc}")

    # -- dead-lettering -----------------------------------------------------------------
    def dead_letter(self, message: Any, reason: ReasonCode, error: str) -> None:
        headers = _headers(message)
        task_name = headers.get("task")
        raw, cut = raw_body_text(message.body, keep_bytes=KEEP_FACTOR * self.max_payload_bytes)
        if cut:
            error += f" (body kept: the first {KEEP_FACTOR * self.max_payload_bytes} bytes)"
        try:
            letter = self.dead_letters.record(
                reason=reason,
                error=error,
                request=raw,
                request_id=None,
                now=self.clock(),
                task_name=task_name if isinstance(task_name, str) else None,
            )
            replay.settle(
                self.dead_letters,
                self.jobs,
                replay.ReplayMark.from_header(headers.get(replay.REPLAY_HEADER)),
                outcome=IntakeOutcome.REJECTED,
                request_id=None,
                new_entry_id=letter.dead_letter_id,
            )
        except Exception:
            # Not stored: the message must not be lost. Back on the queue it goes.
            log.exception("could not store a dead letter; message requeued", reason=reason.value)
            message.reject_log_error(_celery_logger, self.connection_errors, requeue=True)
            return
        log.warning(
            "message dead-lettered before any task ran",
            reason=reason.value,
            dead_letter_id=letter.dead_letter_id,
            task_name=letter.task_name,
        )
        message.ack_log_error(_celery_logger, self.connection_errors)


def _headers(message: Any) -> dict[str, Any]:
    headers = message.headers
    return headers if isinstance(headers, dict) else {}
