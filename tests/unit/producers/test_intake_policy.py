"""Intake under the producers' policies: request ids scoped by producer, the backlog cap,
remote names no producer can take over (over fakeredis and the in-process emulator)."""

from __future__ import annotations

import json

from api_contracts.examples import sample_request
from tests.unit.conftest import reconfigure
from tests.unit.driving import run_until, submit
from worker.backends.agentcore import client_token
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.states import JobState


def test_a_request_id_another_producer_took_first_is_still_this_producers(services, clock):
    squatter = submit(services, request_id="release-42", producer="squatter")
    owner = submit(services, request_id="release-42", producer="owner")

    assert (squatter.outcome, squatter.request_id) == ("created", "release-42")
    assert (owner.outcome, owner.request_id) == ("created", "owner/release-42")
    assert services.dead_letters.count() == 0
    # The owner sending it again is a duplicate of its own job, never a conflict.
    assert submit(services, request_id="release-42", producer="owner").outcome == "duplicate"

    job = run_until(services, "owner/release-42", JobState.PUBLISHED, clock)
    assert job.producer == "owner"
    outcome = next(o for o, _ in services.publisher.published if o.producer == "owner")
    assert outcome.request_id == "release-42"  # as the producer sent it
    squatted = services.store.get("release-42")
    assert squatted.producer == "squatter"
    assert job.batch_evaluation_id != squatted.batch_evaluation_id
    assert services.store.find("release-42", "owner").request_id == "owner/release-42"
    assert services.store.find("release-42", "squatter").request_id == "release-42"
    assert services.store.find("release-42", "nobody") is None


def test_the_scoped_job_gets_its_own_client_token_and_remote_name(services):
    submit(services, request_id="r1", producer="squatter")
    submit(services, request_id="r1", producer="owner")
    advance(services, "r1")
    advance(services, "owner/r1")
    first, second = services.store.get("r1"), services.store.get("owner/r1")
    assert first.remote_name != second.remote_name
    assert client_token("r1") != client_token("owner/r1")
    names = services.redis.hgetall(services.keys.target("default").remote_names)
    assert names == {first.remote_name: "r1", second.remote_name: "owner/r1"}


def test_a_producer_over_its_backlog_cap_gets_a_dead_letter_and_others_go_on(services):
    reconfigure(services, producer_backlog_cap=3, max_active_jobs=1)
    results = [submit(services, request_id=f"flood-{i}", producer="flood") for i in range(6)]
    # One is admitted (one slot), three wait: the fifth and sixth find the backlog full.
    assert [r.outcome for r in results] == ["created"] * 4 + ["quota"] * 2
    letters = {letter.request_id: letter for letter in services.dead_letters.find()}
    assert set(letters) == {"flood-4", "flood-5"}
    assert {letter.reason for letter in letters.values()} == {"producer_quota"}
    assert "already has 3 requests waiting in target 'default'" in letters["flood-4"].error
    assert services.store.get("flood-4") is None  # nothing written
    assert submit(services, request_id="calm-1", producer="calm").outcome == "created"
    assert services.store.backlog_size("default") == 4


def test_a_producer_given_name_cannot_take_over_another_jobs_remote_name(services):
    first = sample_request(request_id="a-1", producer="team-a")
    first["evaluation"]["batchEvaluationName"] = "nightly_eval"
    accept(services, first)
    second = sample_request(request_id="b-1", producer="team-b")
    second["evaluation"]["batchEvaluationName"] = "nightly_eval"
    accept(services, second)
    names = services.redis.hgetall(services.keys.target("default").remote_names)
    assert names == {"nightly_eval": "a-1"}


def test_a_refused_producer_writes_nothing_but_a_dead_letter(services, tmp_path):
    path = tmp_path / "producers.json"
    path.write_text(json.dumps({"unlisted": "refuse", "producers": [{"name": "p"}]}))
    reconfigure(services, producers_file=str(path))
    assert submit(services, request_id="x-1", producer="stranger").outcome == "rejected"
    (letter,) = services.dead_letters.find()
    assert (letter.reason, letter.request_id) == ("producer_not_allowed", "x-1")
    assert services.store.get("x-1") is None
    assert submit(services, request_id="x-2", producer="p").outcome == "created"
