"""Messages that fail before a task body runs become dead letters; the worker goes on.

Celery drops (logs and acks or rejects) a message it cannot turn into a task call, and
some malformed bodies only fail later in the pool, where the message is acked as a failed
task. Both lose the message. ``IntakeGuard`` instead:

* dead-letters an item on the queue that is no kombu envelope at all, which the reliable
  transport (worker/broker.py) hands over as a substitute (``undecodable_message``), or
  one too long to hold a message within the limits, refused before it was decoded
  (``payload_too_large``);
* runs only the tasks the queue a message came from may carry: a producer's queue runs
  the public task names only, anything else there is ``forbidden_task`` and runs nothing
  (the reliable fetch, worker/runtime/broker.py, names the list a Redis message came
  from; RabbitMQ's delivery names the routing key the broker matched);
* dead-letters a message whose headers are over ``max_header_bytes``, or whose body and
  headers together are over ``max_payload_bytes``, before anything parses its body
  (``payload_too_large``; headers count as the JSON they are);
* checks, before Celery builds a request, that the body is ``[args, kwargs, embed]`` and
  that the arguments fit the task's signature (``bad_task_signature``), and that neither
  body nor headers nest deeper than ``max_depth`` (``payload_too_deep``: Celery's pool
  pickles the decoded arguments, which raises RecursionError in the worker's main
  process from a few hundred levels on and stopped every worker that took the message);
* turns Celery's hooks for undecodable bodies (``undecodable_message``), content types
  other than JSON (``unsupported_content_type``), unknown task names and other invalid
  messages (``bad_task_signature``) into dead letters.

Each keeps the raw body, cut to ``max_payload_bytes`` with a marker; no header is kept
or logged whole. The message is acknowledged only after its dead letter is stored; when
the store cannot be written, it goes back to the queue instead.
``worker.runtime.consumer`` plugs the guard into Celery's consumer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from celery.exceptions import InvalidTaskError
from celery.utils.log import get_logger
from kombu.exceptions import ContentDisallowed, DecodeError

from api_contracts import ReasonCode
from worker.dead_letters import replay
from worker.dead_letters.messages import (
    OVERSIZED_HEADER,
    UNREADABLE_HEADER,
    call_of,
    call_problem,
    deeper_than,
    raw_body_text,
)
from worker.dead_letters.sizes import cut_text, json_size
from worker.dead_letters.store import DeadLetterStore, fingerprint_of

log = structlog.stdlib.get_logger("evalq.intake_guard")
_celery_logger = get_logger(__name__)

#: Default of the deepest nesting of lists and mappings a message may carry.
MAX_DEPTH = 64
#: Most bytes of a task or header name kept in a dead letter, its error and the log.
NAME_BYTES = 200

Strategy = Callable[..., Any]


class IntakeGuard:
    """Dead-letters one message and acknowledges it (or requeues it if that fails)."""

    def __init__(
        self,
        dead_letters: DeadLetterStore,
        *,
        max_payload_bytes: int,
        max_header_bytes: int = 16 * 1024,
        accept: frozenset[str] = frozenset({"application/json"}),
        clock: Callable[[], float] = time.time,
        connection_errors: tuple[type[BaseException], ...] = (),
        allowed_tasks: Mapping[str, frozenset[str]] | None = None,
        max_depth: int = MAX_DEPTH,
        replay_queue: str | None = None,
        public_queues: frozenset[str] = frozenset(),
        trusted_senders: frozenset[str] | None = None,
    ) -> None:
        self.dead_letters = dead_letters
        self.max_payload_bytes = max_payload_bytes
        self.max_header_bytes = max_header_bytes
        self.accept = accept
        self.clock = clock
        self.connection_errors = connection_errors
        #: Queue -> the task names it may carry (None: any task from any queue).
        self.allowed_tasks = allowed_tasks
        self.max_depth = max_depth
        #: The only queue whose messages may settle a replay (``replay.mark_of``).
        self.replay_queue = replay_queue
        #: Queues producers may write; on every other, where the broker vouches for a
        #: message's sender (RabbitMQ's ``user_id``), only these senders' messages run.
        self.public_queues = public_queues
        self.trusted_senders = trusted_senders

    # -- checks -------------------------------------------------------------------------
    def unreadable(self, message: Any) -> bool:
        """Dead-letter the message if the broker found no usable envelope on its list (the
        transport then delivers the raw item as the body); True if it did."""
        headers = _headers(message)
        why = headers.get(UNREADABLE_HEADER)
        if why is None:
            return False
        queue = (message.delivery_info or {}).get("routing_key")
        oversized = headers.get(OVERSIZED_HEADER)
        if isinstance(oversized, int | str) and str(oversized).isdigit():
            self.dead_letter(
                message,
                ReasonCode.payload_too_large,
                f"the item on queue {queue!r} was refused unread: {why}",
                total=int(oversized),
            )
            return True
        self.dead_letter(
            message,
            ReasonCode.undecodable_message,
            f"the item on queue {queue!r} is not a kombu message envelope: {why}",
        )
        return True

    def too_large(self, message: Any) -> bool:
        """Dead-letter the message if its headers are over their cap, or its body and
        headers together over the limit; True if it was."""
        limit, cap = self.max_payload_bytes, self.max_header_bytes
        header_bytes = self._header_bytes(message)
        if header_bytes > cap:
            error = f"message headers of {_bytes(header_bytes, limit)} are over the cap of {cap}"
            largest = ", ".join(_largest_headers(_headers(message), limit))
            self.dead_letter(message, ReasonCode.payload_too_large, f"{error} ({largest})")
            return True
        body_bytes = len(message.body or b"")
        if body_bytes + header_bytes <= limit:
            return False
        self.dead_letter(
            message,
            ReasonCode.payload_too_large,
            f"message of {body_bytes + header_bytes} bytes (body {body_bytes}, headers "
            f"{header_bytes}) is over the limit of {limit} bytes",
        )
        return True

    def forbidden(self, task_name: str, message: Any) -> str | None:
        """Why ``task_name`` may not run from the queue the message came from (None if it
        may)."""
        if self.allowed_tasks is None:
            return None
        queue = (message.delivery_info or {}).get("routing_key")
        allowed = self.allowed_tasks.get(queue) if isinstance(queue, str) else None
        if allowed is None or task_name not in allowed:
            may = ", ".join(sorted(allowed)) if allowed else "no task"
            return f"task {task_name!r} may not be sent to queue {queue!r} (it carries {may})"
        if self.trusted_senders is None or queue in self.public_queues:
            return None
        sender = (message.properties or {}).get("user_id")
        if sender in self.trusted_senders:
            return None
        return (f"task {task_name!r} on queue {queue!r} comes from broker user {sender!r}, "
                "not one of evalq's (EVALQ_INTERNAL_BROKER_USERS)")  # fmt: skip

    def too_deep(self, message: Any, payload: Any) -> str | None:
        """Why the decoded body or the headers nest too deep (None if they do not)."""
        for part, value in (("body", payload), ("headers", _headers(message))):
            if deeper_than(value, self.max_depth):
                return f"the message {part} nests lists and objects over {self.max_depth} deep"
        return None

    def problem_with_call(self, task: Any, message: Any, body: Any) -> str | None:
        """Why the message cannot be a call of ``task`` (None if it can). Bodies that do not
        decode raise kombu's errors, which Celery hands to the consumer's hooks; a body
        nested too deep raises :class:`TooDeep`."""
        if body is None:
            content_type = message.content_type or "application/data"
            # kombu passes its "raw" content types through undecoded: not JSON either.
            if content_type not in self.accept:
                raise ContentDisallowed(f"refusing to deserialize content of {content_type!r}")
            if not message.body:
                raise DecodeError("the body is empty")
        payload = message.payload if body is None else body
        deep = self.too_deep(message, payload)
        if deep is not None:
            raise TooDeep(deep)
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
            forbidden = self.forbidden(task.name, message)
            if forbidden is not None:
                self.dead_letter(message, ReasonCode.forbidden_task, forbidden)
                return None
            try:
                problem = self.problem_with_call(task, message, body)
            except TooDeep as exc:
                self.dead_letter(message, ReasonCode.payload_too_deep, str(exc))
                return None
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
            f"no task named {_cut_name(_headers(message).get('task'))!r} is registered",
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
    def dead_letter(
        self, message: Any, reason: ReasonCode, error: str, *, total: int | None = None
    ) -> None:
        """Store the message as a dead letter, then acknowledge it. ``total``: the size of
        the item the message's body is only the start of."""
        headers = _headers(message)
        task_name = _cut_name(headers.get("task"))
        queue = (message.delivery_info or {}).get("routing_key")
        # Headers over the cap are junk: only the task name's start is kept of them.
        mark = (
            headers.get(replay.REPLAY_HEADER)
            if self._header_bytes(message) <= self.max_header_bytes
            else None
        )
        raw = raw_body_text(message.body, keep_bytes=self.max_payload_bytes, total=total)
        try:
            letter = self.dead_letters.record(
                reason=reason,
                error=error,
                request=raw,
                request_id=None,
                now=self.clock(),
                task_name=task_name,
                # One entry per body, task and queue: the same arguments sent to two tasks
                # (purge and replay, say), or on two queues, are two failures.
                fingerprint=fingerprint_of(f"{task_name or ''}\n{queue}\n{raw}"),
            )
            replay.settle_rejected(
                self.dead_letters,
                replay.mark_of(mark, queue, replay_queue=self.replay_queue),
                letter.dead_letter_id,
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

    def _header_bytes(self, message: Any) -> int:
        """The headers' size as JSON (counted only until it is over the limit)."""
        return json_size(_headers(message), stop_above=self.max_payload_bytes)


class TooDeep(ValueError):
    """A message nests deeper than the guard's ``max_depth``."""


def _headers(message: Any) -> dict[str, Any]:
    headers = message.headers
    return headers if isinstance(headers, dict) else {}


def _cut_name(name: Any) -> str | None:
    """A task or header name as a dead letter keeps it: its start, if it is one."""
    return cut_text(name, NAME_BYTES) if isinstance(name, str) else None


def _bytes(size: int, counted_to: int) -> str:
    return f"{size} bytes" if size <= counted_to else f"more than {counted_to} bytes"


def _largest_headers(headers: dict[str, Any], counted_to: int, shown: int = 3) -> list[str]:
    """``'name': N bytes`` of the largest headers, largest first (names cut)."""
    sizes = {name: json_size(value, counted_to) for name, value in headers.items()}
    largest = sorted(sizes, key=sizes.__getitem__, reverse=True)[:shown]
    return [f"{_cut_name(str(name))!r}: {_bytes(sizes[name], counted_to)}" for name in largest]
