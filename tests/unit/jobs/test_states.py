"""The state table is the law: every job script, run from every state, moves a job only
along the edges of the moves it names; no Lua source holds a state name; Python cannot
write a state except by a move."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from worker.jobs.items_store import ScenarioItems
from worker.jobs.states import ALLOWED_TRANSITIONS, MOVES, REPLAY_MOVES, JobState, Move, sources
from worker.jobs.store import JobStore, Ref
from worker.keys import Keys
from worker.lua import read_script, script_names

NOW = 1_800_000_000.0
STARTS: list[JobState | None] = [None, *JobState]
EVALUATOR = "judge-a1b2c3d4e5"
#: Every variant of a record a script may meet: deadline passed or not, remote id or not,
#: a request with scenarios (its sessions ready or not), an evaluator rollout.
VARIANTS = [
    {"deadline_at": NOW - 10, "batch_evaluation_id": ""},
    {"deadline_at": NOW + 1000, "batch_evaluation_id": ""},
    {"deadline_at": NOW + 1000, "batch_evaluation_id": "b-1"},
    {"deadline_at": NOW + 1000, "batch_evaluation_id": "", "scenario_items": "4",
     "evaluators": f"Builtin.Helpfulness,{EVALUATOR}"},
    {"deadline_at": NOW + 1000, "batch_evaluation_id": "", "scenario_items": "4",
     "prepared_at": str(NOW - 5)},
    {"deadline_at": NOW + 1000, "batch_evaluation_id": "", "kind": "rollout",
     "evaluator_id": EVALUATOR, "drain_evaluator": EVALUATOR},
    # Where a dead job died (a replay takes it back there: states.REPLAY_MOVES).
    *({"deadline_at": NOW + 1000, "batch_evaluation_id": "b-1", "dead_from": died}
      for died in ("RUNNING", "FINISHED", "PUBLISHED")),
    {"deadline_at": NOW + 1000, "batch_evaluation_id": "", "kind": "rollout",
     "evaluator_id": EVALUATOR, "drain_evaluator": EVALUATOR, "dead_from": "UPDATING"},
]  # fmt: skip
#: Scenario items in every status the item scripts meet.
ITEMS = {
    "0": {"status": "dispatched", "attempt": 0, "sessions": 0, "failures": 0, "not_before": 0},
    "1": {"status": "invoking", "attempt": 0, "sessions": 1, "failures": 0, "not_before": 0},
    "2": {"status": "waiting", "attempt": 1, "sessions": 1, "failures": 1, "not_before": 0},
    "3": {"status": "ended", "attempt": 0, "sessions": 1, "failures": 0, "not_before": 0,
          "ended_at": NOW - 1, "stop_reason": "end_turn", "session_id": "s"},
}  # fmt: skip


def _lua_files() -> list[Path]:
    return sorted(Path(str(files("worker"))).rglob("*.lua"))


def _seed(store: JobStore, start: JobState | None, variant: dict[str, Any]) -> None:
    """A record of request "r" in state ``start`` (none for None), in every index a
    script could find it through: backlog, turns, slots, timers, published."""
    keys, r = store.keys, store.redis
    if start is not None:
        r.hset(
            keys.job("r"),
            mapping={
                "request_id": "r",
                "state": start.value,
                "producer": "p",
                "priority": "0",
                "payload_hash": "h",
                "published_at": str(NOW - 100),
                "retention_seconds": "10",
                "remote_name": "evalq_r",
                "dead_letter_id": "gone",
                **{k: str(v) for k, v in variant.items()},
            },
        )
    r.rpush(keys.target("default").backlog("p", 0), "r")
    r.zadd(keys.target("default").backlog_turns(0), {"p": 0})
    r.sadd(keys.target("default").active, "r")
    r.zadd(keys.due, {"r": NOW})
    r.zadd(keys.target("default").published_by_time, {"r": NOW - 100})
    r.zadd(keys.target("default").queued_by_deadline, {"r": float(variant["deadline_at"])})
    r.hset(keys.scenario_items("r"), mapping={i: json.dumps(v) for i, v in ITEMS.items()})
    r.zadd(keys.target("default").invocations, {"r|0|0": NOW - 100, "r|1|0": NOW - 1000})
    r.zadd(keys.target("default").invocations_ready, {"r|2|1": 2})
    r.hset(keys.target("default").draining_evaluators, EVALUATOR, 1)
    r.rpush(keys.target("default").held, "r")
    r.zadd(keys.dead_jobs, {"r": NOW - 100})  # its dead letter (none here) is gone


def _state(store: JobStore) -> JobState | None:
    """The record's state; None when there is no record."""
    value = store.redis.hget(store.keys.job("r"), "state")
    return None if value is None else JobState(value)


