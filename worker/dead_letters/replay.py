"""Replaying and purging dead letters (the logic behind ``evalq dlq`` and ``evals.dlq.*``).

A replay sends the original request through intake again: ``evals.submit`` (an evaluator
rollout: ``evals.evaluator.update``, :func:`intake_task`) by name on the control queue,
which producers cannot write, with one extra message header
``evalq_replay: "<dead_letter_id>:<token>"``. Before sending, the entry is marked with that
token. Intake honours the header only on a message from the control queue
(:func:`mark_of`), and settles a replay only if the entry still holds that token (one
atomic claim), so a forged or stale header settles nothing. Intake settles the replay
(``worker.runtime.intake``; the consumer's guard settles one it dead-letters unread):

* accepted (a new job, a dead job requeued, or a job that already exists): the entry leaves
  the store. The same request_id means the same clientToken, so a request that already has
  a remote job never gets a second one.
* rejected again: the failure is recorded as usual and its entry's replay count becomes
  one more than the replayed entry's (the token makes a redelivered message count once).

Until then the entry stays in the store, marked as replaying.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from api_contracts import DeadLetter
from worker import task_names
from worker.dead_letters.messages import (
    BASE64_MARKER,
    MAX_DEPTH,
    call_in_text,
    call_of,
    nesting_depth,
)
from worker.dead_letters.sizes import cut_of
from worker.dead_letters.store import DeadLetterStore, dead_letter_id

log = structlog.stdlib.get_logger("evalq.replay")

#: Message header that ties an intake message to the dead letter it replays.
REPLAY_HEADER = "evalq_replay"

#: A replay not settled after this long counts as lost (its message purged, or intake
#: failed before settling): ``--all`` sends it again.
IN_FLIGHT_SECONDS = 3600.0

#: Sends one request to intake (``evals.submit`` on the requests queue) with extra headers.
Send = Callable[[dict[str, Any], dict[str, str]], None]


class JobCopy(Protocol):
    """What a replay reads of a job record (``worker.jobs.record.Job``)."""

    @property
    def request_id(self) -> str: ...
    @property
    def payload_hash(self) -> str: ...
    @property
    def request(self) -> dict[str, Any]: ...


class JobCopies(Protocol):
    """The job store as a replay reads it (``worker.jobs.store.JobStore``)."""

    def get(self, request_id: str) -> JobCopy | None: ...


@dataclass(frozen=True)
class ReplayMark:
    dead_letter_id: str
    token: str

    def header(self) -> dict[str, str]:
        return {REPLAY_HEADER: f"{self.dead_letter_id}:{self.token}"}

    @classmethod
    def new(cls, entry_id: str, now: float | None = None) -> ReplayMark:
        sent_at = int(time.time() if now is None else now)
        return cls(entry_id, f"{sent_at}-{uuid.uuid4().hex}")

    @staticmethod
    def sent_at(token: str) -> float:
        """When the replay with ``token`` was sent (0 for a token of unknown form)."""
        stamp = token.partition("-")[0]
        return float(stamp) if stamp.isdigit() else 0.0

    @classmethod
    def from_header(cls, value: Any) -> ReplayMark | None:
        if not isinstance(value, str) or value.count(":") != 1:
            return None
        entry_id, token = value.split(":")
        return cls(entry_id, token) if entry_id and token else None


def mark_of(header: Any, queue: Any, *, replay_queue: str | None) -> ReplayMark | None:
    """The replay a message carries: only one from ``replay_queue`` (the control queue) may
    carry one. A header on a message from anywhere else (a producer's) is ignored; None
    for ``replay_queue`` takes it from any queue (tests without a broker)."""
    mark = ReplayMark.from_header(header)
    if mark is not None and replay_queue is not None and queue != replay_queue:
        log.warning("replay header ignored on a message from a producer's queue",
                    queue=queue, dead_letter_id=mark.dead_letter_id)  # fmt: skip
        return None
    return mark


@dataclass(frozen=True)
class Candidate:
    letter: DeadLetter
    #: The request a replay would send; None when there is none to send.
    request: dict[str, Any] | None
    #: Why the entry cannot be replayed as it is (None if it can).
    problem: str | None
    #: A replay was sent and intake has not settled it yet.
    in_flight: bool = False


@dataclass
class ReplayReport:
    dry_run: bool = False
    replayed: list[str] = field(default_factory=list)
    #: dead_letter_id -> why it cannot be replayed as it is.
    unreplayable: dict[str, str] = field(default_factory=dict)
    #: Skipped: a replay is already in flight.
    in_flight: list[str] = field(default_factory=list)
    #: Ids (or prefixes) asked for that name no entry.
    missing: list[str] = field(default_factory=list)
    #: Not replayed within the time budget (the caller continues with these).
    remaining: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "replayed": self.replayed,
            "unreplayable": self.unreplayable,
            "in_flight": self.in_flight,
            "missing": self.missing,
            "remaining": self.remaining,
        }


# -- what a replay sends -------------------------------------------------------------------
def intake_task(request: Any) -> str:
    """The intake task a request goes to: an evaluator rollout (it names an
    ``evaluator_id`` and an ``update``, which no evaluation request may carry) goes to
    ``evals.evaluator.update``, anything else to ``evals.submit``."""
    if isinstance(request, dict) and "evaluator_id" in request and "update" in request:
        return task_names.EVALUATOR_UPDATE
    return task_names.SUBMIT


def request_to_replay(letter: DeadLetter, jobs: JobCopies) -> tuple[dict[str, Any] | None, str]:
    """The request a replay of ``letter`` sends, or None and why there is none."""
    if letter.request_id:
        job = jobs.get(letter.request_id)
        # The entry is about exactly this job's payload: send the job's own copy (never
        # redacted, so it hashes the same and requeues the dead job).
        if job is not None and letter.dead_letter_id == dead_letter_id(
            letter.reason, job.request_id, job.payload_hash
        ):
            return job.request, ""
    original = letter.request
    if original is None:
        return None, "the entry keeps no request"
    if isinstance(original, str):
        return _request_in_text(original)
    call = call_of(original)
    if call is not None:  # a call with the wrong arguments, kept as {"args", "kwargs"}
        return _request_of_call(*call)
    return original, ""


def _request_in_text(text: str) -> tuple[dict[str, Any] | None, str]:
    """The request in a raw body kept as text, or None and why there is none."""
    cut = cut_of(text)
    if cut is not None:
        return None, f"it was cut to {cut[0]} of {cut[1]} bytes when stored (the rest is gone)"
    if text.startswith(BASE64_MARKER):
        return None, "its body is binary (kept base64-encoded) and never parsed"
    if nesting_depth(text) > MAX_DEPTH:
        return None, f"its body nests deeper than {MAX_DEPTH} levels"
    call = call_in_text(text)
    if call is None:
        return None, "its body never parsed as a task call"
    return _request_of_call(*call)


def _request_of_call(args: list[Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    if isinstance(kwargs.get("request"), dict):
        return kwargs["request"], ""
    if len(args) == 1 and isinstance(args[0], dict):
        return args[0], ""
    return None, "the message carries no request object to replay"


def candidate(letter: DeadLetter, jobs: JobCopies, in_flight: bool = False) -> Candidate:
    request, problem = request_to_replay(letter, jobs)
    return Candidate(letter, request, problem or None, in_flight)


def select(
    dead_letters: DeadLetterStore,
    jobs: JobCopies,
    *,
    ids: Iterable[str] = (),
    everything: bool = False,
    reason: str | None = None,
    until: float | None = None,
    now: float | None = None,
) -> tuple[list[Candidate], list[str]]:
    """Candidates for a replay (oldest failure first) and the asked-for ids not found.

    ``everything`` takes every entry (of ``reason``, failed at or before ``until``: a
    request that fails again during the replay is not picked up a second time). Entries
    whose replay was sent less than ``IN_FLIGHT_SECONDS`` ago are marked in flight."""
    now = time.time() if now is None else now
    marks = {
        entry_id
        for entry_id, token in dead_letters.replaying().items()
        if now - ReplayMark.sent_at(token) < IN_FLIGHT_SECONDS
    }
    found: list[Candidate] = []
    missing: list[str] = []
    if everything:
        for letter in dead_letters.iter(reason=reason, until=until, newest_first=False):
            found.append(candidate(letter, jobs, letter.dead_letter_id in marks))
        return found, missing
    for asked in ids:
        entry_id = dead_letters.resolve(asked)
        asked_for = dead_letters.get(entry_id) if entry_id else None
        if asked_for is None or (reason is not None and asked_for.reason != reason):
            missing.append(asked)
            continue
        found.append(candidate(asked_for, jobs, asked_for.dead_letter_id in marks))
    return found, missing


# -- sending -------------------------------------------------------------------------------
class Pacer:
    """Lets callers through at most ``rate`` times per second (never bursts)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self._next is not None and self._next > now:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def replay(
    dead_letters: DeadLetterStore,
    send: Send,
    candidates: Iterable[Candidate],
    *,
    rate: float,
    dry_run: bool = False,
    skip_in_flight: bool = False,
    budget_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayReport:
    """Send each replayable candidate through intake, ``rate`` per second.

    Entries without a request are reported, never sent. With ``skip_in_flight`` entries
    whose earlier replay is not settled yet are left alone. Past ``budget_seconds`` the
    rest is reported as ``remaining``."""
    report = ReplayReport(dry_run=dry_run)
    pacer = Pacer(rate, clock, sleep)
    started = clock()
    for item in candidates:
        entry_id = item.letter.dead_letter_id
        if item.request is None:
            report.unreplayable[entry_id] = item.problem or "nothing to replay"
        elif skip_in_flight and item.in_flight:
            report.in_flight.append(entry_id)
        elif budget_seconds is not None and clock() - started >= budget_seconds:
            report.remaining.append(entry_id)
        elif dry_run:
            report.replayed.append(entry_id)
        else:
            pacer.wait()
            _send_one(dead_letters, send, entry_id, item.request)
            report.replayed.append(entry_id)
    return report


def _send_one(
    dead_letters: DeadLetterStore, send: Send, entry_id: str, request: dict[str, Any]
) -> None:
    mark = ReplayMark.new(entry_id)
    dead_letters.mark_replaying(entry_id, mark.token)
    try:
        send(request, mark.header())
    except BaseException:
        dead_letters.unmark_replaying(entry_id, mark.token)
        raise


# -- settling (``worker.runtime.intake`` settles what intake did; the guard this) -------
def settle_rejected(
    dead_letters: DeadLetterStore, mark: ReplayMark | None, new_entry_id: str
) -> None:
    """The replayed request (if ``mark``) failed again and was recorded as
    ``new_entry_id``: raise its replay count, once (a redelivered message finds the mark
    gone)."""
    if mark is None or not dead_letters.unmark_replaying(mark.dead_letter_id, mark.token):
        return
    previous = dead_letters.get(mark.dead_letter_id)
    dead_letters.set_replay_count(new_entry_id, (previous.replay_count if previous else 0) + 1)
    if new_entry_id != mark.dead_letter_id:
        dead_letters.remove(mark.dead_letter_id)


# -- purging -------------------------------------------------------------------------------
def purge(
    dead_letters: DeadLetterStore,
    *,
    ids: Iterable[str] = (),
    everything: bool = False,
    older_than: float | None = None,
    now: float | None = None,
) -> tuple[int, list[str]]:
    """Drop entries: the given ids (or unique prefixes), all, or those whose last failure
    is more than ``older_than`` seconds ago. Returns (dropped, ids not found)."""
    if everything:
        return dead_letters.purge_all(), []
    if older_than is not None:
        cutoff = (time.time() if now is None else now) - older_than
        return dead_letters.purge_older_than(cutoff), []
    dropped, missing = 0, []
    for asked in ids:
        entry_id = dead_letters.resolve(asked)
        if entry_id is not None and dead_letters.remove(entry_id):
            dropped += 1
        else:
            missing.append(asked)
    return dropped, missing
