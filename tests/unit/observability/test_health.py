"""``evalq health`` reads its settings itself: they must stay those of ``Settings``."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from worker.observability import health
from worker.settings import Settings


def test_its_defaults_are_the_settings_defaults():
    defaults = Settings.model_fields
    for name, value in health.DEFAULTS.items():
        expected = defaults[name].default
        if name == "heartbeat_dir":
            assert Path(expected) == Path(tempfile.gettempdir())
            assert health.heartbeat_path(value, "worker", "n").parent == Path(expected)
        elif expected is None:
            assert value == "", name
        else:
            assert type(expected)(value) == expected, name


def test_it_reads_settings_as_pydantic_settings_does(monkeypatch):
    monkeypatch.setenv("evalq_redis_url", "redis://elsewhere:1/2")  # case-insensitive
    assert health.setting("redis_url") == Settings().redis_url == "redis://elsewhere:1/2"


def test_heartbeat_files_are_named_per_role_and_node(tmp_path):
    path = health.heartbeat_path(tmp_path, "worker", "evalq@pod/../x")
    assert path.parent == tmp_path
    assert path.name == "evalq-worker-evalq@pod_.._x.heartbeat"


def test_a_stale_or_missing_heartbeat_fails(tmp_path):
    path = tmp_path / "hb"
    assert "no heartbeat file" in (health.check_heartbeat(path, 10) or "")
    path.touch()
    assert health.check_heartbeat(path, 10) is None
    old = time.time() - 60
    import os

    os.utime(path, (old, old))
    assert "old" in (health.check_heartbeat(path, 10) or "")


def test_an_unknown_broker_scheme_is_a_failure_not_a_pass():
    assert health.check_broker("sqs://queue", 0.1) == "cannot check a 'sqs' broker"


@pytest.mark.parametrize("args", [["--worker", "--beat"], ["--bogus"]])
def test_bad_arguments_exit_with_an_error(args):
    with pytest.raises(SystemExit) as exit_info:
        health.main(args)
    assert exit_info.value.code == 2
