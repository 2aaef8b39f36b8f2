"""What every job step, janitor sweep and intake call is given: the stores, the targets
(each with its backend and rate limits), the producers' policies, the publisher and the
dispatcher, and a clock.

This module only says what they are; ``worker.runtime.root`` builds them (the one
composition root), and unit tests build them around fakeredis.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import redis

from api_contracts import EvaluationOutcome, EvaluatorUpdateOutcome
from worker.backends.registry import Targets
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.polling import PollPolicy
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.producers.policy import Producers
from worker.settings import Settings

#: Sends ``evals.advance`` for a job: (request_id, lease token or None, countdown seconds).
Dispatch = Callable[[str, float | None, float], None]
#: Sends ``evals.watch`` for a target (by name), or ``evals.run`` for a job (by request_id).
DispatchWatch = Callable[[str], None]
DispatchSync = Callable[[str], None]
#: Sends ``evals.invoke`` for one scenario item: (request_id, index, attempt, countdown).
DispatchInvoke = Callable[[str, int, int, float], None]


@dataclass
class Published:
    """What one publish of an outcome did: the queues it went to, and each queue that
    refused it with why (an error of ``worker.errors``: ``QueueRefused`` for good,
    ``RetryableError`` for now)."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, Exception] = field(default_factory=dict)


class Publisher(Protocol):
    def publish(
        self, outcome: EvaluationOutcome | EvaluatorUpdateOutcome, queues: Iterable[str]
    ) -> Published:
        """Publish ``outcome`` on every queue; one queue's failure does not stop the
        others."""
        ...


@dataclass
class Services:
    settings: Settings
    keys: Keys
    redis: redis.Redis
    store: JobStore
    dead_letters: DeadLetterStore
    targets: Targets
    producers: Producers
    publisher: Publisher
    dispatch: Dispatch
    dispatch_watch: DispatchWatch
    dispatch_sync: DispatchSync
    dispatch_invoke: DispatchInvoke
    poll_policy: PollPolicy
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
