"""The job store's Lua scripts (``scripts/*.lua``), with the state table rendered in.

No script names a state: each gets ``MOVES`` (move -> {from state -> to state}) and the
sets of states that Redis indexes follow (``SLOT``, ``BACKLOG``, ``RETAINED``,
``TRIMMABLE``), all rendered from ``worker.jobs.states`` by ``-- include: state_table``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api_contracts import OutcomeStatus
from worker.jobs import states
from worker.lua import Script, load_scripts

#: The error of a request that waited in the backlog past its deadline.
BACKLOG_EXPIRY_ERROR = "deadline passed while the request waited in the backlog"


def render_state_table() -> str:
    moves = ", ".join(
        f"{move.value} = {{{', '.join(_edge(s, t) for s, t in edges.items())}}}"
        for move, edges in states.MOVES.items()
    )
    return "\n".join(
        [
            "-- rendered from worker/jobs/states.py",
            f"local MOVES = {{{moves}}}",
            f"local SLOT = {_set(states.SLOT_STATES)}",
            f"local BACKLOG = {_set(states.BACKLOG_STATES)}",
            f"local RETAINED = {_set(states.RETAINED_STATES)}",
            f"local TRIMMABLE = {_set(states.TRIMMABLE_STATES)}",
            f"local BACKLOG_EXPIRY = {{status = {_string(OutcomeStatus.EXPIRED.value)}, "
            f"error = {_string(BACKLOG_EXPIRY_ERROR)}}}",
        ]
    )


def load_job_scripts(client: Any) -> dict[str, Script]:
    return load_scripts(client, "worker.jobs", {"state_table": render_state_table()})


def _edge(source: states.JobState | None, target: states.JobState) -> str:
    return f"[{_string(source or '')}] = {_string(target.value)}"


def _set(members: Iterable[states.JobState]) -> str:
    return "{" + ", ".join(f"[{_string(m.value)}] = true" for m in sorted(members)) + "}"


def _string(text: str) -> str:
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"not rendered into Lua: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
