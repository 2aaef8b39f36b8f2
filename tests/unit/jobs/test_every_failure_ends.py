"""Every failure ends somewhere: a job whose remote delete is refused for good, whose
outcome cannot reach a queue, or whose timer keeps firing in vain ends in a dead letter or
an outcome, says so, and a replay takes it back where it died (over fakeredis and the
in-process emulator, real boto3 over HTTP)."""

from __future__ import annotations

import pytest

from api_contracts import ReasonCode
from api_contracts.examples import sample_request
from tests.unit.conftest import reconfigure
from tests.unit.driving import calls, faults, run_until, submit
from worker.dead_letters import replay
from worker.errors import QueueRefused, RetryableError, Throttled
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.states import JobState, Move
from worker.runtime.intake import take


def _replay_entry(services, letter):
    """Replay one entry the way intake settles it (as ops' evals.submit would)."""
    services.dead_letters.mark_replaying(letter.dead_letter_id, "1-tok")
    request, problem = replay.request_to_replay(letter, services.store)
    assert problem == ""
    mark = replay.ReplayMark(letter.dead_letter_id, "1-tok")
    return take(services, accept, request, mark=mark)


def _published_job(services, clock, **overrides):
    submit(services, retention_seconds=60, **overrides)
    return run_until(services, "r1", JobState.PUBLISHED, clock)


@pytest.mark.parametrize("error", ["AccessDeniedException", "ValidationException"])
def test_a_remote_delete_refused_for_good_is_a_dead_letter_whose_replay_deletes_again(
    services, clock, emulator, error
):
    job = _published_job(services, clock)
    faults(emulator, {"errors": {error: 1.0}, "operations": ["DeleteBatchEvaluation"]})
    clock.advance(61)
    assert advance(services, "r1") == "dead"

    (letter,) = services.dead_letters.find()
    assert letter.reason in ("access_denied", "remote_validation")
    assert letter.job_state == "PUBLISHED"
    assert letter.outcome is not None
    assert letter.outcome["status"] == "COMPLETED"
    assert letter.outcome["batch_evaluation_id"] == job.batch_evaluation_id
    dead = services.store.get("r1")
    assert (dead.state, dead.dead_from) == (JobState.DEAD, "PUBLISHED")
    assert dead.error is None  # the published outcome's error is left as it was
    assert services.store.due_score("r1") is None  # no timer fires again

    faults(emulator, {})
    assert _replay_entry(services, letter).outcome == "requeued"
    assert services.store.get("r1").state == JobState.PUBLISHED
    assert advance(services, "r1") == "deleted"
    assert services.store.get("r1").state == JobState.DELETED
    assert len(services.publisher.published) == 1  # the outcome went out once


def test_a_delete_that_keeps_conflicting_ends_in_a_dead_letter_within_the_budget(
    services, clock, emulator
):
    reconfigure(services, delete_rate=1000)
    _published_job(services, clock)
    faults(
        emulator, {"errors": {"ConflictException": 1.0}, "operations": ["DeleteBatchEvaluation"]}
    )
    clock.advance(61)
    results = []
    for _ in range(100):
        results.append(advance(services, "r1"))
        if results[-1] == "dead":
            break
        clock.advance(services.settings.poll_max)  # when its timer comes due again
    # Tried every poll_max, each a stall, until the retry budget's time is spent.
    budget = services.settings.retry_max_seconds / services.settings.poll_max
    assert results[:-1] == ["delete_refused"] * len(results[:-1])
    assert results[-1] == "dead"
    assert len(results) <= budget + 2
    (letter,) = services.dead_letters.find()
    assert (letter.reason, letter.job_state) == ("remote_conflict", "PUBLISHED")


def test_a_reply_queue_that_refuses_the_outcome_is_dropped_and_the_rest_is_published(
    services, clock
):
    services.publisher.refusing["team-a.broken"] = QueueRefused("WRONGTYPE a hash")
    services.publisher.refusing["team-a.flaky"] = RetryableError("connection reset")
    submit(services, reply_to=["team-a.ok", "team-a.broken", "team-a.flaky"])
    results = []
    for _ in range(20):
        job = services.store.get("r1")
        if job.state == JobState.PUBLISHED:
            break
        clock.advance(60)
        results.append(advance(services, "r1"))
    assert services.store.get("r1").state == JobState.PUBLISHED
    sent = [queue for _, queues in services.publisher.published for queue in queues]
    # Each queue that takes it gets it once: no copy per retry.
    assert sorted(sent) == ["evals.results", "team-a.ok"]
    job = services.store.get("r1")
    assert job.reply_failures["team-a.broken"]["dropped"] is True
    assert job.reply_failures["team-a.broken"]["failures"] == 1
    assert job.reply_failures["team-a.flaky"] == {
        "failures": services.settings.reply_publish_attempts,
        "error": "connection reset", "dropped": True,
    }  # fmt: skip
    assert services.store.due_score("r1") is not None  # its retention delete is timed


def test_a_results_queue_that_refuses_for_good_is_a_dead_letter_whose_replay_republishes(
    services, clock
):
    services.publisher.refusing["evals.results"] = QueueRefused("WRONGTYPE a set")
    submit(services)
    job = run_until(services, "r1", JobState.DEAD, clock)
    assert job.dead_from == "FINISHED"
    (letter,) = services.dead_letters.find()
    assert (letter.reason, letter.job_state) == ("publish_refused", "FINISHED")
    assert letter.outcome["status"] == "COMPLETED"

    del services.publisher.refusing["evals.results"]
    assert _replay_entry(services, letter).outcome == "requeued"
    assert services.store.get("r1").state == JobState.FINISHED
    assert advance(services, "r1") == "published"
    ((outcome, queues),) = services.publisher.published
    assert (outcome.status, queues) == ("COMPLETED", ["evals.results"])


