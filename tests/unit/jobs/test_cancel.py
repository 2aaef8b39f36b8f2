"""Cancelling a request in each state (over fakeredis and the in-process emulators, their
real clients over HTTP): one without a remote job ends at once and never gets one, a
running one is stopped (deleted where the service cannot stop), an ended one is left as it
was; a producer cancels only its own; the remote calls are counted."""

from __future__ import annotations

from tests.unit.conftest import reconfigure
from tests.unit.driving import calls, run_until, submit
from tests.unit.jobs.test_without_client_token import _aymara_request
from worker.jobs.advance import advance
from worker.jobs.cancel import cancel
from worker.jobs.intake import accept
from worker.jobs.states import JobState

LONG = {"emulator:duration": "1000000000000"}  # runs for ages of emulated time


def _cancel(services, request_id="r1", producer="p", reason=None):
    body = {"request_id": request_id, "producer": producer}
    if reason:
        body["reason"] = reason
    return cancel(services, body)


def _outcome(services, request_id="r1"):
    (outcome,) = [o for o, _ in services.publisher.published if o.request_id == request_id]
    return outcome


def test_a_queued_request_leaves_the_backlog_and_never_starts(services, emulator):
    reconfigure(services, max_active_jobs=1)
    submit(services, "r0", tags=LONG)  # holds the one slot
    submit(services, "r1")
    assert services.store.get("r1").state == JobState.QUEUED

    result = _cancel(services, reason="release rolled back")

    assert (result.outcome, result.state) == ("cancelled", "QUEUED")
    outcome = _outcome(services)
    assert outcome.status == "CANCELLED"
    assert outcome.error == ("cancelled by its producer: release rolled back: it had not "
                             "started; no remote job was created")  # fmt: skip
    assert services.store.get("r1").state == JobState.PUBLISHED
    assert services.store.backlog_size("default") in (0, 1)  # a stale entry admission skips
    assert calls(emulator)["StartBatchEvaluation"] == 0


def test_an_admitted_request_never_starts(services, emulator):
    submit(services)
    assert services.store.get("r1").state == JobState.ADMITTED
    assert _cancel(services).outcome == "cancelled"
    assert advance(services, "r1") == "waiting"  # nothing to delete: no remote job
    assert _outcome(services).status == "CANCELLED"
    assert calls(emulator)["StartBatchEvaluation"] == 0
    assert services.store.active_count("default") == 0  # its slot is free


def test_a_running_job_is_stopped_and_ends_cancelled(services, emulator, clock):
    reconfigure(services, watch_by_list=False)
    submit(services, tags=LONG)
    assert advance(services, "r1") == "started"

    result = _cancel(services, reason="suite re-run")
    assert (result.outcome, result.state) == ("stopping", "RUNNING")
    assert services.dispatched[-1] == ("r1", None, 0.0)

    assert advance(services, "r1") == "stopping"
    job = run_until(services, "r1", JobState.PUBLISHED, clock)
    outcome = _outcome(services)
    assert (outcome.status, outcome.error) == ("CANCELLED", "cancelled by its producer: "
                                                            "suite re-run: stopped")  # fmt: skip
    assert job.batch_evaluation_id == outcome.batch_evaluation_id
    made = calls(emulator)
    assert (made["StartBatchEvaluation"], made["StopBatchEvaluation"]) == (1, 1)


def test_cancelling_twice_or_after_the_end_changes_nothing(services, emulator, clock):
    reconfigure(services, watch_by_list=False)
    submit(services, tags=LONG)
    advance(services, "r1")
    assert _cancel(services).outcome == "stopping"
    assert _cancel(services).outcome == "already_cancelling"
    run_until(services, "r1", JobState.PUBLISHED, clock)
    again = _cancel(services)
    assert (again.outcome, again.state) == ("already_ended", "PUBLISHED")
    assert "CANCELLED" in again.detail
    assert calls(emulator)["StopBatchEvaluation"] == 1
    assert len(services.publisher.published) == 1


def test_a_cancel_sent_again_hands_the_job_to_its_step_again(services, emulator):
    # The first delivery may have recorded the cancel and died before the dispatch.
    submit(services, tags=LONG)
    advance(services, "r1")
    assert _cancel(services).outcome == "stopping"
    services.dispatched.clear()
    assert _cancel(services).outcome == "already_cancelling"
    assert [rid for rid, _, _ in services.dispatched] == ["r1"]


def test_a_producer_cancels_only_its_own_requests(services, emulator):
    submit(services, "shared-1", producer="owner", tags=LONG)
    advance(services, "shared-1")
    result = _cancel(services, "shared-1", producer="someone-else")
    assert result.outcome == "unknown"
    assert services.store.get("shared-1").cancel_requested_at is None
    assert calls(emulator)["StopBatchEvaluation"] == 0


def test_a_malformed_cancel_is_a_dead_letter(services):
    result = cancel(services, {"request_id": "r1"})  # no producer
    assert result.outcome == "rejected"
    (letter,) = services.dead_letters.find()
    assert (letter.reason, letter.task_name) == ("invalid_request", "evals.cancel")


def test_an_aymara_run_cannot_be_stopped_so_it_is_deleted(with_backends, aymara, clock):
    services = with_backends
    request = _aymara_request(aymara, "a1")
    accept(services, request)
    assert advance(services, "a1") == "started"
    assert _cancel(services, "a1", producer=request["producer"]).outcome == "stopping"
    advance(services, "a1")
    outcome = _outcome(services, "a1")
    assert outcome.status == "CANCELLED"
    assert "the run was deleted (the service cannot stop one)" in outcome.error
