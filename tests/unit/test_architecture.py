"""The job store's boundary, checked over the source of ``worker/`` (issue 22, item 2).

* Only the job store's modules (:data:`STORE_MODULES`) name a job's Redis keys (every
  name of :class:`~worker.keys.Keys` and :class:`~worker.keys.TargetKeys` but the few of
  :data:`NOT_JOB_KEYS`), touch a store's Redis client or run a job script. The
  dead-letter store and the schedules' state keep keys of their own, not a job's: they
  may use their own client and scripts (:data:`OWN_STORES`).
* Only ``worker/jobs/moves.py`` moves a job (``JobStore.transition`` and the store's
  other moves: :data:`MOVE_METHODS`) and admits (``JobStore.admit``, or
  ``register(..., admit_quota=...)``): a move that frees a slot says so and that one
  place admits, so no caller can forget to.

A name is "of the keys" when the expression it is read from is named like keys
(``keys``, ``target_keys``, ``svc.keys``, ``target.keys``) or is a target's keys
(``keys.target(name)``); a store is an expression named like one (``store``,
``svc.store``, ``indexes``, ``items``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.keys import Keys, TargetKeys

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "worker"

#: The job store, split by concern: the only modules that name job keys or run job scripts.
_STORES = ("store", "store_base", "items_store", "janitor_store", "watch_store", "gauges_store")
STORE_MODULES = frozenset(f"worker/jobs/{name}.py" for name in _STORES)
#: Stores of other concerns, with keys and scripts of their own (not a job's).
OWN_STORES = frozenset({"worker/dead_letters/store.py", "worker/schedules/state.py"})
#: The one module that moves a job and admits.
MOVES_MODULE = "worker/jobs/moves.py"
#: The store's methods that move a job or admit: only moves.py calls them.
MOVE_METHODS = (
    "transition", "admit", "register", "register_rollout", "enqueue", "requeue",
    "expire_queued", "repair_slots", "adopt",
)  # fmt: skip

#: Names of Keys / TargetKeys that are not a job's: the key families themselves, dead
#: letters (their store), schedules (their state), metrics, heartbeats, the janitor's own
#: lock and report, the shared rate windows (``worker.backends.ratelimit``).
NOT_JOB_KEYS = frozenset({
    "fixed", "target", "prefix",
    "dead_letters", "dead_letter", "dead_letter_labels", "dead_letters_replaying",
    "schedule", "schedule_pending", "schedules", "schedule_errors", "metrics_schedule_slots",
    "metrics", "metrics_requests", "last_tick", "heartbeats",
    "janitor_lock", "janitor_state", "rate_limit",
})  # fmt: skip
#: Every key name a job's data lives under.
JOB_KEYS = frozenset(
    name
    for cls in (Keys, TargetKeys)
    for name in vars(cls)
    if not name.startswith("_") and name not in NOT_JOB_KEYS
)


def _name(node: ast.expr) -> str:
    """The last name of a receiver (``svc.store`` -> ``store``), or ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_keys(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "target" and _is_keys(node.func.value)  # keys.target(name)
    return "keys" in _name(node).lower()


def _is_store(node: ast.expr) -> bool:
    name = _name(node).lower()
    return name.endswith(("store", "indexes", "items"))


def _calls_store(func: ast.expr, methods: tuple[str, ...]) -> bool:
    """Whether ``func`` is one of a store's ``methods`` (``svc.store.admit``)."""
    return isinstance(func, ast.Attribute) and func.attr in methods and _is_store(func.value)


def violations(source: str, path: str) -> Iterator[str]:
    """What ``source`` (the module at ``path``, relative to the repository) does that
    only the job store's modules, or only ``moves.py``, may do."""
    in_store = path in STORE_MODULES
    own_store = path in OWN_STORES
    for node in ast.walk(ast.parse(source)):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and not in_store:
            if node.attr in JOB_KEYS and _is_keys(node.value):
                yield f"{where}: names the job key {node.attr!r}"
            if node.attr in ("scripts", "_scripts") and not own_store:
                yield f"{where}: runs scripts of a store ({ast.unparse(node)})"
            if node.attr == "redis" and _is_store(node.value):
                yield f"{where}: uses a store's Redis client ({ast.unparse(node)})"
        if isinstance(node, ast.Name) and node.id == "load_job_scripts" and not in_store:
            yield f"{where}: loads the job scripts"
        if isinstance(node, ast.Call) and path != MOVES_MODULE:
            func = node.func
            if _calls_store(func, MOVE_METHODS):
                yield f"{where}: calls {ast.unparse(func)} (only moves.py moves and admits)"
            if any(k.arg == "admit_quota" for k in node.keywords) and not in_store:
                yield f"{where}: admits through register (only moves.py admits)"


def _modules() -> Iterator[tuple[str, str]]:
    for file in sorted(WORKER.rglob("*.py")):
        yield file.relative_to(ROOT).as_posix(), file.read_text(encoding="utf-8")


def test_only_the_store_modules_name_job_keys_or_touch_the_store_client() -> None:
    found = [v for path, source in _modules() for v in violations(source, path)]
    assert found == []


def test_exactly_one_call_site_admits() -> None:
    calls = [
        f"{path}:{node.lineno}"
        for path, source in _modules()
        if path not in STORE_MODULES
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and _calls_store(node.func, ("admit",))
    ]
    assert len(calls) == 1, calls
    assert calls[0].startswith(MOVES_MODULE + ":"), calls


def test_the_store_modules_named_here_exist() -> None:
    assert {p for p, _ in _modules()} >= STORE_MODULES | OWN_STORES | {MOVES_MODULE}


@pytest.mark.parametrize(
    "line",
    [
        "svc.store.redis.set(target.keys.watching, 1)",
        "svc.keys.job(request_id)",
        "keys.target(name).active",
        "target_keys.backlog(producer, 0)",
        "store.scripts['admit']({}, {})",
        "svc.store.transition(job, Move.FINISH)",
        "svc.store.admit(target, now=now, quota=1)",
        "svc.store.register(request, admit_quota=5)",
        "items._scripts['x']",
        "indexes.adopt(request_id, remote, now=now)",
        "svc.store.requeue(job, now=now, pause_until=now)",
    ],
)
def test_each_kind_of_reach_through_is_caught(line: str) -> None:
    assert list(violations(line, "worker/jobs/steps.py"))


@pytest.mark.parametrize(
    "line",
    [
        "svc.keys.dead_letter(entry_id)",  # the dead-letter store's key
        "metrics.tick_done(svc.redis, svc.keys, now)",  # the process' client, metrics
        "job.scenario_items",  # a record's field, not a key
        "plan.remote_jobs",
        "svc.store.stalled(request_id)",  # a store's method
    ],
)
def test_what_is_not_a_reach_through(line: str) -> None:
    assert list(violations(line, "worker/jobs/steps.py")) == []