def test_a_refused_dead_letter_move_is_an_error_and_counted(services, clock, emulator, capsys):
    submit(services, tags={"emulator:duration": "100000"})
    advance(services, "r1")
    job = services.store.get("r1")
    # Another delivery moved the job on (here: to DEAD) before this step dead-letters it.
    services.store.transition(job, Move.DEAD_LETTER, updated_at=clock())
    from worker.jobs.advance import dead_letter  # the step's own path

    assert dead_letter(services, job, ReasonCode.access_denied, "denied") == "raced"
    assert "dead-letter move refused" in capsys.readouterr().out
    counted = services.redis.hgetall(services.keys.metrics("evalq_refused_moves"))
    assert counted == {"dead_letter|RUNNING|agentcore|default": "1"}


def test_a_job_throttled_forever_is_stalled_listed_and_counted(services, clock, emulator):
    reconfigure(services, stall_alert_after=5, watch_by_list=False)
    submit(services, tags={"emulator:duration": "100000"})
    assert advance(services, "r1") == "started"
    faults(emulator, {"throttle": 1.0, "operations": ["GetBatchEvaluation"]})
    for _ in range(6):
        clock.advance(120)
        assert advance(services, "r1") == "retry"  # throttling spends no attempt
    job = services.store.get("r1")
    assert (job.state, job.stalls, job.attempts) == (JobState.RUNNING, 6, 0)
    assert services.store.stalled_jobs(5) == [("r1", 6)]

    faults(emulator, {})
    clock.advance(120)
    assert advance(services, "r1") in ("polled", "published")
    assert services.store.get("r1").stalls == 0
    assert services.store.stalled_jobs(1) == []


def test_a_throttled_job_backs_off_and_waits_at_least_what_the_service_asked(
    services, clock, emulator, monkeypatch
):
    reconfigure(services, watch_by_list=False)
    submit(services, tags={"emulator:duration": "100000"})
    assert advance(services, "r1") == "started"
    faults(emulator, {"throttle": 1.0, "operations": ["GetBatchEvaluation"]})
    gaps = []
    for _ in range(8):
        clock.advance(services.store.due_score("r1") - clock())
        assert advance(services, "r1") == "retry"
        gaps.append(services.store.due_score("r1") - clock())
    # Doubling from retry_initial (1 s) to retry_max (60 s), each with equal jitter: a
    # service that keeps throttling is asked ever less often (every ~1 s before).
    assert all(2**n / 2 <= gap <= 2**n for n, gap in enumerate(gaps[:6]))
    assert 30 <= gaps[-1] <= 60
    assert services.store.get("r1").attempts == 0  # no attempt spent

    def get(*_: object) -> None:
        raise Throttled("slow down", retry_after=500.0)

    monkeypatch.setattr(services.targets["default"].backend, "get", get)
    clock.advance(60)
    assert advance(services, "r1") == "retry"
    assert services.store.due_score("r1") - clock() == 500.0  # Retry-After


def test_replay_of_a_job_dead_while_running_counts_one_remote_job(services, clock, emulator):
    reconfigure(services, watch_by_list=False)
    request = sample_request(request_id="r1")
    request["evaluation"]["tags"] = {"emulator:duration": "1000000000000"}
    accept(services, request)
    assert advance(services, "r1") == "started"
    faults(emulator, {"errors": {"AccessDeniedException": 1.0},
                       "operations": ["GetBatchEvaluation"]})  # fmt: skip
    clock.advance(60)
    assert advance(services, "r1") == "dead"
    (letter,) = services.dead_letters.find()
    assert letter.job_state == "RUNNING"
    faults(emulator, {})
    assert _replay_entry(services, letter).outcome == "requeued"
    assert services.store.get("r1").state == JobState.RUNNING
    clock.advance(60)
    assert advance(services, "r1") == "polled"
    assert calls(emulator)["StartBatchEvaluation"] == 1


def test_a_dead_record_goes_with_its_dead_letter(services, clock, emulator):
    from worker.janitor import sweep as janitor

    reconfigure(services, watch_by_list=False)
    submit(services, tags={"emulator:duration": "100000"})
    advance(services, "r1")
    faults(emulator, {"errors": {"AccessDeniedException": 1.0},
                       "operations": ["GetBatchEvaluation"]})  # fmt: skip
    clock.advance(60)
    assert advance(services, "r1") == "dead"
    faults(emulator, {})
    (letter,) = services.dead_letters.find()
    name = services.store.get("r1").remote_name
    names = services.keys.target("default").remote_names
    assert services.redis.hget(names, name) == "r1"

    assert janitor.forget_dead(services) == []  # its dead letter is there: it stays
    services.dead_letters.remove(letter.dead_letter_id)  # ops purged it
    assert janitor.forget_dead(services) == ["r1"]
    assert services.store.get("r1") is None
    assert services.redis.hget(names, name) is None
    for index in (services.keys.jobs_by_time, services.keys.dead_jobs, services.keys.due):
        assert services.redis.zscore(index, "r1") is None
