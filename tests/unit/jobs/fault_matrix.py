"""The fault matrix: for every backend, every remote call evalq makes, from every state it
makes it, and every error the service documents for that call, how the job ends.

The table (:data:`CASES`) is the law ``tests/unit/jobs/test_fault_matrix.py`` proves
against the emulators and renders into ``docs/failures.md`` for ops
(``python -m tests.unit.jobs.fault_matrix --doc > docs/failures.md``; a test fails when
the committed page and this table differ).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from worker.jobs.states import REPLAY_MOVES, JobState, Move


@dataclass(frozen=True)
class Call:
    """One remote call, made from one state."""

    backend: str
    #: The operation as the service (and its emulator's ``calls``) names it.
    operation: str
    #: The job state the call is made from.
    state: str
    #: When evalq makes it, in ops' words.
    when: str
    #: The target's listing watches its running jobs (``EVALQ_WATCH_BY_LIST``, the
    #: default while the account's pages are fewer than its running jobs); else each
    #: job polls on its own.
    watch: bool = False

    @property
    def at_deadline(self) -> bool:
        """The call is made at the job's deadline (a stop, or a delete in its stead)."""
        return "deadline" in self.when

    @property
    def settle(self) -> bool:
        """The call is the lookup after a create whose answer never came."""
        return "lookup" in self.when


@dataclass(frozen=True)
class Fault:
    """One error class, as the emulator injects it on every call of the operation."""

    name: str
    #: What the service means by it (the docs' words).
    meaning: str
    #: The ``POST /_emulator/faults`` document, without ``operations``.
    doc: dict[str, Any] = field(hash=False)
    #: Only the first call of the operation meets it (a timeout: the same class as a
    #: lost answer, made once so the matrix waits for one read timeout, not four).
    once: bool = False


def _error(name: str, meaning: str) -> Fault:
    return Fault(name, meaning, {"errors": {name: 1.0}})


def _status(status: str, meaning: str) -> Fault:
    return Fault(status, meaning, {"errors": {status: 1.0}})


LOST = Fault("lost answer", "the call is served, the answer never arrives", {"lost_response": 1.0})
TIMEOUT = Fault(
    "timeout",
    "no answer within the client's read timeout (served later)",
    {"latency_rate": 1.0},
    once=True,
)

#: AWS exceptions as botocore's service model lists them per operation.
AWS = {
    "ThrottlingException": _error("ThrottlingException", "429: slow down"),
    "InternalServerException": _error("InternalServerException", "500: the service failed"),
    "ValidationException": _error("ValidationException", "400: the parameters are invalid"),
    "UnauthorizedException": _error("UnauthorizedException", "401: credentials refused"),
    "AccessDeniedException": _error("AccessDeniedException", "403: IAM denies the action"),
    "ResourceNotFoundException": _error("ResourceNotFoundException", "404: no such resource"),
    "ConflictException": _error("ConflictException", "409: the resource's state forbids it"),
    "ServiceQuotaExceededException": _error(
        "ServiceQuotaExceededException", "402: an account quota is full"
    ),
    "RuntimeClientError": _error("RuntimeClientError", "424: the agent's runtime failed"),
}
#: The error answers of Aymara and Agno AgentOS (docs/backends.md); 429 is Aymara's
#: ``quota.limit_exceeded``, the only quota it documents.
HTTP = {
    "400": _status("400", "the request is invalid"),
    "401": _status("401", "the key is missing or wrong"),
    "403": _status("403", "the key may not do this"),
    "404": _status("404", "no such run (or eval, agent, database on a create)"),
    "404:organization": _status("404:organization", "Aymara: the key's organization is missing"),
    "404:workspace": _status("404:workspace", "Aymara: the workspace named is missing"),
    "409": _status("409", "the run's state forbids it"),
    "422": _status("422", "the body does not validate"),
    "429": Fault("429", "throttled (Aymara: quota.limit_exceeded)", {"throttle": 1.0}),
    "500": Fault("500", "the service failed", {"server_error": 1.0}),
    "503": _status("503", "the service is unavailable"),
}


