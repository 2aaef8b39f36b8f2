"""Unit-test wiring: fakeredis for Redis, the emulator in-process for AgentCore."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.loaders
import botocore.session
import fakeredis
import pytest

from evalq_emulators.agentcore import EmulatorConfig, EmulatorServer
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.polling import PollPolicy
from worker.jobs.services import Published, Services
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.producers.policy import Producers
from worker.runtime.root import build_targets
from worker.settings import Settings


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    #: What the emulators wait out on this clock (a stream's pace, a synchronous run):
    #: the clock moves on, nothing waits.
    sleep = advance


@dataclass
class RecordingPublisher:
    published: list[tuple[Any, list[str]]] = field(default_factory=list)

    #: queue -> the error each publish to it raises (a broken reply queue).
    refusing: dict[str, Exception] = field(default_factory=dict)

    def publish(self, outcome: Any, queues: Any) -> Published:
        wanted = list(queues)
        sent = [q for q in wanted if q not in self.refusing]
        if sent:
            self.published.append((outcome, sent))
        return Published(sent, {q: self.refusing[q] for q in wanted if q in self.refusing})


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def keys() -> Keys:
    return Keys("evalq")


@pytest.fixture
def store(fake_redis: fakeredis.FakeRedis, keys: Keys) -> JobStore:
    return JobStore(fake_redis, keys)


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every boto3 session of the test process reads botocore's service models through
    one loader (its cache), as one long-lived process does: each test builds its own
    clients, and parsing the models' JSON again for each was most of the lane's time."""
    loader = botocore.loaders.create_loader()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", lambda *args, **kwargs: loader)
        yield


@pytest.fixture(scope="session")
def agentcore_server() -> Iterator[EmulatorServer]:
    """One AgentCore emulator server per test process; each test gets a fresh account on
    it (``emulator``)."""
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def emulator(agentcore_server: EmulatorServer, clock: Clock) -> EmulatorServer:
    # A fresh account on the test's clock, at a huge time scale: a remote job ends as
    # soon as the test moves the clock on to its next poll.
    config = EmulatorConfig(time_scale=10_000.0, mutate_tps=1000.0, read_tps=1000.0, seed=7)
    agentcore_server.serve_anew(config, clock=clock, sleep=clock.sleep)
    return agentcore_server


@pytest.fixture
def settings(emulator: EmulatorServer) -> Settings:
    return Settings(
        agentcore_endpoint_url=emulator.url,
        aws_access_key_id="test",  # type: ignore[arg-type]
        aws_secret_access_key="test",  # type: ignore[arg-type]
        max_active_jobs=2,
        start_rate=1000,
        get_rate=1000,
        retry_max_attempts=3,
    )


def reconfigure(services: Services, **settings: Any) -> None:
    """Rebuild the services' targets from settings changed by ``settings``."""
    changed = {**services.settings.model_dump(), **settings}
    services.settings = type(services.settings).model_validate(changed)
    services.targets = build_targets(services.settings, services.redis, services.keys)
    services.producers = Producers(services.settings)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(fake_redis, keys, store, settings, clock) -> Services:
    dispatched: list[tuple[str, float | None, float]] = []
    watched: list[str] = []
    invoked: list[tuple[str, int, int, float]] = []
    svc = Services(
        settings=settings,
        keys=keys,
        redis=fake_redis,
        store=store,
        dead_letters=DeadLetterStore(fake_redis, keys, max_entries=100, max_age=3600),
        targets=build_targets(settings, fake_redis, keys),
        producers=Producers(settings),
        publisher=RecordingPublisher(),
        dispatch=lambda rid, token, countdown: dispatched.append((rid, token, countdown)),
        dispatch_watch=lambda target: watched.append(target),
        dispatch_sync=lambda rid: dispatched.append((rid, None, -1.0)),
        dispatch_invoke=lambda rid, index, attempt, countdown: invoked.append(
            (rid, index, attempt, countdown)
        ),
        poll_policy=PollPolicy.from_settings(settings),
        clock=clock,
        rng=random.Random(1),
    )
    svc.dispatched = dispatched  # type: ignore[attr-defined]
    svc.watched = watched  # type: ignore[attr-defined]
    svc.invoked = invoked  # type: ignore[attr-defined]
    return svc
