"""The Celery app's operational settings: events, time limits, acks on timeout."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker import task_names
from worker.runtime.app import allowed_tasks, app, create_app, synchronous_lease, time_limits
from worker.settings import Settings


def test_every_task_has_a_soft_and_a_hard_time_limit():
    import worker.runtime.dlq_tasks
    import worker.runtime.tasks  # noqa: F401  (registers the tasks)

    limits = time_limits(Settings())
    names = {name for name in app.tasks if name.startswith("evals.")}
    assert names == set(limits)
    for name in names:
        task = app.tasks[name]
        assert 0 < task.soft_time_limit < task.time_limit, name


def test_hard_limits_stay_inside_the_visibility_timeout_and_the_janitor_lock():
    settings = Settings()
    limits = time_limits(settings)
    # A synchronous run outlasts the visibility timeout: its job's lock outlasts the run.
    run = max(limits.pop(name)["time_limit"] for name in (task_names.RUN, task_names.INVOKE))
    assert settings.visibility_timeout < run < synchronous_lease(settings)
    hard = max(limit["time_limit"] for limit in limits.values())
    assert hard < settings.visibility_timeout
    assert settings.janitor_time_limit < settings.janitor_lock_seconds


def test_a_timed_out_message_goes_back_on_its_queue_and_events_are_sent():
    conf = create_app(Settings()).conf
    assert conf.task_acks_late
    assert conf.task_acks_on_timeout is False
    assert conf.worker_send_task_events
    assert conf.task_send_sent_event


@pytest.mark.parametrize(
    "values",
    [
        {"store_task_soft_time_limit": 40, "store_task_time_limit": 40},
        {"janitor_time_limit": 130, "janitor_lock_seconds": 120},
    ],
)
def test_limits_that_cannot_work_are_refused(values):
    with pytest.raises(ValidationError):
        Settings(**values)


def test_each_task_evalq_sends_goes_to_a_queue_whose_guard_runs_it():
    settings = Settings(schedules_file="/etc/evalq/schedules.yaml")
    created = create_app(settings)
    allowed = allowed_tasks(settings)
    routes = {name: created.amqp.router.route({}, name)["queue"].name
              for name in (*task_names.CONTROL, *task_names.SYNCHRONOUS)}  # fmt: skip
    for name, queue in routes.items():
        assert name in allowed[queue], (name, queue)
    # The clockwork has a lane of its own: job steps on the control queue do not queue
    # ahead of it.
    timers = {task_names.TICK, task_names.WATCH, task_names.SCHEDULES}
    assert {name for name, queue in routes.items() if queue == settings.timers_queue} == timers
    for entry in created.conf.beat_schedule.values():
        queue = entry["options"]["queue"]
        assert entry["task"] in allowed[queue]
        assert (queue == settings.timers_queue) == (entry["task"] in timers)
    assert set(allowed) == set(settings.worker_queues)


def test_a_watch_is_sent_on_the_timers_queue(monkeypatch):
    from worker.runtime import app as app_module
    from worker.runtime.dispatch import dispatch_watch

    sent: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(app_module.app, "send_task",
                        lambda name, **options: sent.append((name, options)))  # fmt: skip
    dispatch_watch("t1")
    [(name, options)] = sent
    assert (name, options["queue"], options["args"]) == (task_names.WATCH, "evals.timers", ["t1"])


def test_evalq_worker_becomes_celerys_own_command_line_on_evalqs_app(monkeypatch):
    """``evalq worker`` replaces itself with ``python -m celery``: the worker and its pool
    then hold no command-line libraries (typer, rich)."""
    import sys

    from typer.testing import CliRunner

    from worker.cli import main

    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(main.os, "execv", lambda path, argv: calls.append((path, argv)))
    result = CliRunner().invoke(main.app, ["worker", "-c", "3", "--queues", "evals.requests"])
    assert result.exit_code == 0, result.output
    [(path, argv)] = calls
    assert path == sys.executable
    assert argv[:6] == [sys.executable, "-m", "celery", "-A", "worker.runtime.app:app", "worker"]
    assert argv[argv.index("--queues") + 1] == "evals.requests"
    assert argv[argv.index("--concurrency") + 1] == "3"
    assert {"--without-gossip", "--without-mingle"} <= set(argv)
    # Short tasks only: a few messages in hand per process (on Redis too).
    assert argv[argv.index("--prefetch-multiplier") + 1] == "4"
    calls.clear()
    assert CliRunner().invoke(main.app, ["worker"]).exit_code == 0
    [(_, argv)] = calls
    assert argv[argv.index("--queues") + 1].split(",") == Settings().worker_queues
    assert argv[argv.index("--prefetch-multiplier") + 1] == "1"  # it serves synchronous runs
    # The app that Celery's command line loads is evalq's.
    module, name = main.CELERY_APP.split(":")
    assert getattr(__import__(module, fromlist=[name]), name) is app