#: The errors botocore's service model lists for each operation evalq calls (a test
#: compares them with the model).
MODEL_ERRORS: dict[str, tuple[str, ...]] = {
    "StartBatchEvaluation": (
        "UnauthorizedException",
        "ValidationException",
        "AccessDeniedException",
        "ConflictException",
        "ServiceQuotaExceededException",
        "ThrottlingException",
        "InternalServerException",
    ),
    "GetBatchEvaluation": (
        "UnauthorizedException",
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ThrottlingException",
        "InternalServerException",
    ),
    "ListBatchEvaluations": (
        "UnauthorizedException",
        "ValidationException",
        "AccessDeniedException",
        "ThrottlingException",
        "InternalServerException",
    ),
    "StopBatchEvaluation": (
        "UnauthorizedException",
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ConflictException",
        "ThrottlingException",
        "InternalServerException",
    ),
    "DeleteBatchEvaluation": (
        "UnauthorizedException",
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ConflictException",
        "ThrottlingException",
        "InternalServerException",
    ),
    "InvokeHarness": (
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
        "RuntimeClientError",
        "ThrottlingException",
        "InternalServerException",
    ),
    "GetEvaluator": (
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ThrottlingException",
        "InternalServerException",
    ),
    "UpdateEvaluator": (
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ConflictException",
        "ServiceQuotaExceededException",
        "ThrottlingException",
        "InternalServerException",
    ),
}
#: Aymara's and AgentOS's error answers (AgentOS has no organization or workspace).
AYMARA_ERRORS = tuple(HTTP)
AGNO_ERRORS = tuple(name for name in HTTP if ":" not in name)
#: Every backend's transport failures, on every call.
TRANSPORT = (LOST.name, TIMEOUT.name)


def fault(name: str) -> Fault:
    return {**AWS, **HTTP, LOST.name: LOST, TIMEOUT.name: TIMEOUT}[name]


@dataclass(frozen=True)
class End:
    """How a job whose call meets a fault ends, and what a replay of its dead letter
    does (the fault gone by then)."""

    #: What evalq does, in ops' words.
    does: str
    #: The outcome published on the way (before any dead letter), if one is.
    outcome: str | None = None
    #: The dead letter's reason, if the job becomes one.
    dead: str | None = None
    #: The state it dies in (None: the call's own).
    died_in: str | None = None
    #: What its replay ends in: the outcome it publishes, ``deleted`` (its remote job is
    #: deleted, the outcome it had stands).
    replay: str | None = None

    def outcomes(self) -> list[str]:
        """Every outcome status the request publishes, in order."""
        replayed = self.replay if self.replay and self.replay.isupper() else None
        return [status for status in (self.outcome, replayed) if status]


def refused(reason: str, replay: str, **more: str) -> End:
    return End("a dead letter at once", dead=reason, replay=replay, **more)


def retried(replay: str, **more: str) -> End:
    return End(
        "retried within the retry budget, then a dead letter",
        dead="retries_exhausted",
        replay=replay,
        **more,
    )


def throttled(replay: str, **more: str) -> End:
    return End(
        "throttled: backs off without spending an attempt, within the budget's "
        "time, then a dead letter",
        dead="retries_exhausted",
        replay=replay,
        **more,
    )


def ends(outcome: str, does: str) -> End:
    return End(does, outcome=outcome)


ONCE = "retried: the job goes on"
#: AgentCore's permanent refusals and their dead letters' reasons.
_REFUSED = {
    "UnauthorizedException": "unauthorized",
    "ValidationException": "remote_validation",
    "AccessDeniedException": "access_denied",
    "ConflictException": "remote_conflict",
}


