"""``evalq dlq`` and the ``evals.dlq.*`` tasks, over fakeredis (no broker: sends are recorded)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from api_contracts import ReasonCode
from api_contracts.examples import sample_request
from worker.cli import dlq
from worker.cli.main import app
from worker.jobs.intake import accept
from worker.runtime import dlq_tasks

runner = CliRunner()


@pytest.fixture
def sent(services, monkeypatch) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Wire the CLI and the tasks to the unit-test stores; record what they send."""
    recorded: list[tuple[dict[str, Any], dict[str, str]]] = []
    # Rich tables at full width (the module's console read COLUMNS when it was imported).
    monkeypatch.setattr(dlq, "console", Console(width=250))
    monkeypatch.setattr(dlq, "_stores", lambda: (services.dead_letters, services.store))
    monkeypatch.setattr(dlq, "_send_replay", lambda r, h: recorded.append((r, h)))
    monkeypatch.setattr(dlq_tasks, "services", lambda: services)
    monkeypatch.setattr(dlq_tasks, "send_replay", lambda r, h: recorded.append((r, h)))
    return recorded


def _invalid(services, request_id: str, ago: float = 60.0):
    request = sample_request(request_id=request_id)
    request["evaluation"]["evaluators"] = [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]
    services.clock.now = time.time() - ago
    accept(services, request)
    return next(d for d in services.dead_letters.find() if d.request_id == request_id)


def _garbage(services, text: str = "}{ never parsed"):
    return services.dead_letters.record(
        reason=ReasonCode.undecodable_message,
        error="body could not be decoded",
        request=text,
        request_id=None,
        now=time.time() - 30,
    )


def _run(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["dlq", *args], input=stdin)


# -- list and show --------------------------------------------------------------------------
def test_list_shows_entries_newest_first_and_filters(services, sent):
    old = _invalid(services, "old", ago=3000)  # the store keeps an hour (conftest)
    new = _invalid(services, "new", ago=60)
    raw = _garbage(services)
    result = _run("list", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["dead_letter_id"] for r in rows] == [
        raw.dead_letter_id,
        new.dead_letter_id,
        old.dead_letter_id,
    ]
    assert {r["state"] for r in rows} == {"dead"}
    only = _run("list", "--json", "--reason", "invalid_request", "--since", "30m")
    assert [json.loads(line)["request_id"] for line in only.output.splitlines()] == ["new"]
    table = _run("list")
    assert "invalid_request" in table.output
    assert "3 shown, 3 in the store" in table.output


def test_show_explains_the_failure_and_keeps_the_request(services, sent):
    letter = _invalid(services, "r1")
    result = _run("show", letter.dead_letter_id[:8])
    assert result.exit_code == 0, result.output
    assert "invalid_request" in result.output
    assert "evaluation.evaluators" in result.output
    assert "Builtin.E10" in result.output
    shown = json.loads(_run("show", letter.dead_letter_id, "--json").output)
    assert shown["request"]["request_id"] == "r1"
    assert shown["state"] == "dead"
    raw = _run("show", _garbage(services).dead_letter_id)
    assert "request (raw body):" in raw.output
    assert "never parsed" in raw.output
    huge = _run("show", _garbage(services, "z" * 10_000).dead_letter_id)
    assert "6000 more characters; --json shows all" in huge.output
    missing = _run("show", "nope")
    assert missing.exit_code == 1
    assert "no dead letter" in missing.output


# -- replay ---------------------------------------------------------------------------------
def test_replay_sends_the_request_to_intake_and_marks_the_entry(services, sent):
    letter = _invalid(services, "r1")
    result = _run("replay", letter.dead_letter_id)
    assert result.exit_code == 0, result.output
    assert f"replayed {letter.dead_letter_id}" in result.output
    ((request, headers),) = sent
    assert request["request_id"] == "r1"
    assert headers["evalq_replay"].startswith(letter.dead_letter_id + ":")
    listed = json.loads(_run("list", "--json").output)
    assert listed["state"] == "replaying"


def test_replay_of_a_body_that_never_parsed_says_so(services, sent):
    raw = _garbage(services)
    result = _run("replay", raw.dead_letter_id)
    assert result.exit_code == 1
    assert "cannot replay" in result.output
    assert "never parsed" in result.output
    assert sent == []


