"""Cancel, proved per backend and state (issue 23): a job of each backend is brought to
each state (queued, admitted, running, stopping, published), cancelled through the
``evals.cancel`` intake path, and driven as beat and the workers would (the fault matrix's
world: the three emulators in-process behind evalq's real clients, over fakeredis) until
it ends. Each case checks the cancel's answer, the outcome, the remote calls each
emulator served, at most one remote job per request, and that the slot is freed: the
request queued behind it is admitted and completes. ``docs/backends.md`` ("Cancel, per
backend and state") is the same table, in words.

A combination a backend cannot reach is listed in :data:`NOT_APPLICABLE` with its reason,
and :func:`test_a_combination_not_applicable_cannot_be_reached` proves the reason."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from tests.unit.conftest import RecordingPublisher
from tests.unit.jobs.fault_matrix import Call
from tests.unit.jobs.fault_world import DEADLINE, FOREVER, SHORT_DEADLINE, World, open_world
from worker.jobs.cancel import CancelResult, cancel
from worker.jobs.remote import backend_of
from worker.jobs.states import JobState
from worker.runtime.intake import take
from worker.runtime.root import build_targets

BACKENDS = ("agentcore", "aymara", "agno")
STATES = ("queued", "admitted", "running", "stopping", "published")
PRODUCER = "demo"  # the sample requests' producer
REASON = "matrix"
WHY = f"cancelled by its producer: {REASON}"
#: Most tasks one drive may take (a job's way to its remote delete after retention).
BUDGET = 120

#: The remote calls of each backend counted: create, stop (None: the service has none),
#: delete.
CREATE = {"agentcore": "StartBatchEvaluation", "aymara": "CreateEvalRun", "agno": "RunEval"}
STOP = {"agentcore": "StopBatchEvaluation", "aymara": None, "agno": None}
DELETE = {"agentcore": "DeleteBatchEvaluation", "aymara": "DeleteEvalRun",
          "agno": "DeleteEvalRuns"}  # fmt: skip

NOT_APPLICABLE = {
    ("aymara", "stopping"): "Aymara cannot stop a run: at the deadline (or a cancel) its run "
    "is deleted and the job ends from RUNNING; it is never STOPPING",
    ("agno", "stopping"): "AgentOS cannot stop a run, and a run is over when its synchronous "
    "call returns: the job is never STOPPING",
}


@dataclass(frozen=True)
class Expected:
    """What a cancel of the job in one state does."""

    #: The cancel's answer (``CancelResult.outcome``).
    answer: str
    #: The outcome's status and the end of its ``error``.
    status: str
    error: str | None
    #: The job had a remote job (the cancelled one's own).
    remote: bool
    #: Stops the service served.
    stops: int = 0


_UNSTARTED = "it had not started; no remote job was created"
_DELETED = "the run was deleted (the service cannot stop one)"
MATRIX: dict[tuple[str, str], Expected] = {
    ("agentcore", "queued"): Expected("cancelled", "CANCELLED", f"{WHY}: {_UNSTARTED}", False),
    ("agentcore", "admitted"): Expected("cancelled", "CANCELLED", f"{WHY}: {_UNSTARTED}", False),
    ("agentcore", "running"): Expected("stopping", "CANCELLED", f"{WHY}: stopped", True, 1),
    ("agentcore", "stopping"): Expected("stopping", "CANCELLED", f"{WHY}: stopped", True, 1),
    ("agentcore", "published"): Expected("already_ended", "COMPLETED", None, True),
    ("aymara", "queued"): Expected("cancelled", "CANCELLED", f"{WHY}: {_UNSTARTED}", False),
    ("aymara", "admitted"): Expected("cancelled", "CANCELLED", f"{WHY}: {_UNSTARTED}", False),
    ("aymara", "running"): Expected("stopping", "CANCELLED", f"{WHY}: {_DELETED}", True),
    ("aymara", "published"): Expected("already_ended", "COMPLETED", None, True),
    ("agno", "queued"): Expected("cancelled", "CANCELLED", f"{WHY}: {_UNSTARTED}", False),
    # Handed off to the synchronous queue, evals.run not yet taken.
    ("agno", "admitted"): Expected("cancelled", "CANCELLED", f"{WHY}: {_UNSTARTED}", False),
    # The cancel comes while the synchronous call runs: it takes effect when it returns.
    ("agno", "running"): Expected("stopping", "CANCELLED", f"{WHY}: {_DELETED}", True),
    ("agno", "published"): Expected("already_ended", "COMPLETED", None, True),
}
CASES = [(b, s) for b in BACKENDS for s in STATES if (b, s) not in NOT_APPLICABLE]


def test_the_matrix_covers_every_backend_and_state() -> None:
    every = {(b, s) for b in BACKENDS for s in STATES}
    assert set(MATRIX) | set(NOT_APPLICABLE) == every
    assert not set(MATRIX) & set(NOT_APPLICABLE)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        for opened in open_world():
            # One slot per target: a second request waits in the backlog behind the first.
            svc = opened.services
            svc.settings = svc.settings.model_copy(
                update={
                    "max_active_jobs": 1,
                    "aymara_max_active_jobs": 1,
                    "agno_max_active_jobs": 1,
                }
            )
            svc.targets = build_targets(svc.settings, svc.redis, svc.keys)
            yield opened
    finally:
        structlog.configure(**config)


def _request(world: World, backend: str, request_id: str, *, forever: bool = False,
             deadline: int = DEADLINE) -> dict[str, Any]:  # fmt: skip
    """A request of ``backend`` (its remote job runs until stopped if ``forever``)."""
    request = world.request(Call(backend, "-", "RUNNING", "a poll"), request_id)
    request["deadline_seconds"] = deadline
    if forever and backend == "agentcore":
        request["evaluation"]["tags"]["emulator:duration"] = str(FOREVER)
    elif forever and backend == "aymara":
        request["evaluation"]["ai_description"] = f"emulator:duration={FOREVER}"
    return request


def _cancel(world: World, request_id: str) -> CancelResult:
    """``evals.cancel`` of the producer's request, as its task takes it."""
    body = {"schema_version": 1, "request_id": request_id, "producer": PRODUCER,
            "reason": REASON}  # fmt: skip
    result = take(world.services, cancel, body)
    assert isinstance(result, CancelResult)
    return result