def agentcore(operation: str, replay: str, **more: End) -> dict[str, End]:
    """The ends of an AgentCore call, for each error its operation documents: refusals
    are dead letters, the rest is retried; ``more`` for the call's own."""
    usual = {name: refused(reason, replay) for name, reason in _REFUSED.items()}
    usual |= {
        "ResourceNotFoundException": refused("invalid_request", replay),
        "ThrottlingException": throttled(replay),
        "InternalServerException": retried(replay),
        "lost answer": retried(replay),
        "timeout": ends(replay, ONCE) if replay.isupper() else End(ONCE),
    }
    return _documented((*MODEL_ERRORS[operation], *TRANSPORT), usual | more, more)


def _documented(
    names: tuple[str, ...], known: dict[str, End], more: dict[str, End]
) -> dict[str, End]:
    unknown = set(more) - set(names)
    assert not unknown, f"ends for errors the call does not document: {sorted(unknown)}"
    return {name: known[name] for name in names}


#: Aymara's and AgentOS's refusals and their dead letters' reasons (docs/backends.md).
_HTTP_REFUSED = {
    "400": "invalid_request",
    "401": "unauthorized",
    "403": "unauthorized",
    "404": "invalid_request",
    "404:organization": "unauthorized",
    "404:workspace": "invalid_request",
    "409": "remote_conflict",
    "422": "invalid_request",
}


def http(backend: str, replay: str, **more: End) -> dict[str, End]:
    """The ends of an Aymara or AgentOS call, for each error its service documents."""
    usual = {name: refused(reason, replay) for name, reason in _HTTP_REFUSED.items()}
    usual |= {
        "429": throttled(replay),
        "500": retried(replay),
        "503": retried(replay),
        "lost answer": retried(replay),
        "timeout": ends(replay, ONCE) if replay.isupper() else End(ONCE),
    }
    names = AYMARA_ERRORS if backend == "aymara" else AGNO_ERRORS
    return _documented((*names, *TRANSPORT), usual | more, more)


VANISHED = ends("FAILED", "the remote job is taken for gone: outcome FAILED")
GONE = End("counts as deleted")
LOOKED_UP = ends("COMPLETED", "its run is looked up by name and adopted: one run")
REMADE = End("the delete was made: its retry meets 404, counted as deleted")
DELETE_REFUSED = End(
    "tried again every poll_max (each a stall; where the service can stop one, the remote "
    "job is asked to stop first) within the retry budget's time, then a dead letter",
    dead="remote_conflict",
    replay="deleted",
)
DELETED = "deleted"
_ITEM_LEFT_OUT = ends("FAILED", "the item is left out; with no item left: outcome FAILED")

