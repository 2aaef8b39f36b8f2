"""Checking a request against its producer's policy, at intake, before anything is
written: who may send it, what priority and reply queues it may ask for. The backlog cap
is checked where the request enters the backlog (``register.lua``), atomically."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from api_contracts import ReasonCode
from worker.config_files import FileWatch
from worker.producers.config import Policy, ProducerSet, load_producers
from worker.settings import Settings

#: Queue names of the broker's own machinery (kombu, Celery, RabbitMQ): never a reply
#: queue. Matched as prefixes.
BROKER_PREFIXES = ("_kombu", "unacked", "celeryev", "celery.pidbox", "reply.celery", "amq.")
#: Exactly these names too: Celery's default queue.
BROKER_NAMES = frozenset({"celery"})


@dataclass(frozen=True)
class Refusal:
    reason: ReasonCode
    error: str


class Producers:
    """Every producer's policy, picked up again when ``EVALQ_PRODUCERS_FILE`` changes."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        producers: ProducerSet | None = None,
    ) -> None:
        self.settings = settings
        self._set = producers or load_producers(settings)
        self._watch: FileWatch[ProducerSet] | None = None
        if settings.producers_file and producers is None:
            reload = settings.targets_reload_seconds
            self._watch = FileWatch(
                settings.producers_file, lambda: load_producers(settings), reload, clock
            )

    def policy(self, name: str) -> Policy | None:
        """The policy of producer ``name``; None if it may not send at all."""
        if self._watch is not None:
            self._set = self._watch.changed() or self._set
        return self._set.policy(name)

    def check(
        self,
        producer: str,
        *,
        priority: int = 0,
        reply_to: Sequence[str] = (),
        broker_user: str | None = None,
        evaluator_update: bool = False,
    ) -> Refusal | None:
        """Why a request with these fields may not be taken from ``producer`` (None if
        it may). ``broker_user``: the sender's user as the broker vouches for it
        (RabbitMQ's validated ``user_id``), None where the broker gives none."""
        policy = self.policy(producer)
        if policy is None:
            return _not_allowed(f"producer {producer!r} is not listed in the producers file")
        identity = self._identity(policy, broker_user)
        if identity is not None:
            return identity
        if evaluator_update and not policy.evaluator_updates:
            return _not_allowed(f"producer {producer!r} may not roll out evaluators")
        if priority > policy.max_priority:
            return _not_allowed(
                f"priority {priority} is above the highest producer {producer!r} may use, "
                f"{policy.max_priority}"
            )
        for queue in reply_to:
            why = self.reply_queue_problem(policy, queue)
            if why is not None:
                return Refusal(ReasonCode.invalid_request, f"reply_to {queue!r}: {why}")
        return None

    def reply_queue_problem(self, policy: Policy, queue: str) -> str | None:
        """Why ``queue`` may not receive this producer's outcomes (None if it may)."""
        reserved = reserved_queue(queue, self.settings)
        if reserved is not None:
            return reserved
        if policy.reply_to is None or any(_matches(queue, p) for p in policy.reply_to):
            return None
        allowed = ", ".join(policy.reply_to) or "none"
        return f"not a queue producer {policy.name!r} may use (allowed: {allowed})"

    def _identity(self, policy: Policy, broker_user: str | None) -> Refusal | None:
        if broker_user is None:
            if policy.broker_users and self._broker_vouches():
                return _not_allowed(
                    f"producer {policy.name!r} sends only as broker users "
                    f"{sorted(policy.broker_users)}; the message names none (set user_id)"
                )
            return None
        owner = self._set.producer_of_user(broker_user)
        if policy.broker_users and broker_user not in policy.broker_users:
            return _not_allowed(
                f"broker user {broker_user!r} may not send as producer {policy.name!r}"
            )
        if owner is not None and owner != policy.name:
            return _not_allowed(f"broker user {broker_user!r} sends as {owner!r} only")
        return None

    def vouched(self, user_id: object) -> str | None:
        """A message's ``user_id`` property, where the broker checked it against the
        connection's user (RabbitMQ); None elsewhere (on Redis the sender writes it)."""
        return user_id if isinstance(user_id, str) and self._broker_vouches() else None

    def _broker_vouches(self) -> bool:
        """Whether the broker checks who a message is from (RabbitMQ's user_id)."""
        return self.settings.broker_is_amqp


def reserved_queue(queue: str, settings: Settings) -> str | None:
    """Why ``queue`` is evalq's or the broker's own (None if it is neither)."""
    if queue in settings.own_queues:
        return "one of evalq's own queues"
    if queue in BROKER_NAMES or queue.startswith(BROKER_PREFIXES) or ".pidbox" in queue:
        return "one of the broker's own queues or keys"
    if queue.startswith(f"{settings.key_prefix}:"):
        return "a name of evalq's job store"
    return None


def _matches(queue: str, pattern: str) -> bool:
    return queue.startswith(pattern[:-1]) if pattern.endswith("*") else queue == pattern


def _not_allowed(error: str) -> Refusal:
    return Refusal(ReasonCode.producer_not_allowed, error)
