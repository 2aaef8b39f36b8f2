"""``evalq jobs stop`` and ``evalq jobs delete``: ops stop or delete one job with the
service's own rules (stop before delete, delete only an ended remote job)."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.unit.conftest import reconfigure
from tests.unit.driving import calls, faults, run_until, submit
from worker.cli import jobs_cmd
from worker.cli.main import app
from worker.jobs.advance import advance
from worker.jobs.states import JobState

runner = CliRunner()


@pytest.fixture
def cli(services, monkeypatch):
    monkeypatch.setattr(jobs_cmd, "services", lambda: services)
    monkeypatch.setattr(jobs_cmd, "console", Console(width=250))
    reconfigure(services, watch_by_list=False, delete_rate=1000, stop_rate=1000)
    return services


def test_a_running_job_is_stopped_then_deleted(cli, emulator, clock):
    submit(cli, tags={"emulator:duration": "1000000000000"})
    assert advance(cli, "r1") == "started"

    refused = runner.invoke(app, ["jobs", "delete", "r1"])
    assert refused.exit_code == 1
    assert "stop it first (evalq jobs stop ID)" in refused.output
    assert calls(emulator)["DeleteBatchEvaluation"] == 0

    stopped = runner.invoke(app, ["jobs", "stop", "r1"])
    assert stopped.exit_code == 0, stopped.output
    assert "stopping: its remote job is being stopped" in stopped.output
    run_until(cli, "r1", JobState.PUBLISHED, clock)
    ((outcome, _),) = cli.publisher.published
    assert (outcome.status, outcome.error) == ("CANCELLED", "stopped by ops: stopped")

    deleted = runner.invoke(app, ["jobs", "delete", "r1"])
    assert deleted.exit_code == 0, deleted.output
    assert "deleted" in deleted.output
    assert cli.store.get("r1").state == JobState.DELETED
    made = calls(emulator)
    assert (made["StopBatchEvaluation"], made["DeleteBatchEvaluation"]) == (1, 1)


def test_a_refused_delete_is_explained(cli, emulator, clock):
    submit(cli, retention_seconds=3600)
    run_until(cli, "r1", JobState.PUBLISHED, clock)
    faults(emulator, {"errors": {"ConflictException": 1.0},
                      "operations": ["DeleteBatchEvaluation"]})  # fmt: skip
    refused = runner.invoke(app, ["jobs", "delete", "r1"])
    assert refused.exit_code == 1
    assert "the service refused (409)" in refused.output
    assert cli.store.get("r1").state == JobState.PUBLISHED


def test_an_unknown_job_is_said_so(cli):
    result = runner.invoke(app, ["jobs", "stop", "nope", "--producer", "p"])
    assert result.exit_code == 1
    assert "no job 'nope' of producer 'p'" in result.output
