"""The job store's Lua scripts (``scripts/*.lua``), with the state table rendered in.

No script names a state: ``-- include: state_table`` renders, from
``worker.jobs.states``, ``MOVES`` ("move:from" -> to), ``REPLAYS`` (the state a dead job
died in -> the move its replay takes) and ``ROLES`` ("role:state" -> true
for the state sets that Redis indexes follow: slot, backlog, retained, trimmable,
draining; and preparing, the state whose scenario items may run), read
through ``target(move, state)`` and ``is(role, state)``. Both tables are flat: a script
builds them on every call, and two tables cost a third of what one per move did.
"""

from __future__ import annotations

from typing import Any

from api_contracts import OutcomeStatus
from worker.jobs import states
from worker.lua import Script, load_scripts

#: The error of a request that waited in the backlog past its deadline.
BACKLOG_EXPIRY_ERROR = "deadline passed while the request waited in the backlog"


#: The state sets Lua reads, by the role name ``is()`` takes.
ROLES = {
    "slot": states.SLOT_STATES,
    "backlog": states.BACKLOG_STATES,
    "retained": states.RETAINED_STATES,
    "trimmable": states.TRIMMABLE_STATES,
    "draining": states.DRAINING_STATES,
    "preparing": states.PREPARING_STATES,
    "dead": states.DEAD_STATES,
}


def render_state_table() -> str:
    moves = ", ".join(
        f"[{_string(move.value + ':' + (source or ''))}] = {_string(target.value)}"
        for move, edges in states.MOVES.items()
        for source, target in edges.items()
    )
    roles = ", ".join(
        f"[{_string(f'{role}:{state.value}')}] = true"
        for role, members in ROLES.items()
        for state in sorted(members)
    )
    replays = ", ".join(
        f"[{_string(state.value)}] = {_string(move.value)}"
        for state, move in states.REPLAY_MOVES.items()
    )
    expiry = (
        f"{{status = {_string(OutcomeStatus.EXPIRED.value)}, "
        f"error = {_string(BACKLOG_EXPIRY_ERROR)}}}"
    )
    return "\n".join(
        [
            "-- rendered from worker/jobs/states.py",
            f"local MOVES = {{{moves}}}",
            f"local ROLES = {{{roles}}}",
            f"local REPLAYS = {{{replays}}}",
            f"local BACKLOG_EXPIRY = {expiry}",
            "-- The state `move` leads to from `state` (nil: the move does not start there).",
            "local function target(move, state) return MOVES[move .. ':' .. state] end",
            "-- Whether `state` (nil or '' for no record) is one of the role's states.",
            "local function is(role, state) return ROLES[role .. ':' .. (state or '')] end",
            "-- The move a replay takes for a job that died in `state` (nil: none known).",
            "local function replay_move(state) return REPLAYS[state or ''] end",
        ]
    )


def load_job_scripts(client: Any) -> dict[str, Script]:
    return load_scripts(client, "worker.jobs", {"state_table": render_state_table()})


def _string(text: str) -> str:
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"not rendered into Lua: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
