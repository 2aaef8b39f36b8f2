"""Replaying and purging dead letters: what is sent, how intake settles it, pacing."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import pytest

from api_contracts import ReasonCode
from api_contracts.examples import sample_request
from worker.backends.agentcore import client_token
from worker.dead_letters import replay
from worker.dead_letters.messages import BASE64_MARKER
from worker.dead_letters.sizes import cut_of
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.advance import advance
from worker.jobs.intake import IntakeResult, accept
from worker.jobs.states import JobState
from worker.runtime.intake import take


@dataclass
class Intake:
    """Collects what a replay sends; ``deliver`` runs it through intake as evals.submit."""

    svc: Any
    sent: list[tuple[dict[str, Any], dict[str, str]]] = field(default_factory=list)

    def send(self, request: dict[str, Any], headers: dict[str, str]) -> None:
        self.sent.append((request, headers))

    def deliver(self, index: int = -1) -> IntakeResult:
        request, headers = self.sent[index]
        mark = replay.ReplayMark.from_header(headers[replay.REPLAY_HEADER])
        return take(self.svc, accept, request, mark=mark)


@pytest.fixture
def intake(services) -> Intake:
    return Intake(services)


def _replay(svc, intake, ids=(), **kwargs):
    candidates, missing = replay.select(svc.dead_letters, svc.store, ids=ids, **kwargs)
    report = replay.replay(
        svc.dead_letters, intake.send, candidates, rate=1000, skip_in_flight=not ids
    )
    report.missing = missing
    return report


def _eleven_evaluators(request_id="bad"):
    request = sample_request(request_id=request_id)
    request["evaluation"]["evaluators"] = [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]
    return request


def _raw_letter(svc, text):
    return svc.dead_letters.record(
        reason=ReasonCode.undecodable_message, error="e", request=text, request_id=None, now=1.0
    )


def _faults(emulator, body):
    request = urllib.request.Request(
        emulator.url + "/_emulator/faults", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request).close()


def _emulator_jobs(emulator):
    with urllib.request.urlopen(emulator.url + "/_emulator/jobs") as response:
        return json.loads(response.read())


# -- what a replay sends -------------------------------------------------------------------
def test_a_rejected_request_is_replayed_as_it_was_received(services):
    accept(services, _eleven_evaluators())
    (letter,) = services.dead_letters.find()
    request, problem = replay.request_to_replay(letter, services.store)
    assert (request, problem) == (_eleven_evaluators(), "")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("not json at all", "never parsed"),
        (BASE64_MARKER + base64.b64encode(b"\x80\x04pickle").decode(), "binary"),
        (json.dumps([[], {"other": 1}, {}]), "no request object"),
    ],
)
def test_bodies_that_never_parsed_cannot_be_replayed_as_they_are(services, raw, problem):
    letter = _raw_letter(services, raw)
    request, why = replay.request_to_replay(letter, services.store)
    assert request is None
    assert problem in why


def test_a_body_cut_when_it_was_stored_is_not_replayed(services, fake_redis, keys):
    """Its start may even parse: what is gone is gone, so the replay says so."""
    small = DeadLetterStore(fake_redis, keys, max_entries=10, max_age=3600, max_entry_bytes=2048)
    body = json.dumps([[], {"request": sample_request(request_id="big"), "pad": "p" * 4000}, {}])
    letter = small.record(reason=ReasonCode.payload_too_large, error="e", request=body,
                          request_id=None, now=1.0)  # fmt: skip
    request, why = replay.request_to_replay(letter, services.store)
    assert request is None
    assert f"cut to {cut_of(letter.request)[0]} of {len(body)} bytes when stored" in why


@pytest.mark.parametrize("depth", [500, 5000, 100_000])
def test_a_deeply_nested_body_is_refused_without_parsing_it(services, depth):
    deep = "[" * depth + "]" * depth
    letter = _raw_letter(services, '[[], {"request": {"x": ' + deep + "}}, {}]")
    request, why = replay.request_to_replay(letter, services.store)
    assert request is None
    assert "deeper than" in why


def test_a_parsed_call_with_a_request_argument_replays_that_request(services):
    valid = sample_request(request_id="r9")
    raw_letter = _raw_letter(services, json.dumps([[], {"request": valid, "x": 1}, {}]))
    assert replay.request_to_replay(raw_letter, services.store)[0] == valid
    wrapped = services.dead_letters.record(
        reason=ReasonCode.bad_task_signature,
        error="e",
        request={"args": [valid], "kwargs": {"extra": 1}},
        request_id=None,
        now=1.0,
    )
    assert replay.request_to_replay(wrapped, services.store)[0] == valid


# -- settling -----------------------------------------------------------------------------
def test_a_replay_that_fails_again_returns_with_its_replay_count_raised(services, intake):
    accept(services, _eleven_evaluators())
    (letter,) = services.dead_letters.find()

    report = _replay(services, intake, [letter.dead_letter_id])
    assert report.replayed == [letter.dead_letter_id]
    assert services.dead_letters.replaying() == {letter.dead_letter_id: _token(intake)}
    assert intake.deliver().outcome == "rejected"
    again = services.dead_letters.get(letter.dead_letter_id)
    assert (again.replay_count, again.attempts) == (1, 2)
    assert services.dead_letters.replaying() == {}

    intake.deliver()  # the same replay message delivered twice counts once
    assert services.dead_letters.get(letter.dead_letter_id).replay_count == 1

    _replay(services, intake, [letter.dead_letter_id[:8]])
    intake.deliver()
    assert services.dead_letters.get(letter.dead_letter_id).replay_count == 2
    assert services.dead_letters.count() == 1


def test_an_accepted_replay_leaves_the_store(services, intake):
    valid = sample_request(request_id="fixed")
    services.dead_letters.record(
        reason=ReasonCode.bad_task_signature,
        error="e",
        request={"args": [], "kwargs": {"request": valid, "priority": 5}},
        request_id=None,
        now=services.clock(),
    )
    report = _replay(services, intake, everything=True)
    assert len(report.replayed) == 1
    assert services.dead_letters.count() == 1  # not gone before intake accepted it
    assert intake.deliver().outcome == "created"
    assert services.dead_letters.count() == 0
    assert services.store.get("fixed").replays == 1


def test_a_dead_job_whose_remote_job_runs_resumes_it_and_never_starts_another(
    services, intake, clock, emulator
):
    request = sample_request(request_id="r1")
    request["evaluation"]["description"] = "token: not-a-secret-but-looks-like-one"
    request["evaluation"]["tags"] = {"emulator:duration": "1000000000000"}
    accept(services, request)
    assert advance(services, "r1") == "started"
    remote_id = services.store.get("r1").batch_evaluation_id
    _faults(emulator, {"server_error": 1.0})
    outcomes = []
    while not outcomes or outcomes[-1] != "dead":
        clock.advance(60)
        outcomes.append(advance(services, "r1"))
    (letter,) = services.dead_letters.find()
    assert letter.reason == "retries_exhausted"
    assert "[REDACTED]" in letter.request["evaluation"]["description"]

    _faults(emulator, {})
    _replay(services, intake, [letter.dead_letter_id])
    (sent, _headers) = intake.sent[0]
    assert sent == services.store.get("r1").request  # the job's own, unredacted copy
    assert intake.deliver().outcome == "requeued"
    assert services.dead_letters.count() == 0
    job = services.store.get("r1")
    # Back where it died: its remote job runs, so it polls it (no start, no slot wait).
    assert (job.state, job.replays, job.batch_evaluation_id) == (JobState.RUNNING, 1, remote_id)
    assert services.store.due_score("r1") is not None

    assert advance(services, "r1") in ("polled", "watched")
    assert services.store.get("r1").batch_evaluation_id == remote_id
    assert [j["clientToken"] for j in _emulator_jobs(emulator)] == [client_token("r1")]


def test_a_replayed_job_that_dies_again_carries_its_replay_count(services, intake, emulator):
    _faults(emulator, {"errors": {"AccessDeniedException": 1.0}})
    accept(services, sample_request(request_id="r1"))
    assert advance(services, "r1") == "dead"
    (letter,) = services.dead_letters.find()
    _replay(services, intake, [letter.dead_letter_id])
    intake.deliver()
    assert advance(services, "r1") == "dead"
    (again,) = services.dead_letters.find()
    assert (again.dead_letter_id, again.reason, again.replay_count) == (
        letter.dead_letter_id,
        "access_denied",
        1,
    )


# -- selection, dry runs, pacing ----------------------------------------------------------
def test_replay_all_skips_what_never_parsed_and_says_how_many(services, intake):
    accept(services, _eleven_evaluators("a"))
    accept(services, _eleven_evaluators("b"))
    _raw_letter(services, "garbage")
    report = _replay(services, intake, everything=True)
    assert len(report.replayed) == 2
    assert len(report.unreplayable) == 1
    assert "never parsed" in next(iter(report.unreplayable.values()))
    again = _replay(services, intake, everything=True)  # the first two are in flight
    assert (len(again.replayed), len(again.in_flight)) == (0, 2)


def test_a_replay_never_settled_is_sent_again_after_an_hour(services, intake):
    accept(services, _eleven_evaluators())
    (letter,) = services.dead_letters.find()
    lost = replay.ReplayMark.new(letter.dead_letter_id, now=time.time() - 2 * 3600)
    services.dead_letters.mark_replaying(letter.dead_letter_id, lost.token)
    assert _replay(services, intake, everything=True).replayed == [letter.dead_letter_id]


def test_replay_all_by_reason_and_only_failures_before_it_started(services, intake, clock):
    accept(services, _eleven_evaluators("a"))
    bad_backend = sample_request(request_id="b", backend="vertex")
    accept(services, bad_backend)
    report = _replay(services, intake, everything=True, reason="unknown_backend")
    assert [r["request_id"] for r, _ in intake.sent] == ["b"]
    assert report.replayed
    clock.advance(10)
    accept(services, _eleven_evaluators("later"))
    _replay(services, intake, everything=True, until=clock() - 5)
    assert [r["request_id"] for r, _ in intake.sent] == ["b", "a"]


def test_dry_run_sends_nothing_and_marks_nothing(services, intake):
    accept(services, _eleven_evaluators())
    candidates, _ = replay.select(services.dead_letters, services.store, everything=True)
    report = replay.replay(services.dead_letters, intake.send, candidates, rate=1, dry_run=True)
    assert len(report.replayed) == 1
    assert intake.sent == []
    assert services.dead_letters.replaying() == {}


def test_unknown_ids_are_reported(services, intake):
    report = _replay(services, intake, ["no-such-id"])
    assert report.missing == ["no-such-id"]


def test_replays_are_paced_and_a_budget_leaves_the_rest(services, intake):
    for n in range(4):
        accept(services, _eleven_evaluators(f"r{n}"))
    candidates, _ = replay.select(services.dead_letters, services.store, everything=True)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    report = replay.replay(
        services.dead_letters,
        intake.send,
        candidates,
        rate=2,
        budget_seconds=1.0,
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert slept == [0.5, 0.5]
    assert (len(report.replayed), len(report.remaining)) == (3, 1)


def test_a_failed_send_leaves_no_replay_mark(services):
    accept(services, _eleven_evaluators())
    candidates, _ = replay.select(services.dead_letters, services.store, everything=True)

    def broken(request, headers):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        replay.replay(services.dead_letters, broken, candidates, rate=10)
    assert services.dead_letters.replaying() == {}
    assert services.dead_letters.count() == 1


def test_replay_marks_survive_only_a_well_formed_header():
    mark = replay.ReplayMark.new("abc")
    assert replay.ReplayMark.from_header(mark.header()[replay.REPLAY_HEADER]) == mark
    for junk in (None, 3, "", "no-colon", "a:b:c", ":t", "id:"):
        assert replay.ReplayMark.from_header(junk) is None


# -- purging -------------------------------------------------------------------------------
def test_purge_by_id_prefix_age_and_all(services, clock):
    for n in range(4):
        clock.advance(100)
        accept(services, _eleven_evaluators(f"r{n}"))
    newest = services.dead_letters.find()[0]
    assert replay.purge(services.dead_letters, ids=[newest.dead_letter_id[:10], "nope"]) == (
        1,
        ["nope"],
    )
    assert replay.purge(services.dead_letters, older_than=150, now=clock()) == (2, [])
    assert replay.purge(services.dead_letters, everything=True) == (1, [])
    assert services.dead_letters.count() == 0


def _token(intake):
    return replay.ReplayMark.from_header(intake.sent[-1][1][replay.REPLAY_HEADER]).token


# -- a replay header nobody sent -------------------------------------------------------------
def test_a_forged_token_settles_nothing_and_the_entry_stays(services):
    accept(services, _eleven_evaluators())
    (letter,) = services.dead_letters.find()
    # A valid request carrying someone's dead letter id with a made-up token.
    forged = replay.ReplayMark(letter.dead_letter_id, "123-made-up")
    result = take(services, accept, sample_request(request_id="other"), mark=forged)
    assert result.outcome == "created"
    assert services.dead_letters.get(letter.dead_letter_id) is not None


def test_a_replay_header_counts_only_on_the_control_queue():
    header = "entry:123-token"
    taken = replay.mark_of(header, "evals.control", replay_queue="evals.control")
    assert taken == replay.ReplayMark("entry", "123-token")
    assert replay.mark_of(header, "evals.requests", replay_queue="evals.control") is None
    assert replay.mark_of(header, None, replay_queue="evals.control") is None
    assert replay.mark_of(None, "evals.control", replay_queue="evals.control") is None


def test_a_real_replay_settles_once_even_when_delivered_twice(services, intake):
    accept(services, _eleven_evaluators())
    (letter,) = services.dead_letters.find()
    services.dead_letters.set_replay_count(letter.dead_letter_id, 0)
    fixed = _eleven_evaluators()
    fixed["evaluation"]["evaluators"] = fixed["evaluation"]["evaluators"][:3]
    services.dead_letters.mark_replaying(letter.dead_letter_id, "1-tok")
    mark = replay.ReplayMark(letter.dead_letter_id, "1-tok")
    assert take(services, accept, fixed, mark=mark).outcome == "created"
    assert services.dead_letters.get(letter.dead_letter_id) is None
    assert take(services, accept, fixed, mark=mark).outcome == "duplicate"
