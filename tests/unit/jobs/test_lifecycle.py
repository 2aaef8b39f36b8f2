"""Lifecycle over fakeredis and the in-process emulator (real boto3 over HTTP)."""

from __future__ import annotations

import itertools
import json
import urllib.request

from api_contracts.examples import sample_request
from tests.unit.driving import run_until, submit
from worker.backends.agentcore import client_token
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.remote import start_spec
from worker.jobs.states import JobState


def test_accepted_request_is_admitted_started_polled_and_published(services, clock, emulator):
    result = submit(services)
    assert (result.outcome, result.state) == ("created", "QUEUED")
    assert services.dispatched == [("r1", None, 0.0)]

    assert advance(services, "r1") == "started"
    job = services.store.get("r1")
    assert job.state == JobState.RUNNING
    assert job.batch_evaluation_name.startswith("evalq_")

    job = run_until(services, "r1", JobState.PUBLISHED, clock)
    assert job.outcome_status == "COMPLETED"
    ((outcome, queues),) = services.publisher.published
    assert queues == ["evals.results"]
    assert outcome.request_id == "r1"
    assert outcome.batch_evaluation_id == job.batch_evaluation_id
    assert outcome.result["evaluationResults"]["numberOfSessionsCompleted"] == 2
    assert services.store.active_count("default") == 0


def test_reply_to_queues_get_the_outcome_too(services, clock):
    submit(services, reply_to=["team-a.results", "team-a.audit"])
    run_until(services, "r1", JobState.PUBLISHED, clock)
    ((_, queues),) = services.publisher.published
    assert queues == ["evals.results", "team-a.results", "team-a.audit"]


def test_a_second_start_of_the_same_request_returns_the_same_remote_job(services, emulator):
    submit(services)
    advance(services, "r1")
    first = services.store.get("r1").batch_evaluation_id
    again = services.targets["default"].backend.start(start_spec(services.store.get("r1")))
    assert again.id == first
    assert {j["clientToken"] for j in _emulator_jobs(emulator)} == {client_token("r1")}


def test_a_clientToken_an_earlier_request_used_is_an_idempotency_conflict(services, emulator):
    # request_id r1 was used before, with other evaluators, by a request evalq no longer
    # remembers: the service ignores the new start (same token) and answers with the
    # earlier job, without an error. That job is not r1's.
    backend = services.targets["default"].backend
    earlier = sample_request(request_id="r1")["evaluation"]
    earlier["evaluators"] = [{"evaluatorId": "Builtin.Faithfulness"}]
    earlier["batchEvaluationName"] = "earlier_job"
    backend.client.start_batch_evaluation(clientToken=client_token("r1"), **earlier)
    submit(services)
    assert advance(services, "r1") == "dead"
    (letter,) = services.dead_letters.find()
    assert letter.reason == "idempotency_conflict"
    assert "batchEvaluationName, evaluators" in letter.error
    assert services.store.active_count("default") == 0
    assert len(_emulator_jobs(emulator)) == 1  # no second job, and evalq adopted none


def test_only_quota_many_jobs_are_admitted(services):
    for i in range(5):
        submit(services, request_id=f"r{i}")
    assert services.store.active_count("default") == 2
    assert services.store.backlog_size("default") == 3


def test_quota_error_puts_the_job_back_without_a_dead_letter(services, emulator):
    _faults(emulator, {"errors": {"ServiceQuotaExceededException": 1.0}})
    submit(services)
    assert advance(services, "r1") == "requeued"
    assert services.store.get("r1").state == JobState.QUEUED
    assert services.dead_letters.count() == 0
    assert services.store.active_count("default") == 0


def test_throttling_is_retried_without_spending_an_attempt(services, emulator):
    _faults(emulator, {"throttle": 1.0})
    submit(services)
    for _ in range(5):
        assert advance(services, "r1") == "retry"
    job = services.store.get("r1")
    assert (job.state, job.attempts) == (JobState.ADMITTED, 0)
    assert "ThrottlingException" in job.last_error


def test_server_errors_past_the_retry_budget_become_a_dead_letter(services, emulator):
    _faults(emulator, {"server_error": 1.0})
    submit(services)
    outcomes = [advance(services, "r1") for _ in range(4)]
    assert outcomes == ["retry", "retry", "retry", "dead"]
    (letter,) = services.dead_letters.find()
    assert letter.reason == "retries_exhausted"
    assert letter.request["request_id"] == "r1"
    assert services.store.get("r1").state == JobState.DEAD
    assert services.store.active_count("default") == 0


def test_access_denied_is_dead_lettered_at_once(services, emulator):
    _faults(emulator, {"errors": {"AccessDeniedException": 1.0}})
    submit(services)
    assert advance(services, "r1") == "dead"
    (letter,) = services.dead_letters.find()
    assert (letter.reason, letter.attempts) == ("access_denied", 1)


def test_invalid_request_is_dead_lettered_and_names_the_field(services):
    bad = sample_request(request_id="bad")
    bad["evaluation"]["evaluators"] = [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]
    result = accept(services, bad)
    assert result.outcome == "rejected"
    (letter,) = services.dead_letters.find()
    assert letter.reason == "invalid_request"
    assert "evaluation.evaluators" in letter.error
    assert services.store.get("bad") is None


def test_job_past_its_deadline_is_stopped_and_expires(services, clock, emulator):
    # A remote job that would run for years of emulated time.
    submit(services, deadline_seconds=30, tags={"emulator:duration": "1000000000000"})
    advance(services, "r1")
    clock.advance(31)
    assert advance(services, "r1") == "stopping"
    job = run_until(services, "r1", JobState.PUBLISHED, clock)
    assert job.outcome_status == "EXPIRED"


def test_stale_timer_deliveries_are_ignored(services, clock):
    submit(services)
    advance(services, "r1")
    (timer,) = services.store.claim_due(now=clock() + 100, horizon=0, lease=30, limit=10)
    services.store.schedule("r1", clock() + 5)  # someone else already handled it
    assert advance(services, "r1", timer.lease_token) == "stale"


def test_a_step_still_waiting_on_the_queue_is_not_sent_again_each_lease(services, clock):
    """A control queue longer than the lease: the tick sends the step again after one
    lease, then after two, four... (each copy would lengthen that queue), and says so."""
    from worker.jobs.admission import tick
    from worker.observability import metrics

    submit(services, tags={"emulator:duration": "100000"})
    assert advance(services, "r1") == "started"
    lease = services.settings.lease_seconds
    services.dispatched.clear()
    clock.advance(services.settings.poll_max)  # the first poll is due
    sent_at = []
    for _ in range(int(15 * lease)):
        before = len(services.dispatched)
        tick(services)
        sent_at += [clock()] * (len(services.dispatched) - before)
        clock.advance(1.0)
    # (A tick hands out what comes due before the next one: up to a tick early.)
    gaps = [round((b - a) / lease) for a, b in itertools.pairwise(sent_at)]
    assert gaps == [1, 2, 4, 8]
    expired = services.redis.hget(services.keys.metrics(metrics.TIMER_LEASES_EXPIRED.name), "")
    assert int(expired) == len(gaps)
    # The last copy runs; its step sets the timer, and the plain lease is back.
    _, token, _ = services.dispatched[-1]
    assert advance(services, "r1", token) != "stale"
    assert services.store.get("r1").claims == 0


def _emulator_jobs(emulator):
    with urllib.request.urlopen(emulator.url + "/_emulator/jobs") as response:
        return json.loads(response.read())


def _faults(emulator, body):
    request = urllib.request.Request(
        emulator.url + "/_emulator/faults", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request).close()
