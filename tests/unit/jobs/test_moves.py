"""jobs/moves.py: a move that frees a slot says so, and the next job is admitted there."""

from __future__ import annotations

from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request
from worker.jobs import moves
from worker.jobs.states import JobState, Move
from worker.jobs.store import Ref


def _submit(svc, request_id: str) -> None:
    request = EvaluationRequest.model_validate(sample_request(request_id=request_id))
    now = svc.clock()
    moves.register(svc, request, target="default", quota=2, remote_name=lambda _: None,
                   backlog_cap=None, now=now, deadline_at=now + 3600, retention=60.0)  # fmt: skip


def _state(svc, request_id: str) -> JobState:
    return svc.store.get(request_id).state


def test_registering_admits_into_free_slots(services):
    for request_id in ("a", "b", "c"):
        _submit(services, request_id)
    assert [rid for rid, _, _ in services.dispatched] == ["a", "b"]
    assert [_state(services, r) for r in "abc"] == [JobState.ADMITTED] * 2 + [JobState.QUEUED]


def test_a_move_that_frees_a_slot_admits_the_next_job(services):
    for request_id in ("a", "b", "c"):
        _submit(services, request_id)
    services.dispatched.clear()
    moved = moves.move(services, Ref("a", "default"), Move.FINISH)
    assert (bool(moved), moved.freed) == (True, True)
    assert services.dispatched == [("c", None, 0.0)]
    assert _state(services, "c") == JobState.ADMITTED


def test_a_move_that_frees_nothing_admits_nothing(services):
    for request_id in ("a", "b", "c", "d"):
        _submit(services, request_id)
    services.dispatched.clear()
    assert not moves.move(services, Ref("c", "default"), Move.CANCEL).freed  # it waited
    assert not moves.move(services, Ref("a", "default"), Move.START).freed
    assert services.dispatched == []
    assert _state(services, "d") == JobState.QUEUED