def _fixed(store: JobStore, **more: str) -> dict[str, str]:
    return {
        **store.keys.fixed,
        **store.keys.target("default").fixed,
        "job": store.keys.job("r"),
        **more,
    }


def _backlog(store: JobStore) -> dict[str, str]:
    target = store.keys.target("default")
    return {"backlog": target.backlog("p", 0), "backlog_turns": target.backlog_turns(0)}


def _run_register(store: JobStore, payload_hash: str, first: str = "create") -> None:
    keys = _fixed(
        store,
        backlog=store.keys.target("default").backlog("p", 0),
        backlog_turns=store.keys.target("default").backlog_turns(0),
    )
    args = {
        "request_id": "r", "payload_hash": payload_hash, "producer": "p", "now": NOW,
        "first": first, "metric_labels": "agentcore|default", "job_prefix": store.keys.job(""),
        "scoped_remote_name": "", "backlog_prefix": store.keys.target("default").backlog_prefix,
        "backlog_cap": 1000, "highest_priority": 9,
    }  # fmt: skip
    fields = ["request_id", "r", "producer", "p", "priority", "0", "deadline_at", str(NOW + 60)]
    store.scripts["register"](keys, args, [*fields, "payload_hash", payload_hash])


def _prefix(store: JobStore) -> str:
    return store.keys.job("")


def _items(store: JobStore) -> dict[str, str]:
    return _fixed(store, items=store.keys.scenario_items("r"))


def _sweep(store: JobStore) -> Any:
    args = {
        "request_id": "r", "count": 5, "now": NOW, "stale_after": 30, "resend_after": 30,
        "max_failures": 1, "ingestion_delay": 5, "deadline": NOW + 1000,
    }  # fmt: skip
    return store.scripts["sweep_items"](_items(store), args)


def _claim(store: JobStore, index: int) -> Any:
    args = {"index": index, "attempt": 0, "session_id": "s", "now": NOW,
            "member": f"r|{index}|0"}  # fmt: skip
    return store.scripts["claim_invocation"](_items(store), args)


def _record(store: JobStore, index: int, result: str) -> Any:
    args = {
        "request_id": "r", "index": index, "attempt": 0, "member": f"r|{index}|0",
        "now": NOW, "result": result, "stop_reason": "end_turn", "why": "e",
        "not_before": NOW + 1, "spends": 1, "max_failures": 1,
    }  # fmt: skip
    return store.scripts["record_invocation"](_items(store), args)


def _transition_by(move: Move) -> Callable[[JobStore], Any]:
    args = {"request_id": "r", "move_name": move.value, "expected": "", "due_at": ""}
    return lambda s: s.scripts["transition"](_fixed(s), args, [])


#: How to run each job script on request "r" (some scripts in more than one way).
DRIVERS: dict[str, list[Callable[[JobStore], Any]]] = {
    "register": [
        lambda s: _run_register(s, "h"), lambda s: _run_register(s, "other"),
        lambda s: _run_register(s, "h", "prepare"), lambda s: _run_register(s, "h", "roll_out"),
    ],
    "enqueue": [
        lambda s: s.scripts["enqueue"](_fixed(s, **_backlog(s)),
                                       {"request_id": "r", "producer": "p"}, ["scenarios", "[]"])
    ],
    "sweep_items": [_sweep],
    "dispatch_invocations": [
        lambda s: ScenarioItems(s).dispatch("default", now=NOW, limit=5, stale_after=30.0)
    ],
    "claim_invocation": [lambda s: _claim(s, 0), lambda s: _claim(s, 1)],
    "record_invocation": [
        (lambda s, result=result: _record(s, 1, result))
        for result in ("ended", "retry", "interrupted", "failed")
    ],
    "admit": [
        lambda s: s.admit("default", now=NOW, quota=5),
    ],
    "expire_queued": [lambda s: s.expire_queued("default", ["r"], now=NOW)],
    "requeue": [
        lambda s: s.scripts["requeue"](
            _fixed(s, **_backlog(s)),
            {"request_id": "r", "producer": "p", "now": NOW, "pause_until": NOW + 5},
        )
    ],
    "adopt": [
        lambda s: s.scripts["adopt"](
            _fixed(s), {"request_id": "r", "now": NOW}, ["batch_evaluation_id", "b-2"]
        )
    ],
    "claim_due": [lambda s: s.claim_due(now=NOW, horizon=1.0, lease=30.0, limit=10)],
    "repair_slots": [
        lambda s: s.scripts["repair_slots"](_fixed(s), {"now": NOW, "job_prefix": _prefix(s)},
                                            ["r"])
    ],
    "forget_dead": [
        lambda s: s.forget_dead(dead_letter_key=lambda e: f"t:dead:{e}", died_before=NOW,
                                limit=10),
    ],
    "survey": [lambda s: s.survey({"default": 2}, now=NOW)],
    "trim_records": [
        lambda s: s.scripts["trim_records"](_fixed(s), {"cutoff": NOW, "job_prefix": _prefix(s)},
                                            ["r"])
    ],
    "transition": [_transition_by(move) for move in Move],
}  # fmt: skip


