from __future__ import annotations

from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request
from worker.jobs.states import JobState, Move
from worker.jobs.store import Moved, Ref

NOW = 1_800_000_000.0


def _register(store, request_id="r1", producer="p", deadline=3600.0, **overrides):
    request = EvaluationRequest.model_validate(
        sample_request(request_id=request_id, producer=producer, **overrides)
    )
    registration, _ = store.register(
        request, target="default", now=NOW, deadline_at=NOW + deadline, retention=60.0
    )
    return registration


def test_register_is_idempotent_per_request_id_and_payload(store):
    assert _register(store).outcome == "created"
    assert _register(store).outcome == "duplicate"
    assert _register(store, correlation={"x": "y"}).outcome == "conflict"
    assert store.backlog_size("default") == 1
    job = store.get("r1")
    assert job.state == JobState.QUEUED
    assert job.correlation == {}


def test_dead_job_registered_again_is_requeued_as_a_replay(store):
    _register(store)
    store.admit("default", now=NOW, quota=5)
    assert store.transition(Ref("r1", "default"), Move.DEAD_LETTER, clear_due=True)
    assert _register(store).outcome == "requeued"
    job = store.get("r1")
    assert (job.state, job.replays) == (JobState.QUEUED, 1)
    assert store.active_count("default") == 0


def test_admission_respects_the_quota_and_takes_producers_in_turn(store):
    for i in range(10):
        _register(store, request_id=f"big-{i}", producer="big")
    _register(store, request_id="small-0", producer="small")

    first = store.admit("default", now=NOW, quota=2)
    assert first.admitted == ["big-0", "small-0"]
    assert store.admit("default", now=NOW, quota=2).admitted == []
    assert store.active_count("default") == 2
    assert store.get("small-0").state == JobState.ADMITTED
    assert store.due_score("small-0") == NOW


def test_admission_expires_requests_whose_deadline_passed_in_the_backlog(store):
    _register(store, request_id="late", deadline=10.0)
    _register(store, request_id="fine", deadline=1000.0)
    result = store.admit("default", now=NOW + 20, quota=5)
    assert result.admitted == ["fine"]
    assert result.expired == ["late"]
    late = store.get("late")
    assert (late.state, late.outcome_status) == (JobState.FINISHED, "EXPIRED")


def test_transition_is_compare_and_set(store):
    _register(store)
    store.admit("default", now=NOW, quota=5)
    assert not store.transition(Ref("r1", "default"), Move.FINISH, from_state=JobState.RUNNING)
    assert store.transition(
        Ref("r1", "default"), Move.START, due_at=NOW + 5, batch_evaluation_id="b-1"
    )
    assert store.get("r1").batch_evaluation_id == "b-1"
    assert store.due_score("r1") == NOW + 5
    assert store.transition(Ref("r1", "default"), Move.FINISH, clear_due=True)
    assert store.active_count("default") == 0
    assert store.due_score("r1") is None


def test_a_move_says_whether_it_freed_a_slot(store):
    _register(store)
    _register(store, request_id="r2")
    store.admit("default", now=NOW, quota=1)  # r1 takes the slot, r2 waits
    ref, waiting = Ref("r1", "default"), Ref("r2", "default")
    assert store.transition(ref, Move.START) == Moved(True, freed=False)
    assert store.transition(ref, Move.POLL) == Moved(True, freed=False)
    assert store.transition(ref, Move.START) == Moved(False, freed=False)
    assert store.transition(waiting, Move.CANCEL) == Moved(True, freed=False)  # no slot
    assert store.transition(ref, Move.FINISH) == Moved(True, freed=True)


def test_requeue_puts_the_job_first_in_line_and_pauses_admission(store):
    _register(store, request_id="a")
    _register(store, request_id="b")
    store.admit("default", now=NOW, quota=1)
    assert store.requeue(store.get("a"), now=NOW, pause_until=NOW + 5)
    assert store.get("a").state == JobState.QUEUED
    assert store.admit("default", now=NOW + 1, quota=1).admitted == []
    assert store.admit("default", now=NOW + 6, quota=1).admitted == ["a"]


def test_claimed_timers_are_leased_and_come_back_when_the_lease_ends(store):
    store.schedule("x", NOW)
    store.schedule("later", NOW + 100)
    claimed = store.claim_due(now=NOW, horizon=1.0, lease=30.0, limit=10)
    assert [(t.request_id, t.due_at) for t in claimed] == [("x", NOW)]
    assert abs(store.due_score("x") - claimed[0].lease_token) < 1e-3
    assert store.claim_due(now=NOW + 1, horizon=1.0, lease=30.0, limit=10) == []
    again = store.claim_due(now=NOW + 31, horizon=1.0, lease=30.0, limit=10)
    assert [t.request_id for t in again] == ["x"]


def test_a_timer_handed_out_again_waits_twice_as_long_each_time_until_a_step_sets_it(store):
    """Copies of a step still waiting on a long queue must not lengthen that queue: each
    hand-out past the first doubles the lease (at most 16x), and a move that sets the
    timer brings the plain lease back."""
    _register(store, request_id="a")
    store.admit("default", now=NOW, quota=1)
    store.schedule("a", NOW)
    now, waits = NOW, []
    for _ in range(7):
        (timer,) = store.claim_due(now=now, horizon=0.0, lease=30.0, limit=10)
        waits.append(round(timer.lease_token - now))
        now = timer.lease_token
    assert waits == [30, 60, 120, 240, 480, 480, 480]
    assert store.get("a").claims == 7
    assert store.transition(Ref("a", "default"), Move.START, due_at=now).moved
    assert store.get("a").claims == 0
    (timer,) = store.claim_due(now=now, horizon=0.0, lease=30.0, limit=10)
    assert (timer.claims, round(timer.lease_token - now)) == (1, 30)


def test_a_timer_without_a_record_is_handed_out_without_making_one(store, keys):
    store.schedule("forgotten", NOW)
    for now in (NOW, NOW + 30):
        (timer,) = store.claim_due(now=now, horizon=0.0, lease=30.0, limit=10)
        assert (timer.claims, round(timer.lease_token - now)) == (1, 30)
    assert not store.redis.exists(keys.job("forgotten"))


def test_remote_name_is_indexed_once_for_reconciliation(store, keys):
    request = EvaluationRequest.model_validate(sample_request(request_id="named"))
    for _ in range(2):
        store.register(request, target="default", now=NOW, deadline_at=NOW + 60, retention=60.0,
                       remote_name=lambda _job_id: "evalq_abc")  # fmt: skip
    assert store.redis.hgetall(keys.target("default").remote_names) == {"evalq_abc": "named"}
    assert store.get("named").remote_name == "evalq_abc"
