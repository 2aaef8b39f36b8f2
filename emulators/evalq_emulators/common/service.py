"""The part every emulated service shares: counters, faults and the control plane's
views, behind one lock; each service (AgentCore, Aymara, Agno) adds its routes, its
errors and its jobs."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from .faults import FAULT_KINDS, Fault, FaultConfig, FaultPlan, StreamFault, parse_faults
from .messages import Reply, Request, Stream


class Service(ABC):
    #: The service's operations (names in ``calls`` and in fault ``operations``).
    operations: tuple[str, ...] = ()
    #: Injected answers that count as throttling in ``throttled``.
    throttle_errors: frozenset[str] = frozenset({"throttle"})
    #: Check the caller's credentials before the call is counted and its faults rolled
    #: (AgentCore), instead of after its faults (Aymara and Agno, as their servers do).
    authenticate_first: bool = False

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        faults: FaultConfig | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.seed = seed
        #: The service's time (its jobs' timelines), and how it waits out an emulated
        #: duration a call takes (a synchronous run, a stream's pace): the wall clock and
        #: ``time.sleep``, or a test's manual clock and what moves it on (one clock for
        #: the test and its emulators, no real waits).
        self.clock = clock
        self.sleep = sleep
        self._startup_faults = self.parse_faults((faults or FaultConfig()).to_dict())
        self.lock = threading.RLock()
        #: Notified when the last call being served ends (``wait_idle``).
        self._idle = threading.Condition(self.lock)
        self._reset_counters()

    # --- what each service defines -------------------------------------------------

    @abstractmethod
    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """The operation and path parameters of a call, None for an unknown route."""

    @abstractmethod
    def authenticate(self, request: Request) -> None:
        """Raise ``ServiceError`` with the service's 401/403 when the credentials are wrong."""

    @abstractmethod
    def serve(self, operation: str, params: dict[str, str], request: Request) -> Reply | Stream:
        """Serve one call (raise ``ServiceError`` for an error answer)."""

    @abstractmethod
    def unknown_route(self, request: Request) -> Reply:
        """The answer to a call no route takes (raise ``ServiceError`` to refuse it first)."""

    @abstractmethod
    def fault_reply(self, kind: str, operation: str) -> Reply:
        """The answer of an injected error: ``throttle``, ``server_error`` or one of
        :attr:`error_names`."""

    @abstractmethod
    def job_views(self) -> list[dict[str, Any]]:
        """Every job ever created, with its timeline (``GET /_emulator/jobs``)."""

    @abstractmethod
    def job_counts(self) -> dict[str, int]:
        """Jobs by status, deleted ones included."""

    @abstractmethod
    def forget_jobs(self) -> None:
        """Forget every job (``reset``); the lock is held."""

    @property
    def error_names(self) -> Collection[str]:
        """Fault ``errors`` this service can answer: the exceptions it models (none:
        ``errors`` is refused)."""
        return ()

    def intercept(self, request: Request) -> Reply | None:
        """A call answered outside the API and its faults (AgentCore: STS), or None."""
        return None

    def internal_error(self, operation: str) -> Reply:
        """The answer when serving a call failed (an emulator bug)."""
        return self.fault_reply("server_error", operation)

    def answer_lost(self, reply: Reply | Stream) -> None:
        """A ``lost_response`` fault served the call and drops ``reply``."""
        if isinstance(reply, Stream):
            reply.on_end("lost_response")

    def control(self, method: str, name: str, request: Request) -> Reply | None:
        """A control-plane call of this service's own (``/_emulator/<name>``), or None."""
        return None

    def extra_stats(self) -> dict[str, Any]:
        """Members of ``GET /_emulator/stats`` of this service's own; the lock is held."""
        return {}

    # --- emulated time ---------------------------------------------------------------

    def real_seconds(self, emulated: float) -> float:
        return emulated / self.time_scale

    # --- faults ------------------------------------------------------------------------

    def parse_faults(self, doc: Any) -> FaultConfig:
        """``doc`` as this service's fault configuration (``FaultConfigError`` if not)."""
        return parse_faults(doc, self.operations, self.error_names)

    def begin_call(self, operation: str) -> Fault:
        """Count the call and roll the fault dice for it."""
        with self.lock:
            self.calls[operation] += 1
            fault = self._faults.decide(operation)
            self.fault_counts.update(fault.kinds)
            if fault.error in self.throttle_errors:
                self.throttled += 1
            return fault

    def roll_stream_fault(self, operation: str) -> StreamFault:
        """Whether the event stream of ``operation`` breaks or ends in an error."""
        with self.lock:
            fault, kinds = self._faults.decide_stream(operation)
            self.fault_counts.update(kinds)
            return fault

    def roll_update_failure(self, operation: str) -> bool:
        """Whether an accepted update of ``operation`` ends failed."""
        with self.lock:
            failed = self._faults.decide_update_failure(operation)
            if failed:
                self.fault_counts["update_failed"] += 1
            return failed

    # --- control plane -----------------------------------------------------------------

    def _reset_counters(self) -> None:
        # A copy, so POST /_emulator/faults never alters the start-up configuration.
        self._faults = FaultPlan(self.parse_faults(self._startup_faults.to_dict()), self.seed)
        self.calls: Counter[str] = Counter({op: 0 for op in self.operations})
        self.fault_counts: Counter[str] = Counter({kind: 0 for kind in FAULT_KINDS})
        self.throttled = 0
        self.max_active = 0
        self.total_jobs = 0
        self.in_flight = 0

    def reset(self) -> None:
        """Forget every job and counter; faults go back to the start-up configuration."""
        with self.lock:
            self.forget_jobs()
            self._reset_counters()

    def set_faults(self, doc: Any) -> FaultConfig:
        config = self.parse_faults(doc)
        with self.lock:
            self._faults.config = config
        return config

    def served(self, delta: int) -> None:
        """An API call began (+1) or its answer (or stream) ended (-1)."""
        with self.lock:
            self.in_flight += delta
            if self.in_flight <= 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (real time) until no call is being served, e.g. one its client gave up on;
        False if one still is after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: self.in_flight <= 0, timeout)

    def fault_config(self) -> FaultConfig:
        with self.lock:
            return self._faults.config

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "throttled": self.throttled,
                "faults": dict(self.fault_counts),
                "jobs": {"total": self.total_jobs, "by_status": self.job_counts()},
                "max_active": self.max_active,
                # Calls being served now: a test reads what the service holds at 0.
                "in_flight": self.in_flight,
                **self.extra_stats(),
            }

    def jobs(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.job_views()