def _outcomes(world: World, request_id: str) -> list[Any]:
    publisher = world.services.publisher
    assert isinstance(publisher, RecordingPublisher)
    return [o for o, _ in publisher.published if o.request_id == request_id]


def _state(world: World, request_id: str) -> str:
    return world.job(request_id).state.value


def _bring(world: World, backend: str, state: str) -> tuple[str, str | None, CancelResult]:
    """Bring the job ``r1`` of ``backend`` to ``state`` and cancel it there; the request
    that waits behind it for its slot (None where none does: it holds no slot), and the
    cancel's answer."""
    if state == "queued":
        holder = world.submit(_request(world, backend, "r0"))  # holds the one slot
        victim = world.submit(_request(world, backend, "r1"))
        assert (_state(world, holder), _state(world, victim)) == ("ADMITTED", "QUEUED")
        result = _cancel(world, victim)
        world.drive(holder, BUDGET)  # the holder runs to its end; r1 never starts
        return victim, None, result
    if state == "published":
        victim = world.submit(_request(world, backend, "r1"))
        world.drive(victim, BUDGET, until=lambda: _state(world, victim) == "PUBLISHED")
        return victim, None, _cancel(world, victim)
    if state == "stopping":
        request = _request(world, backend, "r1", forever=True, deadline=SHORT_DEADLINE)
        victim = world.submit(request)
        world.drive(victim, BUDGET, until=lambda: _state(world, victim) == "RUNNING")
        world.clock.now = max(world.clock.now, world.job(victim).deadline_at + 1)
        world.drive(victim, BUDGET, until=lambda: _state(world, victim) == "STOPPING")
        follower = world.submit(_request(world, backend, "r2"))
        assert _state(world, follower) == "QUEUED"
        return victim, follower, _cancel(world, victim)
    victim = world.submit(_request(world, backend, "r1", forever=True))
    follower = world.submit(_request(world, backend, "r2"))
    assert (_state(world, victim), _state(world, follower)) == ("ADMITTED", "QUEUED")
    if state == "admitted":
        if backend == "agno":  # its run handed off to the synchronous queue, not taken yet
            world.drive(victim, 5, until=lambda: any(c < 0 for _, _, c in world.tasks.advance))
        return victim, follower, _cancel(world, victim)
    assert state == "running"
    if backend == "agno":
        return victim, follower, _cancel_while_agno_runs(world, victim)
    world.drive(victim, BUDGET, until=lambda: _state(world, victim) == "RUNNING")
    return victim, follower, _cancel(world, victim)


def _cancel_while_agno_runs(world: World, victim: str) -> CancelResult:
    """Cancel ``victim`` from inside its synchronous run (AgentOS holds the call while the
    eval runs: the emulator's wait is where another worker's cancel comes in)."""
    service = world.agno.service
    answers: list[CancelResult] = []

    def cancel_meanwhile(seconds: float) -> None:
        if not answers:
            answers.append(_cancel(world, victim))

    no_wait = service.sleep
    service.sleep = cancel_meanwhile
    try:
        world.drive(victim, BUDGET, until=lambda: bool(answers))
    finally:
        service.sleep = no_wait
    assert world.job(victim).state == JobState.RUNNING  # the call returned meanwhile
    return answers[0]


