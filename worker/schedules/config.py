"""``EVALQ_SCHEDULES_FILE``: the evaluations evalq submits itself, and when::

    schedules:
      - name: nightly-safety          # [a-z0-9-], unique
        cron: "0 2 * * *"             # or every: 3600 (seconds)
        timezone: Europe/Paris        # optional (cron only), an IANA name; default UTC
        catch_up: latest              # latest (default) | all | none
        request: {...}                # an EvaluationRequest without request_id

Each entry is checked on its own: one that is wrong is refused with the entry and the
field named, and the others are taken. A file that cannot be read at all raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSimError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from api_contracts import EvaluationRequest, describe_validation_error
from worker.config_files import read_data
from worker.schedules.slots import CatchUp, Cron, Every, Spec, slot_request_id

#: A schedule's name: it starts its request ids and its producer name, and both must fit
#: (a producer name is at most 64 characters: ``schedule.`` and 55).
ScheduleName = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,53}[a-z0-9])?$")]

#: Requests of a schedule come from this producer unless the entry names another. The
#: contract's producer names take no colon, so ``schedule.NAME``, not ``schedule:NAME``.
PRODUCER_PREFIX = "schedule."

#: The ``errors`` label of a file that does not load at all (``book.ScheduleBook``).
FILE = "file"

#: Fields of an entry's request that evalq sets for each slot.
_PER_SLOT = ("request_id", "submitted_at")


class ScheduleEntry(BaseModel):
    """One entry of the file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ScheduleName
    cron: str | None = None
    every: Annotated[StrictInt, Field(ge=1)] | None = None
    timezone: str | None = None
    catch_up: CatchUp = CatchUp.LATEST
    request: dict[str, Any]

    @model_validator(mode="after")
    def _one_timing(self) -> Self:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron (5 fields) and every (seconds)")
        if self.every is not None and self.timezone is not None:
            raise ValueError("timezone applies to cron only (every counts from the epoch, UTC)")
        return self


@dataclass(frozen=True)
class Schedule:
    """A schedule in force: its slots and the request each slot submits."""

    name: str
    spec: Spec
    catch_up: CatchUp
    #: The request every slot sends, without ``request_id`` (``producer`` filled in).
    request: dict[str, Any]

    @property
    def producer(self) -> str:
        return str(self.request["producer"])

    def request_for(self, request_id: str, submitted_at: str) -> dict[str, Any]:
        return {**self.request, "request_id": request_id, "submitted_at": submitted_at}


@dataclass(frozen=True)
class ScheduleSet:
    """The schedules a file holds, and the entries it refused (label -> why)."""

    schedules: tuple[Schedule, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    #: Names of refused entries that have one (their records are kept: docs/schedules.md).
    refused_names: frozenset[str] = frozenset()

    def get(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name), None)


def load_schedules(path: str) -> ScheduleSet:
    """The schedules of the file at ``path``; raises ValueError if it is not a schedules
    file at all (not YAML or JSON, no ``schedules`` list)."""
    data = read_data(Path(path)) or {}
    if not isinstance(data, dict) or set(data) - {"schedules"}:
        raise ValueError(f"{path}: expected a mapping with one key, schedules")
    entries = data.get("schedules") or []
    if not isinstance(entries, list):
        raise ValueError(f"{path}: schedules must be a list")
    return _decide(entries)


def _decide(entries: list[Any]) -> ScheduleSet:
    taken: list[Schedule] = []
    errors: dict[str, str] = {}
    refused: set[str] = set()
    for index, raw in enumerate(entries):
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"schedules[{index}]" + (f" {name}" if isinstance(name, str) else "")
        try:
            schedule = parse_entry(raw)
        except ValueError as exc:
            errors[label] = str(exc)
            if isinstance(name, str):
                refused.add(name)
            continue
        if any(s.name == schedule.name for s in taken):
            errors[label] = f"name: {schedule.name!r} is taken by an earlier entry"
            continue
        taken.append(schedule)
    return ScheduleSet(tuple(taken), errors, frozenset(refused - {s.name for s in taken}))


def parse_entry(raw: Any) -> Schedule:
    """One entry as a schedule; ValueError naming each field that is wrong."""
    try:
        entry = ScheduleEntry.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None
    return Schedule(entry.name, _spec(entry), entry.catch_up, _request(entry))


def _spec(entry: ScheduleEntry) -> Spec:
    if entry.every is not None:
        return Every(entry.every)
    assert entry.cron is not None
    if len(entry.cron.split()) != 5:
        raise ValueError(f"cron: {entry.cron!r} must have 5 fields (minute to day of week)")
    try:
        zone = ZoneInfo(entry.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: {entry.timezone!r} is not an IANA time zone") from None
    spec = Cron(entry.cron, zone)
    try:
        spec.next_after(0)
    except CronSimError as exc:
        raise ValueError(f"cron: {entry.cron!r}: {exc}") from None
    if spec.period <= 0:
        raise ValueError(f"cron: {entry.cron!r} has no slots")
    return spec


def _request(entry: ScheduleEntry) -> dict[str, Any]:
    given = [f for f in _PER_SLOT if f in entry.request]
    if given:
        raise ValueError(f"request.{given[0]}: set by evalq for each slot; leave it out")
    request = {"producer": f"{PRODUCER_PREFIX}{entry.name}", **entry.request}
    # Checked as the slots will send it: the longest request id a slot has, this one.
    example = {**request, "request_id": slot_request_id(entry.name, 253402300799)}
    try:
        EvaluationRequest.model_validate(example)
    except ValidationError as exc:
        lines = describe_validation_error(exc).splitlines()
        raise ValueError("\n".join(f"request.{line}" for line in lines)) from None
    return request
