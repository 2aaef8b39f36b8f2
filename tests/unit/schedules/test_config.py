"""The schedules file: each entry checked on its own, refused with the field named."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from api_contracts.examples import sample_request
from worker.schedules.book import ScheduleBook
from worker.schedules.config import FILE, load_schedules, parse_entry
from worker.schedules.slots import CatchUp, Cron, Every


def request(**overrides: Any) -> dict[str, Any]:
    """A schedule's request: an EvaluationRequest without request_id (nor producer)."""
    body = sample_request(**overrides)
    del body["request_id"], body["producer"]
    return body


def entry(name: str = "nightly", **fields: Any) -> dict[str, Any]:
    return {"name": name, "cron": "0 2 * * *", "request": request(), **fields}


def test_an_entry_becomes_a_schedule_of_producer_schedule_dot_name():
    nightly = parse_entry(entry(timezone="Europe/Paris", catch_up="all"))
    assert nightly.name == "nightly"
    assert isinstance(nightly.spec, Cron)
    assert str(nightly.spec.zone) == "Europe/Paris"
    assert nightly.catch_up is CatchUp.ALL
    assert nightly.producer == "schedule.nightly"
    assert "request_id" not in nightly.request

    hourly = parse_entry({"name": "hourly", "every": 3600, "request": {**request(),
                          "producer": "team-a"}})  # fmt: skip
    assert hourly.spec == Every(3600)
    assert hourly.catch_up is CatchUp.LATEST
    assert hourly.producer == "team-a"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"cron": "61 2 * * *"}, "cron: '61 2 * * *': Bad minute"),
        ({"cron": "0 0 2 * * *"}, "cron: '0 0 2 * * *' must have 5 fields"),
        ({"cron": "0 0 31 2 *"}, "cron: '0 0 31 2 *': Bad day-of-month"),
        ({"every": 60}, "give exactly one of cron (5 fields) and every"),
        ({"cron": None}, "give exactly one of cron (5 fields) and every"),
        ({"cron": None, "every": 0}, "every: Input should be greater than or equal to 1"),
        ({"cron": None, "every": 60, "timezone": "UTC"}, "timezone applies to cron only"),
        ({"timezone": "Mars/Olympus"}, "timezone: 'Mars/Olympus' is not an IANA time zone"),
        ({"catch_up": "some"}, "catch_up: Input should be 'latest', 'all' or 'none'"),
        ({"name": "Nightly_1"}, "name: String should match pattern"),
        ({"name": "n" * 56}, "name: String should match pattern"),
        ({"often": True}, "often: Extra inputs are not permitted"),
        ({"request": {**request(), "request_id": "x"}}, "request.request_id: set by evalq"),
        ({"request": request(evaluation={"evaluators": []})}, "request.evaluation."),
        ({"request": {**request(), "priority": 12}}, "request.priority: Input should be less"),
        ({"request": {**request(), "producer": "Team A"}}, "request.producer: String should"),
    ],
)
def test_a_wrong_entry_is_refused_naming_the_field(change, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_entry({k: v for k, v in {**entry(), **change}.items() if v is not None})


def test_a_file_keeps_its_good_entries_and_names_each_refused_one(tmp_path: Path):
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml.safe_dump({"schedules": [
        entry("nightly"),
        entry("broken", cron="0 25 * * *"),
        {"cron": "* * * * *"},
        entry("nightly", every=5, cron=None),
        entry("hourly", cron="0 * * * *"),
    ]}))  # fmt: skip
    found = load_schedules(str(path))
    assert [s.name for s in found.schedules] == ["nightly", "hourly"]
    assert found.errors == {
        "schedules[1] broken": "cron: '0 25 * * *': Bad hour",
        "schedules[2]": "name: Field required\nrequest: Field required",
        "schedules[3] nightly": "name: 'nightly' is taken by an earlier entry",
    }
    assert found.refused_names == {"broken"}


@pytest.mark.parametrize("text", ["schedules: [", "- a list", "schedules: {a: 1}", "other: []"])
def test_a_file_that_is_no_schedules_file_is_refused_whole(tmp_path: Path, text: str):
    path = tmp_path / "schedules.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path) if text != "schedules: [" else "YAML"):
        load_schedules(str(path))


def test_json_works_as_yaml_does(tmp_path: Path):
    path = tmp_path / "schedules.json"
    path.write_text(json.dumps({"schedules": [entry()]}))
    assert [s.name for s in load_schedules(str(path)).schedules] == ["nightly"]


def test_the_book_reloads_a_changed_file_and_keeps_the_last_good_one(tmp_path: Path):
    path = tmp_path / "schedules.yaml"
    path.write_text(yaml.safe_dump({"schedules": [entry("nightly")]}))
    now = [0.0]
    book = ScheduleBook(str(path), reload_seconds=10, clock=lambda: now[0])
    assert [s.name for s in book.current().schedules] == ["nightly"]

    def rewrite(text: str, stamp: int) -> None:
        path.write_text(text)
        os.utime(path, (stamp, stamp))  # a new modification time, however fast the test
        now[0] += 10

    rewrite(yaml.safe_dump({"schedules": [entry("nightly"), entry("hourly")]}), 1000)
    assert [s.name for s in book.current().schedules] == ["nightly", "hourly"]
    rewrite("schedules: [", 2000)
    broken = book.current()
    assert [s.name for s in broken.schedules] == ["nightly", "hourly"]
    assert "is not valid YAML" in broken.errors[FILE]
    rewrite(yaml.safe_dump({"schedules": [entry("hourly")]}), 3000)
    fixed = book.current()
    assert ([s.name for s in fixed.schedules], fixed.errors) == (["hourly"], {})


def test_a_file_missing_at_start_runs_nothing_and_says_so(tmp_path: Path):
    book = ScheduleBook(str(tmp_path / "absent.yaml"), reload_seconds=10)
    found = book.current()
    assert found.schedules == ()
    assert "absent.yaml" in found.errors[FILE]
