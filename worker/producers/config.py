"""What a producer may do, and how ``EVALQ_PRODUCERS_FILE`` spells it.

Without the file every producer name is accepted with the defaults below (taken from the
``EVALQ_PRODUCER_*`` settings): any priority, a backlog cap per target, reply queues
anywhere but evalq's own and the broker's. The file bounds each producer by name, says
what producers it does not list may do (``defaults``) or refuses them
(``unlisted: refuse``), and, on RabbitMQ, which broker users may send as each one::

    unlisted: refuse
    defaults: {max_priority: 5, backlog_cap: 10000}
    producers:
      - name: fairness
        broker_users: [fairness]
        reply_to: ["fairness.*"]
        max_priority: 9
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_contracts.common import ProducerName
from worker.config_files import read_data
from worker.settings import Settings

#: Most unlisted producers' policies kept decided (beyond, each is decided again).
_MAX_DECIDED = 1000

#: A reply queue a producer may name: a queue name, or a prefix ending in ``*``.
QueuePattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}\*?$")]


class Allowance(BaseModel):
    """What a producer may ask for; a field left out takes the settings' default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Highest ``priority`` its requests may carry.
    max_priority: Annotated[int, Field(ge=0, le=9)] | None = None
    #: Most of its requests waiting in one target's backlog; more are dead-lettered
    #: ``producer_quota``.
    backlog_cap: Annotated[int, Field(ge=1)] | None = None
    #: Queues its outcomes may also go to (names, or prefixes ending in ``*``); unset:
    #: any queue that is not evalq's own or the broker's.
    reply_to: list[QueuePattern] | None = None
    #: It may send ``evals.evaluator.update`` (roll out a new judge).
    evaluator_updates: bool | None = None


class ProducerSpec(Allowance):
    name: ProducerName
    #: RabbitMQ users whose messages may carry this producer's name (RabbitMQ checks a
    #: message's ``user_id`` against the connection's user). Set, its requests must come
    #: from one of them; unset, the name is taken as declared.
    broker_users: list[Annotated[str, Field(min_length=1)]] = []


class ProducersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``refuse``: a producer the file does not list is dead-lettered
    #: ``producer_not_allowed``; ``allow``: it gets ``defaults``.
    unlisted: Literal["allow", "refuse"] = "allow"
    defaults: Allowance = Allowance()
    producers: list[ProducerSpec] = []

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [p.name for p in self.producers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"producer names must be unique, repeated: {', '.join(repeated)}")
        users = [u for p in self.producers for u in p.broker_users]
        shared = sorted({u for u in users if users.count(u) > 1})
        if shared:
            raise ValueError(f"a broker user sends as one producer, shared: {', '.join(shared)}")
        return self


@dataclass(frozen=True)
class Policy:
    """One producer's allowance, every field decided."""

    name: str
    max_priority: int
    backlog_cap: int
    reply_to: tuple[str, ...] | None
    evaluator_updates: bool
    broker_users: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProducerSet:
    """The listed producers' policies, and what an unlisted one gets (None: refused)."""

    listed: dict[str, Policy]
    unlisted: Allowance | None
    settings_defaults: Allowance
    #: Unlisted producers' policies as decided (intake asks for them on every request).
    decided: dict[str, Policy] = field(default_factory=dict)

    def policy(self, name: str) -> Policy | None:
        found = self.listed.get(name) or self.decided.get(name)
        if found is not None or self.unlisted is None:
            return found
        decided = _decide(name, self.unlisted, self.settings_defaults, ())
        if len(self.decided) < _MAX_DECIDED:  # names are the producers' to choose
            self.decided[name] = decided
        return decided

    def producer_of_user(self, user: str) -> str | None:
        """The producer whose ``broker_users`` name ``user``, if one does."""
        return next((p.name for p in self.listed.values() if user in p.broker_users), None)


def load_producers(settings: Settings) -> ProducerSet:
    """The producers file's policies, or, without one, every name on the settings'
    defaults."""
    base = Allowance(
        max_priority=settings.producer_max_priority,
        backlog_cap=settings.producer_backlog_cap,
        evaluator_updates=settings.producer_evaluator_updates,
    )
    if settings.producers_file is None:
        return ProducerSet({}, Allowance(), base)
    file = ProducersFile.model_validate(read_data(Path(settings.producers_file)) or {})
    defaults = _merged(base, file.defaults)
    listed = {p.name: _decide(p.name, p, defaults, p.broker_users) for p in file.producers}
    return ProducerSet(listed, file.defaults if file.unlisted == "allow" else None, defaults)


def _merged(base: Allowance, given: Allowance) -> Allowance:
    return base.model_copy(update=given.model_dump(exclude_none=True))


def _decide(name: str, given: Allowance, defaults: Allowance, users: list[str] | tuple[()]
            ) -> Policy:  # fmt: skip
    merged = _merged(defaults, given)
    assert merged.max_priority is not None
    assert merged.backlog_cap is not None
    return Policy(
        name=name,
        max_priority=merged.max_priority,
        backlog_cap=merged.backlog_cap,
        reply_to=None if merged.reply_to is None else tuple(merged.reply_to),
        evaluator_updates=bool(merged.evaluator_updates),
        broker_users=frozenset(users),
    )
