"""Fair admission (ADMIT): highest priority first; producers take turns within a priority."""

from __future__ import annotations

from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request
from worker.jobs.states import JobState, Move
from worker.jobs.store import Ref

NOW = 1_800_000_000.0


def _register(store, request_id: str, producer: str, priority: int = 0, deadline=3600.0):
    request = EvaluationRequest.model_validate(
        sample_request(request_id=request_id, producer=producer, priority=priority)
    )
    registration, _ = store.register(
        request, target="default", now=NOW, deadline_at=NOW + deadline, retention=60.0
    )
    return registration


def _finish(store, request_id: str) -> None:
    assert store.transition(Ref(request_id, "default"), Move.DEAD_LETTER, clear_due=True)


def _admit_one_by_one(store, count: int) -> list[str]:
    """Admit with one slot, freeing it after each admission: the order slots are given."""
    order = []
    for _ in range(count):
        (admitted,) = store.admit("default", now=NOW, quota=1).admitted
        order.append(admitted)
        _finish(store, admitted)
    return order


def test_a_single_request_gets_the_next_free_slot_after_a_burst_of_a_thousand(store):
    for i in range(1000):
        _register(store, f"a-{i:04d}", "team-a")
    assert len(store.admit("default", now=NOW, quota=5).admitted) == 5
    _register(store, "b-0", "team-b")

    _finish(store, "a-0002")
    assert store.admit("default", now=NOW, quota=5).admitted == ["b-0"]
    assert store.backlog_size("default") == 995


def test_producers_with_many_requests_alternate(store):
    for i in range(3):
        _register(store, f"a-{i}", "team-a")
        _register(store, f"b-{i}", "team-b")
    assert _admit_one_by_one(store, 6) == ["a-0", "b-0", "a-1", "b-1", "a-2", "b-2"]


def test_a_higher_priority_is_admitted_first_whoever_sent_it(store):
    _register(store, "a-low", "team-a")
    _register(store, "b-low", "team-b")
    _register(store, "a-high", "team-a", priority=7)
    _register(store, "c-mid", "team-c", priority=3)
    _register(store, "b-high", "team-b", priority=7)
    order = _admit_one_by_one(store, 5)
    assert order == ["a-high", "b-high", "c-mid", "a-low", "b-low"]


def test_a_producer_joining_late_is_not_behind_the_rounds_others_already_had(store):
    for i in range(4):
        _register(store, f"a-{i}", "team-a")
    assert _admit_one_by_one(store, 3) == ["a-0", "a-1", "a-2"]
    _register(store, "b-0", "team-b")
    _register(store, "b-1", "team-b")
    assert _admit_one_by_one(store, 3) == ["b-0", "a-3", "b-1"]


def test_a_requeued_job_is_first_in_line_again_and_keeps_its_turn(store):
    _register(store, "a-0", "team-a")
    _register(store, "a-1", "team-a")
    _register(store, "b-0", "team-b")
    assert store.admit("default", now=NOW, quota=1).admitted == ["a-0"]
    assert store.requeue(store.get("a-0"), now=NOW, pause_until=NOW)
    assert _admit_one_by_one(store, 3) == ["a-0", "b-0", "a-1"]


def test_entries_no_longer_queued_do_not_spend_a_turn(store):
    _register(store, "a-gone", "team-a")
    _register(store, "a-0", "team-a")
    _register(store, "b-0", "team-b")
    store.redis.hset(store.keys.job("a-gone"), "state", JobState.FINISHED.value)
    assert _admit_one_by_one(store, 2) == ["a-0", "b-0"]


def test_a_replayed_dead_job_waits_at_its_own_priority(store):
    _register(store, "urgent", "team-a", priority=9)
    assert store.admit("default", now=NOW, quota=1).admitted == ["urgent"]
    _finish(store, "urgent")
    _register(store, "plain", "team-b")
    assert _register(store, "urgent", "team-a", priority=9).outcome == "requeued"
    assert store.backlog_size("default") == 2
    assert store.admit("default", now=NOW, quota=1).admitted == ["urgent"]


def test_a_producer_admitted_as_fast_as_it_sends_still_has_used_its_turns(store):
    # Slots were free: each of A's first requests was admitted the moment it came.
    for i in range(5):
        _register(store, f"a-{i}", "team-a")
        assert store.admit("default", now=NOW, quota=5).admitted == [f"a-{i}"]
    for i in range(5, 10):
        _register(store, f"a-{i}", "team-a")
    _register(store, "b-0", "team-b")
    _finish(store, "a-0")
    assert store.admit("default", now=NOW, quota=5).admitted == ["b-0"]