#: Every call, from every state, with the errors its service documents for it (for
#: AgentCore, botocore's model of the operation; a test compares them), and how each ends.
CALLS: dict[Call, dict[str, End]] = {
    Call("agentcore", "StartBatchEvaluation", "ADMITTED", "the start"): agentcore(
        "StartBatchEvaluation",
        "COMPLETED",
        ServiceQuotaExceededException=ends(
            "EXPIRED",
            "back-pressure: back to the front of the backlog, admission paused "
            "quota_backoff; started again at each admission until its deadline",
        ),
    ),
    Call("agentcore", "GetBatchEvaluation", "RUNNING", "a poll"): agentcore(
        "GetBatchEvaluation", "COMPLETED", ResourceNotFoundException=VANISHED
    ),
    Call("agentcore", "ListBatchEvaluations", "RUNNING", "the watch's listing", True): {
        name: ends("COMPLETED", "no listing this tick: each job polls on its own")
        for name in (*MODEL_ERRORS["ListBatchEvaluations"], *TRANSPORT)
    },
    Call("agentcore", "StopBatchEvaluation", "RUNNING", "the stop at the deadline", True): (
        agentcore(
            "StopBatchEvaluation",
            "EXPIRED",
            ResourceNotFoundException=End(
                "taken for gone: outcome FAILED; its delete after retention is refused while "
                "the remote job runs on, and asks for a stop (refused too, as every stop "
                "here), within the retry budget's time; then a dead letter",
                outcome="FAILED",
                dead="remote_conflict",
                died_in="PUBLISHED",
                replay=DELETED,
            ),
            ConflictException=End(
                "STOPPING: the stop is asked again at each poll, each gap as long as the stop "
                "has taken so far, within the retry budget's time; then a dead letter",
                dead="remote_conflict",
                died_in="STOPPING",
                replay="EXPIRED",
            ),
            **{"lost answer": ends("EXPIRED", "the stop was made: its poll sees it stopped")},
        )
    ),
    Call("agentcore", "GetBatchEvaluation", "STOPPING", "a poll after the stop", True): (
        agentcore("GetBatchEvaluation", "EXPIRED", ResourceNotFoundException=VANISHED)
    ),
    Call("agentcore", "DeleteBatchEvaluation", "PUBLISHED", "the delete after retention"): (
        agentcore(
            "DeleteBatchEvaluation",
            DELETED,
            ResourceNotFoundException=GONE,
            ConflictException=DELETE_REFUSED,
            **{"lost answer": REMADE},
        )
    ),
    Call("agentcore", "InvokeHarness", "PREPARING", "a scenario item's call"): agentcore(
        "InvokeHarness",
        "COMPLETED",
        ValidationException=_ITEM_LEFT_OUT,
        AccessDeniedException=_ITEM_LEFT_OUT,
        ResourceNotFoundException=_ITEM_LEFT_OUT,
        RuntimeClientError=_ITEM_LEFT_OUT,
        ServiceQuotaExceededException=ends(
            "FAILED",
            "the same session again after quota_backoff, within the item's "
            "retries; then the item is left out: outcome FAILED",
        ),
        ThrottlingException=ends(
            "EXPIRED",
            "the same session again, backing off without spending a retry, "
            "until the request's deadline: outcome EXPIRED",
        ),
        InternalServerException=ends(
            "FAILED", "the same session again within the item's retries; then outcome FAILED"
        ),
        **{
            "lost answer": ends(
                "FAILED",
                "a new session (the lost one may have been used) within the item's "
                "retries; then outcome FAILED",
            ),
            "timeout": ends(
                "COMPLETED", "a new session (the timed-out one may have been used); the run goes on"
            ),
        },
    ),
    Call("agentcore", "GetEvaluator", "DRAINING", "the check before the update"): agentcore(
        "GetEvaluator", "UPDATED"
    ),
    Call("agentcore", "UpdateEvaluator", "DRAINING", "the update"): agentcore(
        "UpdateEvaluator",
        "UPDATED",
        ServiceQuotaExceededException=ends(
            "UPDATE_FAILED",
            "waits on its own timer, quota_backoff doubling, then ends "
            "UPDATE_FAILED after rollout_quota_max_waits refusals",
        ),
    ),
    Call("agentcore", "GetEvaluator", "UPDATING", "a poll of the update"): agentcore(
        "GetEvaluator", "UPDATED"
    ),
    Call("aymara", "CreateEvalRun", "ADMITTED", "the create"): http(
        "aymara", "COMPLETED", **{"lost answer": LOOKED_UP, "timeout": LOOKED_UP}
    ),
    Call("aymara", "ListEvalRuns", "ADMITTED", "the lookup by name after a lost create"): http(
        "aymara", "COMPLETED"
    ),
    Call("aymara", "GetEvalRun", "RUNNING", "a poll"): http(
        "aymara", "COMPLETED", **{"404": VANISHED}
    ),
    Call("aymara", "ListEvalRunResponses", "RUNNING", "the read of a finished run"): http(
        "aymara", "COMPLETED", **{"404": VANISHED}
    ),
    Call("aymara", "DeleteEvalRun", "RUNNING", "the delete at the deadline"): http(
        "aymara",
        "EXPIRED",
        **{
            "404": ends("EXPIRED", "counts as deleted: outcome EXPIRED"),
            "409": End(
                "outcome EXPIRED, retention cut to nothing; the delete is tried again every "
                "poll_max within the retry budget's time, then a dead letter",
                outcome="EXPIRED",
                dead="remote_conflict",
                died_in="PUBLISHED",
                replay=DELETED,
            ),
            "lost answer": ends(
                "EXPIRED",
                "the delete was made: its retry meets 404, counted as deleted: outcome EXPIRED",
            ),
        },
    ),
    Call("aymara", "DeleteEvalRun", "PUBLISHED", "the delete after retention"): http(
        "aymara", DELETED, **{"404": GONE, "409": DELETE_REFUSED, "lost answer": REMADE}
    ),
    Call("agno", "RunEval", "ADMITTED", "the synchronous run"): http(
        "agno", "COMPLETED", **{"lost answer": LOOKED_UP, "timeout": LOOKED_UP}
    ),
    Call("agno", "ListEvalRuns", "ADMITTED", "the lookup by name after a lost run"): http(
        "agno", "COMPLETED"
    ),
    Call("agno", "GetEvalRun", "RUNNING", "the read of the stored run"): http(
        "agno", "COMPLETED", **{"404": VANISHED}
    ),
    Call("agno", "DeleteEvalRuns", "RUNNING", "the delete at the deadline"): http(
        "agno",
        "EXPIRED",
        **{
            "409": End(
                "outcome EXPIRED, retention cut to nothing; the janitor's bulk delete is refused: "
                "a dead letter",
                outcome="EXPIRED",
                dead="remote_conflict",
                died_in="PUBLISHED",
                replay=DELETED,
            )
        },
    ),
    Call("agno", "DeleteEvalRuns", "PUBLISHED", "the janitor's bulk delete"): http(
        "agno",
        DELETED,
        **{
            name: End(
                "tried again by each janitor sweep within the retry budget's time, then "
                "a dead letter",
                dead="retries_exhausted",
                replay=DELETED,
            )
            for name in ("429", "500", "503")
        },
        **{
            "lost answer": End(
                "the delete was made: the next sweep's listing no longer shows "
                "the run, which is marked deleted"
            )
        },
    ),
}


