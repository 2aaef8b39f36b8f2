"""Aymara and Agno jobs over fakeredis and the in-process emulators (their real clients
over HTTP): created exactly once without an idempotency key, deleted at the deadline
where the service cannot stop, synchronous runs, bulk deletes."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from aymara_ai import AymaraAI

from api_contracts.examples import sample_agno_request, sample_aymara_request
from evalq_emulators.common import ServiceServer
from tests.unit.conftest import Clock
from tests.unit.driving import advance_until
from tests.unit.jobs.conftest import KEY
from worker.janitor import sweep as janitor
from worker.jobs.admission import tick
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.start import synchronous_step
from worker.jobs.states import JobState


def _control(server: ServiceServer, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def _aymara_request(server: ServiceServer, request_id: str, **overrides: Any) -> dict[str, Any]:
    sdk = AymaraAI(api_key=KEY, base_url=server.url, max_retries=0)
    made = sdk.evals.create(ai_description="bot", eval_type="safety", name="e", num_prompts=2)
    prompts = sdk.evals.list_prompts(made.eval_uuid or "", limit=10).items
    return sample_aymara_request(
        request_id, eval_uuid=made.eval_uuid or "",
        prompt_uuids=tuple(p.prompt_uuid for p in prompts), **overrides,
    )  # fmt: skip


def _run_until(services, request_id: str, state: JobState, clock, steps: int = 30) -> None:
    for _ in range(steps):
        if services.store.get(request_id).state == state:
            return
        clock.advance(60)
        advance(services, request_id)
    raise AssertionError(f"{request_id} stuck in {services.store.get(request_id).state}")


def _runs(server: ServiceServer) -> list[dict[str, Any]]:
    return list(_control(server, "/_emulator/jobs"))


def test_an_aymara_run_is_created_once_polled_and_published_with_its_responses(
    with_backends, aymara, clock
):
    services = with_backends
    accept(services, _aymara_request(aymara, "a1"))
    assert services.store.get("a1").target == "aymara"
    _run_until(services, "a1", JobState.PUBLISHED, clock)
    (outcome,) = [o for o, _ in services.publisher.published]
    assert (outcome.backend, outcome.target, outcome.status) == ("aymara", "aymara", "COMPLETED")
    assert len(outcome.result["responses"]) == 2
    assert outcome.result["eval_run_uuid"] == outcome.batch_evaluation_id
    (run,) = _runs(aymara)
    assert run["name"].startswith("evalq_")


def test_a_lost_create_answer_is_found_by_name_and_never_created_twice(
    with_backends, aymara, clock
):
    services = with_backends
    _control(aymara, "/_emulator/faults", {"lost_response": 1.0, "operations": ["CreateEvalRun"]})
    accept(services, _aymara_request(aymara, "a1"))
    assert advance(services, "a1") == "retry"  # the answer never came
    job = services.store.get("a1")
    assert (job.creates, job.create_intent_at) == (1, clock())
    _control(aymara, "/_emulator/faults", {})
    assert advance(services, "a1") == "waiting"  # the create may still be on its way
    clock.advance(job.create_timeout + services.settings.create_settle_margin)

    assert advance(services, "a1") == "started"  # found by name, not created again

    assert len(_runs(aymara)) == 1
    assert services.store.get("a1").batch_evaluation_id == _runs(aymara)[0]["eval_run_uuid"]
    _run_until(services, "a1", JobState.PUBLISHED, clock)
    assert len(_runs(aymara)) == 1


def test_a_create_that_made_no_run_is_sent_again_after_the_lookup(with_backends, aymara, clock):
    services = with_backends
    _control(aymara, "/_emulator/faults", {"drop": 1.0, "operations": ["CreateEvalRun"]})
    accept(services, _aymara_request(aymara, "a1"))
    assert advance(services, "a1") == "retry"
    _control(aymara, "/_emulator/faults", {})
    job = services.store.get("a1")
    clock.advance(job.create_timeout + services.settings.create_settle_margin)

    assert advance(services, "a1") == "started"

    assert len(_runs(aymara)) == 1
    assert services.store.get("a1").creates == 2


def test_at_its_deadline_an_aymara_run_is_deleted_and_the_outcome_is_expired(
    with_backends, aymara, clock
):
    services = with_backends
    request = _aymara_request(aymara, "a1", deadline_seconds=120)
    request["evaluation"]["ai_description"] = "emulator:duration=1000000000"
    accept(services, request)
    advance(services, "a1")
    clock.advance(121)
    advance(services, "a1")

    job = services.store.get("a1")
    assert (job.state, job.outcome_status) == (JobState.DELETED, "EXPIRED")
    (run,) = _runs(aymara)
    assert run["deleted_at"] is not None
    assert services.store.active_count("aymara") == 0


def _until_run_status(server: ServiceServer, clock: Clock, status: str) -> None:
    """Move the clock on until the first run is in ``status``."""
    advance_until(clock, lambda: _runs(server)[0]["status"] == status, step=10)


def test_an_aymara_run_whose_delete_is_refused_at_its_deadline_expires_and_is_deleted_later(
    with_backends, aymara, clock
):
    services = with_backends
    request = _aymara_request(aymara, "a1", deadline_seconds=120)
    # Scored for 300 s (at 10,000x), during which Aymara refuses to delete it (409).
    request["evaluation"]["ai_description"] = "emulator:duration=3000000 emulator:delete=conflict"
    accept(services, request)
    assert advance(services, "a1") == "started"
    clock.advance(121)

    assert advance(services, "a1") == "published"

    job = services.store.get("a1")
    assert (job.state, job.outcome_status, job.deleted_at) == (JobState.PUBLISHED, "EXPIRED", None)
    (outcome,) = [o for o, _ in services.publisher.published]
    assert outcome.status == "EXPIRED"
    assert "refused" in (outcome.error or "")
    assert services.store.active_count("aymara") == 0
    assert services.dead_letters.find() == []
    assert advance(services, "a1") == "delete_refused"  # still scored: tried again later
    _until_run_status(aymara, clock, "finished")
    clock.advance(services.settings.poll_max)
    assert advance(services, "a1") == "deleted"
    assert _runs(aymara)[0]["deleted_at"] is not None


def _in_workspace(server: ServiceServer, request_id: str, **overrides: Any) -> dict[str, Any]:
    _control(server, "/_emulator/account", {"workspaces": ["ws-1"]})
    request = _aymara_request(server, request_id, **overrides)
    request["evaluation"]["workspace_uuid"] = "ws-1"
    return request


@pytest.mark.parametrize(
    ("account", "reason", "said"),
    [
        ({"workspaces": []}, "invalid_request", "Workspace ws-1 not found"),
        ({"organization": False}, "unauthorized", "Organization not found"),
    ],
)
def test_a_404_about_the_workspace_or_organization_is_a_dead_letter_not_a_vanished_run(
    with_backends, aymara, clock, account, reason, said
):
    services = with_backends
    accept(services, _in_workspace(aymara, "a1"))
    assert advance(services, "a1") == "started"
    _control(aymara, "/_emulator/account", account)  # deleted, with the run still in it
    clock.advance(60)

    assert advance(services, "a1") == "dead"

    (letter,) = services.dead_letters.find()
    assert (letter.reason, letter.request_id) == (reason, "a1")
    assert said in letter.error
    assert services.publisher.published == []  # no FAILED "no longer exists" outcome
    assert _runs(aymara)[0]["deleted_at"] is None


def test_at_the_deadline_a_missing_organization_is_not_a_deleted_run(with_backends, aymara, clock):
    services = with_backends
    request = _in_workspace(aymara, "a1", deadline_seconds=120)
    request["evaluation"]["ai_description"] = "emulator:duration=1000000000"
    accept(services, request)
    advance(services, "a1")
    _control(aymara, "/_emulator/account", {"organization": False})
    clock.advance(121)

    assert advance(services, "a1") == "dead"

    assert services.store.get("a1").state == JobState.DEAD
    (letter,) = services.dead_letters.find()
    assert letter.reason == "unauthorized"
    assert _runs(aymara)[0]["deleted_at"] is None


def test_a_run_deleted_by_someone_else_still_finishes_failed(with_backends, aymara, clock):
    services = with_backends
    accept(services, _in_workspace(aymara, "a1"))
    advance(services, "a1")
    run_id = services.store.get("a1").batch_evaluation_id
    AymaraAI(api_key=KEY, base_url=aymara.url, max_retries=0).evals.runs.delete(
        run_id, workspace_uuid="ws-1"
    )
    clock.advance(60)

    assert advance(services, "a1") == "published"

    (outcome,) = [o for o, _ in services.publisher.published]
    assert (outcome.status, outcome.error) == ("FAILED", "the remote job no longer exists")


def test_an_agno_run_goes_to_the_synchronous_queue_and_finishes_at_once(with_backends, agno, clock):
    services = with_backends
    accept(services, sample_agno_request("g1"))
    assert advance(services, "g1") == "handed_off"
    assert ("g1", None, -1.0) in services.dispatched  # evals.run, on its own queue

    assert advance(services, "g1", step_of=synchronous_step) == "started"
    assert advance(services, "g1") == "published"

    (outcome,) = [o for o, _ in services.publisher.published]
    assert (outcome.backend, outcome.status) == ("agno", "COMPLETED")
    assert outcome.result["eval_type"] == "accuracy"
    assert outcome.result["created_at"] is not None  # the stored run, not the POST answer


def test_a_run_that_finds_its_job_busy_before_any_create_is_handed_off_at_the_next_tick(
    with_backends, agno, clock, monkeypatch
):
    from worker.runtime import tasks

    services = with_backends
    monkeypatch.setattr(tasks, "services", lambda: services)
    accept(services, sample_agno_request("g1"))
    assert advance(services, "g1") == "handed_off"
    # evals.run picked up while the step that handed it off still holds the job's lock.
    handing_off = services.store.lock("g1", services.settings.lease_seconds)
    assert handing_off.acquire()
    assert tasks.run_synchronously("g1") == "busy"
    handing_off.release()

    # Not at the hand-off's timer (the whole call's timeout, 15 min): at the next tick.
    assert services.store.due_score("g1") <= clock() + services.settings.tick_interval
    services.dispatched.clear()
    tick(services)
    ((request_id, token, _),) = [d for d in services.dispatched if d[0] == "g1"]
    assert advance(services, request_id, token) == "handed_off"
    assert tasks.run_synchronously("g1") == "started"
    assert advance(services, "g1") == "published"
    assert _control(agno, "/_emulator/stats")["jobs"]["total"] == 1


def test_a_run_that_finds_its_job_busy_after_its_create_was_sent_leaves_it_be(
    with_backends, agno, clock, monkeypatch
):
    from worker.runtime import tasks

    services = with_backends
    monkeypatch.setattr(tasks, "services", lambda: services)
    _control(agno, "/_emulator/faults", {"lost_response": 1.0, "operations": ["RunEval"]})
    accept(services, sample_agno_request("g1"))
    advance(services, "g1")
    assert tasks.run_synchronously("g1") == "retry"  # sent; its answer was lost
    due = services.store.due_score("g1")
    running = services.store.lock("g1", services.settings.lease_seconds)
    assert running.acquire()

    assert tasks.run_synchronously("g1") == "busy"  # a second copy of the message

    assert services.store.due_score("g1") == due  # its timer is its holder's to keep


def test_agno_runs_past_retention_are_deleted_in_bulk_by_the_janitor(with_backends, agno, clock):
    services = with_backends
    for request_id in ("g1", "g2"):
        accept(services, sample_agno_request(request_id, retention_seconds=10))
        advance(services, request_id)
        advance(services, request_id, step_of=synchronous_step)
        advance(services, request_id)
    clock.advance(11)
    assert [advance(services, r) for r in ("g1", "g2")] == ["waiting", "waiting"]

    report = janitor.sweep(services)

    assert sorted(report.done["deleted_after_retention"]) == ["g1", "g2"]
    assert {services.store.get(r).state for r in ("g1", "g2")} == {JobState.DELETED}
    stats = _control(agno, "/_emulator/stats")
    assert stats["calls"]["DeleteEvalRuns"] == 1
    assert stats["jobs"]["by_status"]["deleted"] == 2


def test_the_janitor_deletes_an_aymara_orphan_in_its_own_workspace(
    with_backends, aymara, clock, monkeypatch
):
    services = with_backends
    sdk = AymaraAI(api_key=KEY, base_url=aymara.url, max_retries=0)
    made = sdk.evals.create(ai_description="bot", eval_type="safety", num_prompts=1)
    prompt = sdk.evals.list_prompts(made.eval_uuid or "", limit=1).items[0].prompt_uuid
    orphan = sdk.evals.runs.create(
        eval_uuid=made.eval_uuid or "", workspace_uuid="ws-1",
        responses=[{"prompt_uuid": prompt, "content": "no"}],
        name=f"{services.settings.job_name_prefix}lost_request",
    )  # fmt: skip
    _until_run_status(aymara, clock, "finished")
    clock.advance(services.settings.default_retention_seconds + 1)
    client = services.targets["aymara"].backend.client
    deletes = []

    def delete_run(run: str, *, workspace_uuid: str | None = None) -> None:
        deletes.append((run, workspace_uuid))
        real_delete(run, workspace_uuid=workspace_uuid)

    real_delete = client.delete_run
    monkeypatch.setattr(client, "delete_run", delete_run)

    report = janitor.sweep(services)

    assert report.done["deleted"] == [orphan.eval_run_uuid]
    assert deletes == [(orphan.eval_run_uuid, "ws-1")]


def test_a_backend_this_deployment_does_not_run_is_unknown_backend(services):
    accept(services, sample_agno_request("g1"))
    (letter,) = services.dead_letters.find()
    assert letter.reason == "unknown_backend"
    assert services.store.get("g1") is None
