"""Lua scripts as files: keys and arguments by name, includes, and their checks."""

from __future__ import annotations

import fakeredis
import pytest

from worker.jobs.scripts import render_state_table
from worker.keys import Keys
from worker.lua import Script, expand, load_scripts, read_script, script_names

ECHO = """-- Echo what the script got, in order.
local first, second = unpack(KEYS)
local a, b = unpack(ARGV, 1, 2)
return {first, second, a, b, unpack(ARGV, 3)}
"""


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def test_keys_and_args_are_passed_by_name_in_the_files_order(client):
    echo = Script(client, "echo", ECHO)
    assert (echo.key_names, echo.arg_names, echo.variadic) == (
        ["first", "second"],
        ["a", "b"],
        True,
    )
    got = echo({"second": "k2", "first": "k1", "unused": "k3"}, {"b": "2", "a": "1"}, ["x", "y"])
    assert got == ["k1", "k2", "1", "2", "x", "y"]


@pytest.mark.parametrize(
    ("keys", "args", "rest"),
    [
        ({"first": "k1"}, {"a": 1, "b": 2}, []),  # a key missing
        ({"first": "k1", "second": "k2"}, {"a": 1}, []),  # an argument missing
        ({"first": "k1", "second": "k2"}, {"a": 1, "b": 2, "c": 3}, []),  # one too many
    ],
)
def test_a_call_that_does_not_fit_the_script_is_refused_before_redis(client, keys, args, rest):
    with pytest.raises(ValueError, match=r"echo\.lua takes KEYS \['first', 'second'\]"):
        Script(client, "echo", ECHO)(keys, args, rest)


def test_more_arguments_only_for_a_script_that_takes_them(client):
    fixed = Script(client, "fixed", "local k = unpack(KEYS)\nlocal a = unpack(ARGV)\nreturn a")
    assert fixed({"k": "x"}, {"a": "1"}) == "1"
    with pytest.raises(ValueError, match=r"got keys missing \[\], args \['a'\] \+ more"):
        fixed({"k": "x"}, {"a": "1"}, ["extra"])


def test_includes_expand_once_and_check_what_a_fragment_needs():
    jobs = read_script("worker.jobs", "admit", {"state_table": render_state_table()})
    assert "-- include:" not in jobs
    assert jobs.count("local function move(") == 1
    assert jobs.count("local MOVES = ") == 1
    assert jobs.count("local function target(") == 1
    needs_slots = "local due = unpack(KEYS)\n-- include: moves\n"
    with pytest.raises(ValueError, match=r"needs locals \['active'"):
        expand(needs_slots, "worker.jobs", {"state_table": ""})


def test_every_script_of_every_package_loads_and_runs_its_header(client):
    loaded = {
        package: load_scripts(client, package, {"state_table": render_state_table()})
        for package in ("worker.jobs", "worker.dead_letters", "worker.backends", "worker.schedules")
    }
    assert set(loaded["worker.jobs"]) == set(script_names("worker.jobs"))
    assert set(loaded["worker.dead_letters"]) == {"trim", "claim_replay"}
    assert set(loaded["worker.backends"]) == {"rate_limit"}
    assert set(loaded["worker.schedules"]) == {"claim", "settle", "take_over"}
    for scripts in loaded.values():
        for script in scripts.values():
            # Every key a script names is one of the key registry's, or a per-call one.
            per_call = {"job", "items", "backlog", "backlog_turns", "log", "schedule",
                        "schedule_pending"}  # fmt: skip
            registry = set(Keys().fixed) | set(Keys().target("t").fixed)
            assert set(script.key_names) <= registry | per_call, script.name
