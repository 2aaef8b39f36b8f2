"""``evals.schedules``: hand each schedule's due slots to intake, each slot once.

Beat sends the task every ``EVALQ_SCHEDULES_INTERVAL``; whichever worker runs it plans
every schedule from its record and the clock, claims the due slots atomically, and calls
``intake.accept`` with each slot's request, as ``evals.submit`` would: the same checks,
the producer's policy, routing, and the request id's idempotency. Intake runs right here
rather than behind a message on ``evals.requests`` so that a slot is claimed, registered
and recorded (with its job id, for ``evalq schedules``) by one task: there is no message
in between that a crash or a purge could lose after the claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
import structlog
from celery.exceptions import SoftTimeLimitExceeded

from worker import task_names
from worker.jobs import intake
from worker.jobs.services import Services
from worker.schedules import slots
from worker.schedules.book import ScheduleBook
from worker.schedules.config import Schedule
from worker.schedules.state import Record, ScheduleState
from worker.settings import Settings

log = structlog.stdlib.get_logger("evalq.schedules")

#: Failures where nothing was decided (the job store or the network away, the time limit):
#: the slot is sent again once its claim's lease runs out.
TRANSIENT = (OSError, redis.exceptions.RedisError, SoftTimeLimitExceeded)

#: A claim's pending slots are taken over by another run this long after the hard time
#: limit of the task that claimed them: that task is dead by then, never still sending.
_LEASE_MARGIN = 5.0


@dataclass
class RunReport:
    """What one run did (the task's return value)."""

    submitted: int = 0
    missed: int = 0
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim_lease(settings: Settings) -> float:
    return settings.store_task_time_limit + _LEASE_MARGIN


class ScheduleRunner:
    def __init__(self, svc: Services, book: ScheduleBook, state: ScheduleState) -> None:
        self.svc = svc
        self.book = book
        self.state = state

    def run(self) -> RunReport:
        """One pass over every schedule in force."""
        schedules = self.book.current()
        self.state.publish(schedules)
        now = self.svc.clock()
        records = self.state.read(s.name for s in schedules.schedules)
        report = RunReport()
        for schedule in schedules.schedules:
            try:
                self._run_one(schedule, records[schedule.name], now, report)
            except Exception:
                # One schedule's failure holds no other back; its claimed slots wait for
                # the lease and are sent again by a later run.
                log.exception("schedule run failed", schedule=schedule.name)
                report.failed.append(schedule.name)
        return report

    def _run_one(self, schedule: Schedule, record: Record, now: float, report: RunReport) -> None:
        if record.pending:
            # Slots claimed and not all handed to intake: another run is at it, or died.
            stale = record.pending_at is None or now - record.pending_at >= self._lease
            if stale and self.state.take_over(schedule.name, record.pending_at, now):
                log.warning("schedule slots taken over", schedule=schedule.name,
                            slots=[slots.utc_iso(s) for s in record.pending])  # fmt: skip
                self._submit(schedule.name, record.pending, report)
            return
        settings = self.svc.settings
        plan = slots.plan(schedule.spec, schedule.catch_up, record.cursor, now,
                          grace=settings.schedule_grace_seconds,
                          limit=settings.schedule_catch_up_limit)  # fmt: skip
        if plan is None:
            return
        sent_at = slots.utc_iso(now)
        requests = {
            slot: schedule.request_for(slots.slot_request_id(schedule.name, slot), sent_at)
            for slot in plan.submit
        }
        if not self.state.claim(schedule.name, record.cursor, plan, requests, now):
            return  # another run (a second beat's, a redelivery) claimed them first
        report.missed += plan.missed
        if plan.missed:
            log.warning("schedule slots missed", schedule=schedule.name, missed=plan.missed,
                        catch_up=schedule.catch_up.value)  # fmt: skip
        self._submit(schedule.name, requests, report)

    def _submit(self, name: str, requests: Mapping[int, dict[str, Any]], report: RunReport
                ) -> None:  # fmt: skip
        for slot, request in sorted(requests.items()):
            try:
                result = intake.accept(self.svc, request, broker_user=self._sender)
            except TRANSIENT:
                raise  # nothing decided: the slot stays claimed and is sent again after the lease
            except Exception as exc:
                # A bug, or a request no check foresaw: sent again it would fail again and
                # hold the schedule's later slots back for good. A dead letter ends it.
                log.exception("schedule slot failed; dead-lettered", schedule=name)
                result = intake.refuse_unexpected(self.svc, request, task_names.SUBMIT, exc)
            request_id = str(request["request_id"])
            if self.state.settle(name, slot, request_id, result.request_id, result.outcome.value):
                report.submitted += 1
            log.info("schedule slot submitted", schedule=name, slot=slots.utc_iso(slot),
                     request_id=request_id, outcome=result.outcome.value)  # fmt: skip

    @property
    def _lease(self) -> float:
        return claim_lease(self.svc.settings)

    @property
    def _sender(self) -> str | None:
        """evalq's own broker user on RabbitMQ, as if it had sent the request itself (a
        producers file with ``broker_users`` for a schedule's producer names it)."""
        settings = self.svc.settings
        return settings.broker_user if settings.broker_is_amqp else None