@pytest.mark.parametrize(("backend", "state"), CASES, ids=[f"{b}-{s}" for b, s in CASES])
def test_cancel_in_each_state_on_each_backend(world: World, backend: str, state: str) -> None:
    world.reset()
    expected = MATRIX[backend, state]
    victim, follower, result = _bring(world, backend, state)

    assert result.outcome == expected.answer, result
    if state == "published":
        assert "COMPLETED" in (result.detail or "")
    world.drive(victim, BUDGET)  # as beat and the workers would, to its end
    (outcome,) = _outcomes(world, victim)  # one outcome, whatever the cancel did
    assert (outcome.status.value, outcome.error) == (expected.status, expected.error)
    job = world.job(victim)
    assert (job.batch_evaluation_id is not None) == expected.remote

    # The slot is freed: the request waiting behind it is admitted and completes.
    if follower is not None:
        world.drive(follower, BUDGET)
        (after,) = _outcomes(world, follower)
        assert after.status.value == "COMPLETED"
    assert world.services.store.active_count(job.target) == 0

    world.quiesce(backend)
    stats = world.stats(backend)
    calls: dict[str, int] = stats["calls"]
    # Every other request (the slot's holder or the follower) made one remote job.
    others = 1 if (follower is not None or state == "queued") else 0
    remote_jobs = others + (1 if expected.remote else 0)
    assert stats["jobs"]["total"] == remote_jobs  # at most one per request
    assert calls.get(CREATE[backend], 0) == remote_jobs  # no new create for a cancel
    stop = STOP[backend]
    if stop is not None:
        assert calls.get(stop, 0) == expected.stops  # never a second stop
    # Each remote job deleted once: at the cancel (a service that cannot stop) or after
    # retention; the agno janitor's bulk delete takes one call per sweep.
    assert calls.get(DELETE[backend], 0) == remote_jobs


@pytest.mark.parametrize(("backend", "state"), sorted(NOT_APPLICABLE))
def test_a_combination_not_applicable_cannot_be_reached(
    world: World, backend: str, state: str
) -> None:
    """Why no cancel is proved there: the service cannot stop a run, so no job of it
    enters STOPPING; past its deadline its run is deleted and it ends EXPIRED."""
    world.reset()
    assert state == "stopping", NOT_APPLICABLE[backend, state]
    forever = backend != "agno"  # an Agno run is over when its call returns
    request = _request(world, backend, "r1", forever=forever, deadline=SHORT_DEADLINE)
    victim = world.submit(request)
    world.drive(victim, BUDGET, until=lambda: _state(world, victim) == "RUNNING")
    assert not backend_of(world.services, world.job(victim)).capabilities.can_stop
    world.clock.now = max(world.clock.now, world.job(victim).deadline_at + 1)
    seen: set[str] = set()

    def ended() -> bool:  # noting each state the job is seen in on its way
        seen.add(_state(world, victim))
        return world.ended(victim)

    world.drive(victim, BUDGET, until=ended)
    assert "STOPPING" not in seen
    (outcome,) = _outcomes(world, victim)
    if backend == "aymara":
        assert (outcome.status.value, outcome.error) == ("EXPIRED", f"deadline passed: {_DELETED}")
    assert world.stats(backend)["jobs"]["total"] == 1


@pytest.mark.parametrize("backend", ["aymara", "agno"])
def test_a_cancel_after_a_lost_create_looks_the_run_up_and_deletes_it(
    world: World, backend: str
) -> None:
    """Admitted, its create served but the answer lost (no client token): the cancel
    cannot end it at once; its step looks the run up by name, adopts it and deletes it
    (no stop), and never creates another."""
    world.reset()
    victim = world.submit(_request(world, backend, "r1", forever=True))
    follower = world.submit(_request(world, backend, "r2"))
    create = CREATE[backend]
    world.faults(backend, {"lost_response": 1.0, "operations": [create]})
    lost = lambda: world.counts(backend)["faults"]["lost_response"] > 0  # noqa: E731
    world.drive(victim, 10, until=lost)
    world.faults(backend, {})
    assert world.job(victim).state == JobState.ADMITTED
    assert world.job(victim).create_intent_at is not None

    result = _cancel(world, victim)
    assert (result.outcome, result.state) == ("stopping", "ADMITTED")
    world.drive(victim, BUDGET)
    (outcome,) = _outcomes(world, victim)
    assert (outcome.status.value, outcome.error) == ("CANCELLED", f"{WHY}: {_DELETED}")
    world.drive(follower, BUDGET)
    assert [o.status.value for o in _outcomes(world, follower)] == ["COMPLETED"]

    world.quiesce(backend)
    stats = world.stats(backend)
    assert stats["jobs"]["total"] == 2  # one each: no second create for the cancelled one
    assert stats["calls"][create] == 2
    assert stats["calls"]["ListEvalRuns"] >= 1  # the lookup by name
    assert stats["calls"][DELETE[backend]] == 2