def test_replay_all_skips_and_counts_what_cannot_be_replayed(services, sent):
    _invalid(services, "a")
    _invalid(services, "b")
    _garbage(services, "x}")
    _garbage(services, "y}")
    dry = _run("replay", "--all", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would replay 2; cannot replay 2" in dry.output
    assert sent == []
    report = json.loads(_run("replay", "--all", "--rate", "100", "--json").output)
    assert (len(report["replayed"]), len(report["unreplayable"])) == (2, 2)
    assert sorted(r["request_id"] for r, _ in sent) == ["a", "b"]


def test_replay_needs_ids_or_all(services, sent):
    assert _run("replay").exit_code == 2
    assert _run("replay", "x", "--all").exit_code == 2


# -- purge ----------------------------------------------------------------------------------
def test_purge_by_id_age_and_all(services, sent):
    old = _invalid(services, "old", ago=3000)
    _invalid(services, "new", ago=60)
    kept = _invalid(services, "kept", ago=120)
    assert _run("purge", "--older-than", "40m").output.strip() == "purged 1"
    assert services.dead_letters.get(old.dead_letter_id) is None
    assert _run("purge", kept.dead_letter_id).exit_code == 0
    assert _run("purge", "nope").exit_code == 1
    refused = _run("purge", "--all", stdin="n\n")
    assert refused.exit_code == 1
    assert services.dead_letters.count() == 1
    assert _run("purge", "--all", "--yes").exit_code == 0
    assert services.dead_letters.count() == 0


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800)]
)
def test_durations(text, seconds):
    assert dlq.parse_duration(text) == seconds


def test_since_takes_a_time_or_a_duration():
    assert dlq.parse_since("2030-01-01T00:00:00Z", 0) == 1893456000
    assert dlq.parse_since("1h", 10_000) == 6400
    with pytest.raises(typer.BadParameter):
        dlq.parse_since("yesterday", 0)


# -- the same operations as tasks -------------------------------------------------------------
def test_replay_task_replays_and_continues_with_the_rest(services, sent, monkeypatch):
    for n in range(3):
        _invalid(services, f"r{n}")
    _garbage(services)
    continued: list[dict[str, Any]] = []
    monkeypatch.setattr(
        dlq_tasks.replay_dead_letters, "apply_async", lambda kwargs: continued.append(kwargs)
    )
    services.clock.now = time.time()
    report = dlq_tasks.replay_dead_letters(everything=True, rate=1000)
    assert (len(report["replayed"]), len(report["unreplayable"])) == (3, 1)
    assert continued == []

    monkeypatch.setattr(dlq_tasks, "RUN_SECONDS", 0.0)
    _invalid(services, "later")
    services.clock.now = time.time()
    report = dlq_tasks.replay_dead_letters(everything=True, reason="invalid_request")
    assert len(report["in_flight"]) == 3
    assert len(report["remaining"]) == 1
    (rest,) = continued
    assert rest["everything"] is True
    assert rest["reason"] == "invalid_request"
    assert rest["until"] is not None


def test_purge_task(services, sent):
    letter = _invalid(services, "r1")
    _invalid(services, "r2", ago=3000)
    services.clock.now = time.time()
    assert dlq_tasks.purge_dead_letters(older_than_seconds=2400) == {"purged": 1, "missing": []}
    assert dlq_tasks.purge_dead_letters(ids=[letter.dead_letter_id, "x"]) == {
        "purged": 1,
        "missing": ["x"],
    }


# -- text from producers is shown as it is -----------------------------------------------------
HOSTILE = ["[/]", "[bold]x", "[link=http://evil]y[/link]", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07",
           "rtl\u202eoverride"]  # fmt: skip


def test_producer_text_is_printed_as_it_is_never_as_markup_or_control_codes(services, sent):
    """`dlq list` crashed on a request id of ``[/]``; ANSI escapes reached the terminal."""
    for n, text in enumerate(HOSTILE):
        services.dead_letters.record(
            reason=ReasonCode.invalid_request, error=f"error {text}", request=f"body {text}",
            request_id=text, now=time.time() - 60 + n, task_name=f"task {text}",
        )  # fmt: skip
    for depth in (500, 5000):  # a few hundred deep, and past the parser's recursion limit
        body = '[[], {"request": ' + "[" * depth + "]" * depth + "}, {}]"
        services.dead_letters.record(
            reason=ReasonCode.bad_task_signature, error="e", request=body, request_id=None,
            now=time.time() - 30,
        )  # fmt: skip
    letters = services.dead_letters.find()
    outputs = [
        _run("list"),
        _run("replay", "--all", "--dry-run"),
        _run("replay", "--all", "--dry-run", "--json"),
    ]
    outputs += [_run("show", letter.dead_letter_id) for letter in letters]
    for result in outputs:
        assert result.exit_code == 0, (result.output, result.exception)
        assert "\x1b" not in result.output
        assert "\u202e" not in result.output
    shown = "".join(result.output for result in outputs)
    for visible in ("[/]", "[bold]x", "[link=http://evil]y[/link]", "\\x1b[31mred", "\\x07",
                    "rtl\\u202eoverride"):  # fmt: skip
        assert visible in shown
    dry = outputs[1].output
    assert "would replay 0; cannot replay 8" in dry
    assert dry.count("deeper than") == 2
    assert "[" * 200 in shown  # the deep bodies are shown (rich wraps them, nothing more)