@dataclass(frozen=True)
class Case:
    call: Call
    fault: Fault
    end: End

    @property
    def id(self) -> str:
        call = self.call
        return f"{call.backend}-{call.operation}-{call.state}-{self.fault.name}".replace(" ", "_")


CASES = [
    Case(call, fault(name), end)
    for call, by_error in CALLS.items()
    for name, end in by_error.items()
]


# -- docs/failures.md ------------------------------------------------------------------------
BACKENDS = {"agentcore": "AgentCore", "aymara": "Aymara", "agno": "Agno AgentOS"}
#: What a replay does for a job that died in each state (``states.REPLAY_MOVES``).
REPLAYS = {
    Move.REPLAY: "back to the backlog, then started again",
    Move.RESUME: "resumes its remote job (polls it; stops it past its deadline)",
    Move.REPUBLISH: "publishes its outcome again",
    Move.RETRY_DELETE: "deletes its remote job again",
    Move.REPLAY_SCENARIOS: "runs its scenario items again",
    Move.REPLAY_ROLLOUT: "drains and updates again",
    Move.RESUME_UPDATE: "reads its update again",
}
#: How a replay started again makes its remote job, per backend.
RESTARTS = {
    "agentcore": " (the same clientToken: the same remote job)",
    "aymara": " (a create whose answer never came is looked up by name first)",
    "agno": " (a run whose answer never came is looked up by name first)",
}
INTRO = """\
# Failures: what evalq does when a remote call fails

<!-- Generated by `python -m tests.unit.jobs.fault_matrix --doc > docs/failures.md` from
the case table in tests/unit/jobs/fault_matrix.py; do not edit by hand. -->

For every backend, every remote call evalq makes, from every job state it makes it, and
every error the service documents for that call, this page says what evalq does and how
the job ends: an outcome (its status), or a dead letter (its reason, and the state the
job died in), and what `evalq dlq replay` of that dead letter does once the cause is
gone. `tests/unit/jobs/test_fault_matrix.py` proves every row: it brings a job to the
state, has the emulator answer **every** such call with the error (a timeout: only the
first call), drives the job as beat and the workers would until it ends, and checks the
end, that it took a bounded number of steps and remote calls, that the request published
one outcome, and that the service holds at most one remote job for it, replay included.
A test fails when this page and the table differ.

Budgets ([dead letters](dead-letters.md), [settings](../README.md#configuration)):

* **retried within the retry budget**: at most `EVALQ_RETRY_MAX_ATTEMPTS` attempts and
  `EVALQ_RETRY_MAX_SECONDS` since the first failure, the backoff doubling from
  `EVALQ_RETRY_INITIAL` to `EVALQ_RETRY_MAX` (never sooner than a `Retry-After`); then a
  dead letter `retries_exhausted`.
* **throttled**: spends no attempt, but backs off as much (by the job's firings in a row
  that moved nothing) and counts against the budget's time.
* **back-pressure** (AgentCore's 402 on a start): back to the front of the backlog,
  admission paused `EVALQ_QUOTA_BACKOFF`; never a dead letter; a request still waiting
  at its deadline ends `EXPIRED`.
* **a dead letter at once**: the service refused the call for good; replay once the
  cause (IAM, credentials, the request) is fixed.

Every replay below takes the job back where it died (`states.REPLAY_MOVES`), so a
request never gets a second remote job. "deleted": the replay deletes the remote job;
the outcome published before stands.
"""


