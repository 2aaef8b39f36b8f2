"""The intake tasks' one wrapper (worker/runtime/intake.py): whatever intake raises, the
request ends registered, dead-lettered or back on the queue, never acknowledged with
nothing done; the same for ``evals.submit`` and ``evals.evaluator.update``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery.exceptions import Reject, SoftTimeLimitExceeded

from api_contracts import ReasonCode
from api_contracts.examples import sample_request
from worker.jobs import intake, rollout_intake
from worker.runtime import intake as intake_task


def _task(name: str, queue: str = "evals.requests", **headers: Any) -> Any:
    request = SimpleNamespace(delivery_info={"routing_key": queue}, properties={}, **headers)
    return SimpleNamespace(name=name, request=request)


@pytest.fixture(autouse=True)
def _services(services, monkeypatch):
    monkeypatch.setattr(intake_task, "services", lambda: services)


def _raising(exc: BaseException) -> Any:
    def accept(*_: Any, **__: Any) -> Any:
        raise exc

    return accept


ACCEPTS = [("evals.submit", intake.accept), ("evals.evaluator.update",
                                             rollout_intake.accept_rollout)]  # fmt: skip


@pytest.mark.parametrize(("name", "_accept"), ACCEPTS)
def test_an_unforeseen_error_becomes_a_dead_letter(services, name, _accept):
    request = sample_request(request_id="boom")
    result = intake_task.run(_task(name), _raising(RecursionError("too deep")), request)
    assert result["outcome"] == "rejected"
    (letter,) = services.dead_letters.find()
    assert letter.reason == "internal_error"
    assert letter.request_id == "boom"
    assert letter.task_name == name
    assert "intake failed: RecursionError: too deep" in letter.error


@pytest.mark.parametrize(("name", "_accept"), ACCEPTS)
@pytest.mark.parametrize(
    "exc",
    [redis.ConnectionError("down"), redis.exceptions.OutOfMemoryError("full"),
     SoftTimeLimitExceeded()],
)  # fmt: skip
def test_what_may_pass_goes_back_on_the_queue(services, monkeypatch, name, _accept, exc):
    monkeypatch.setattr(intake_task, "FULL_STORE_PAUSE_SECONDS", 0.0)
    with pytest.raises(Reject) as rejected:
        intake_task.run(_task(name), _raising(exc), sample_request())
    assert rejected.value.requeue
    assert services.dead_letters.count() == 0


@pytest.mark.parametrize(("name", "accept"), ACCEPTS)
def test_a_replay_header_from_a_producers_queue_settles_nothing(services, name, accept):
    now = services.clock()
    services.dead_letters.record(reason=ReasonCode.invalid_request, error="e",
                                 request={"x": 1}, request_id="victim", now=now)  # fmt: skip
    (letter,) = services.dead_letters.find()
    services.dead_letters.mark_replaying(letter.dead_letter_id, "1-real")
    header = {"evalq_replay": f"{letter.dead_letter_id}:1-real"}
    intake_task.run(_task(name, "evals.requests", **header), accept, {"not": "valid"})
    assert services.dead_letters.get(letter.dead_letter_id) is not None
    assert services.dead_letters.replaying() == {letter.dead_letter_id: "1-real"}
