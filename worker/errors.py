"""One error hierarchy: it decides what happens to every failure.

* ``RetryableError``: transient (throttling, 5xx, connection errors, timeouts). Retried
  with backoff inside the retry budget; past it the job becomes a dead letter
  ``retries_exhausted``. ``Throttled`` does not spend an attempt, but backs off as much
  (by the job's firings in a row that moved nothing) and counts against the budget's
  time; no retry comes sooner than the ``retry_after`` the service asked for.
* ``BackPressure``: the account is full. The job goes back to the backlog, never to the
  dead letters.
* ``PermanentError``: retrying cannot help. Dead-lettered at once with ``reason``.

``StreamInterrupted`` (retryable) and ``EvaluatorLocked`` (permanent) are the AgentCore
harness and evaluator failures the job flow treats specially.
"""

from __future__ import annotations

from api_contracts import ReasonCode


class EvalqError(Exception):
    """Base of every error evalq raises on purpose."""


class RetryableError(EvalqError):
    """Transient failure: try again later (no sooner than ``retry_after`` seconds, when
    the service said how long to wait)."""

    #: False for throttling: being told to slow down is not a failed attempt.
    spends_attempt: bool = True

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Throttled(RetryableError):
    spends_attempt = False


class BackPressure(EvalqError):
    """The remote account quota of active jobs is full."""


class PermanentError(EvalqError):
    """Retrying cannot help; the job becomes a dead letter with ``reason``."""

    reason: ReasonCode = ReasonCode.internal_error

    def __init__(self, message: str, reason: ReasonCode | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class RemoteRejected(PermanentError):
    """The remote service refused the call (validation, access, conflict)."""


class RemoteConflict(RemoteRejected):
    """409: the remote job is not in a state that allows the call (stop, delete)."""

    reason = ReasonCode.remote_conflict


class QueueRefused(PermanentError):
    """The broker refuses messages on a queue for good (on Redis, a key of another type;
    on RabbitMQ, a queue it will not route to): publishing again cannot help."""

    reason = ReasonCode.publish_refused


class RemoteJobNotFound(EvalqError):
    """The remote job does not exist (deleted, or never existed under that id)."""


class StreamInterrupted(RetryableError):
    """A response stream ended before its last event (connection cut, read timeout,
    in-stream server error). The remote side may have acted on the call: a retry must not
    reuse what the call consumed (an InvokeHarness session id)."""


class EvaluatorLocked(PermanentError):
    """An enabled online evaluation configuration references the evaluator, which locks
    it for modification; the message names the configuration(s)."""

    reason = ReasonCode.evaluator_locked