def _end(call: Call, end: End) -> str:
    parts = [f"outcome {end.outcome}"] if end.outcome else []
    if end.dead:
        parts.append(f"dead letter `{end.dead}` ({end.died_in or call.state})")
    return "; ".join(parts) or ("remote job deleted" if call.state == "PUBLISHED" else "-")


def _replay(call: Call, end: End) -> str:
    if not end.dead:
        return ""
    move = REPLAY_MOVES[JobState(end.died_in or call.state)]
    how = REPLAYS[move] + (RESTARTS[call.backend] if move == Move.REPLAY else "")
    return f"{move.value}: {how} -> {end.replay or ''}"


def render() -> str:
    """``docs/failures.md``: the case table, call by call."""
    lines = [INTRO]
    size = (
        f"{len(CASES)} cases: {len(BACKENDS)} backends, "
        f"{len({(c.backend, c.operation) for c in CALLS})} operations made from "
        f"{len({c.state for c in CALLS})} states in {len(CALLS)} (operation, state) calls, "
        f"each meeting every error its service documents for it "
        f"({len({c.fault.name for c in CASES})} error classes in all)."
    )
    lines += [size, ""]
    for backend, title in BACKENDS.items():
        lines += [f"## {title}", ""]
        for call, by_error in CALLS.items():
            if call.backend != backend:
                continue
            watched = " (watched by the target's listing)" if call.watch else ""
            lines += [
                f"### {call.operation} from {call.state}: {call.when}{watched}",
                "",
                "| error | what it means | what evalq does | end | replay |",
                "|---|---|---|---|---|",
            ]
            for name, end in by_error.items():
                meaning = fault(name).meaning
                lines.append(
                    f"| {name} | {meaning} | {end.does} | {_end(call, end)} | "
                    f"{_replay(call, end)} |"
                )
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv != ["--doc"]:
        print("usage: python -m tests.unit.jobs.fault_matrix --doc", file=sys.stderr)
        return 2
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
