"""``evalq schedules`` and ``evalq schedules run`` over fakeredis (sends are recorded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.unit.conftest import reconfigure
from tests.unit.schedules.test_runner import START, every, make_runner, run_for, write
from worker.cli import schedules_cmd
from worker.cli.main import app
from worker.schedules.slots import utc_iso

runner = CliRunner()


@pytest.fixture
def sent(services, tmp_path: Path, monkeypatch) -> list[dict[str, Any]]:
    """The CLI wired to the unit-test stores and a schedules file; what it sends."""
    import worker.runtime.app as celery_app
    import worker.runtime.root as root

    path = tmp_path / "schedules.yaml"
    write(path, every("every5"), {**every("nightly"), "every": None, "cron": "0 2 * * *"},
          every("broken", seconds=0))  # fmt: skip
    reconfigure(services, schedules_file=str(path))
    recorded: list[dict[str, Any]] = []
    monkeypatch.setattr(root, "services", lambda: services)
    monkeypatch.setattr(celery_app, "send_to_intake", lambda r, h=None: recorded.append(r))
    monkeypatch.setattr(schedules_cmd, "console", Console(width=250))
    return recorded


def test_schedules_shows_next_and_last_slot_the_jobs_state_and_refusals(services, sent):
    schedules = make_runner(services, Path(services.settings.schedules_file or ""))
    schedules.run()
    run_for(services, [schedules], 10)
    result = runner.invoke(app, ["schedules", "--json"])
    assert result.exit_code == 1  # an entry is refused
    lines = [json.loads(text) for text in result.output.splitlines()]
    every5, nightly, broken = lines
    assert every5["name"] == "every5"
    assert every5["timing"] == "every 5s"
    assert every5["producer"] == "schedule.every5"
    assert every5["last_slot"] == utc_iso(START + 10)
    assert every5["next_slot"] == utc_iso(START + 15)
    assert every5["last_request_id"] == f"every5-{utc_iso(START + 10)}"
    assert every5["job_state"] == "ADMITTED"  # the unit tests' workers take no steps
    assert (every5["last_outcome"], every5["pending"]) == ("created", 0)
    assert nightly["timing"] == "cron 0 2 * * * (UTC)"
    assert nightly["last_slot"] is None
    assert nightly["next_slot"].endswith("T02:00:00Z")
    assert broken == {
        "entry": "schedules[2] broken",
        "error": "every: Input should be greater than or equal to 1",
    }
    table = runner.invoke(app, ["schedules"])
    assert "every5" in table.output
    assert "refused schedules[2] broken: every: Input should be" in table.output


def test_run_submits_now_with_a_request_id_that_says_so(services, sent):
    result = runner.invoke(app, ["schedules", "run", "nightly"])
    assert result.exit_code == 0, result.output
    (request,) = sent
    assert request["request_id"].startswith("nightly-manual-")
    assert request["request_id"].endswith("Z")
    assert request["producer"] == "schedule.nightly"
    assert f"sent {request['request_id']}" in result.output

    refused = runner.invoke(app, ["schedules", "run", "broken"])
    assert refused.exit_code == 1
    assert "no schedule 'broken' in force: every: Input should be" in refused.output
    unknown = runner.invoke(app, ["schedules", "run", "weekly"])
    assert "(have: every5, nightly)" in unknown.output
    assert len(sent) == 1