def _moves_named(source: str) -> set[Move]:
    """The moves a script's text names; a script that takes the move as an argument
    (``move_name``) may make any."""
    if "move(request_id, job, move_name" in source:
        return set(Move)
    named = (
        re.findall(r"(?<![\w.])move\([^)]*?'(\w+)'", source)
        + re.findall(r"target\('(\w+)'", source)
        + re.findall(r"\bname = '(\w+)'", source)
    )
    moves = {Move(n) for n in named}
    if "replay_move(" in source:  # the move of states.REPLAY_MOVES, rendered in
        moves |= set(REPLAY_MOVES.values())
    return moves


def test_every_job_script_has_a_driver():
    assert set(script_names("worker.jobs")) == set(DRIVERS)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_a_script_moves_a_job_only_along_the_moves_it_names(name):
    source = read_script("worker.jobs", name, {"state_table": ""})
    if name == "transition":
        drivers = list(zip(DRIVERS[name], [{m} for m in Move], strict=True))
    else:
        drivers = [(drive, _moves_named(source)) for drive in DRIVERS[name]]
    # One store (its scripts rendered once), emptied before each case.
    store = JobStore(fakeredis.FakeRedis(decode_responses=True), Keys("t"))
    for drive, moves in drivers:
        allowed = {(s, t) for m in moves for s, t in MOVES[m].items()}
        for start in STARTS:
            for variant in VARIANTS:
                store.redis.flushall()
                _seed(store, start, variant)
                drive(store)
                after = _state(store)
                if start is not None and after is None:
                    # Only trimming removes a record, and only one whose outcome is out;
                    # and forgetting, only a dead one whose dead letter is gone.
                    removers = {"trim_records": (JobState.PUBLISHED, JobState.DELETED),
                                "forget_dead": (JobState.DEAD,)}  # fmt: skip
                    assert name in removers, (name, start)
                    assert start in removers[name], (name, start)
                    continue
                assert after == start or (start, after) in allowed, (name, start, after, variant)


def test_a_move_with_from_state_moves_only_from_that_state(store):
    for move in Move:
        for start in JobState:
            for claimed in sources(move):
                store.redis.flushall()
                _seed(store, start, VARIANTS[1])
                moved = store.transition(Ref("r", "default"), move, from_state=claimed)
                assert bool(moved) == (start == claimed), (move, start, claimed)
                assert _state(store) == (MOVES[move][start] if moved else start)
            if start not in sources(move):
                with pytest.raises(ValueError, match="does not start from"):
                    store.transition(Ref("r", "default"), move, from_state=start)


def test_no_lua_source_holds_a_state_name():
    names = re.compile(r"\b(" + "|".join(s.value for s in JobState) + r")\b")
    offenders = {
        str(path.relative_to(Path(str(files("worker"))))): names.findall(path.read_text())
        for path in _lua_files()
    }
    assert len(offenders) >= 15
    assert {path: found for path, found in offenders.items() if found} == {}


def test_only_the_moves_fragment_writes_a_state():
    writes = re.compile(r"HSET'?[^\n]*'state'")
    writers = [p.name for p in _lua_files() if writes.search(p.read_text())]
    assert writers == ["_moves.lua"]


def test_python_cannot_write_a_state_as_a_field(store):
    with pytest.raises(ValueError, match="by a move"):
        store.update("r", state="RUNNING")
    with pytest.raises(ValueError, match="by a move"):
        store.transition(Ref("r", "default"), Move.POLL, state="DELETED")


def test_the_table_reaches_every_state_and_ends_only_in_deleted():
    reachable, frontier = set(), {None}
    while frontier:
        state = frontier.pop()
        new = ALLOWED_TRANSITIONS[state] - reachable
        reachable |= new
        frontier |= new
    assert reachable == set(JobState)
    # Only DELETED has no way onward but itself (DEAD has replay and adoption).
    assert {s for s in JobState if ALLOWED_TRANSITIONS[s] <= {s}} == {JobState.DELETED}
