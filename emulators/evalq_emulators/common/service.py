"""The part every JSON emulator shares: counters, faults and the control plane's views,
behind one lock; each service adds its routes, its errors and its runs."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..agentcore.config import FaultConfig
from .faults import FAULT_KINDS, Fault, FaultPlan, parse_faults
from .messages import Reply, Request


class JsonService(ABC):
    #: The service's operations (names in ``calls`` and in fault ``operations``).
    operations: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        faults: FaultConfig | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self.seed = seed
        self.clock = clock
        self._startup_faults = parse_faults((faults or FaultConfig()).to_dict(), self.operations)
        self.lock = threading.RLock()
        self._reset_counters()

    # --- what each service defines -------------------------------------------------

    @abstractmethod
    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """The operation and path parameters of a call, None for an unknown route."""

    @abstractmethod
    def authenticate(self, request: Request) -> None:
        """Raise ``ServiceError`` with the service's 401 when the credentials are wrong."""

    @abstractmethod
    def serve(self, operation: str, params: dict[str, str], request: Request) -> Reply:
        """Serve one call (raise ``ServiceError`` for an error answer)."""

    @abstractmethod
    def unknown_route(self, request: Request) -> Reply: ...

    @abstractmethod
    def fault_reply(self, kind: str, operation: str | None) -> Reply:
        """The answer of an injected ``throttle`` or ``server_error``."""

    @abstractmethod
    def job_views(self) -> list[dict[str, Any]]:
        """Every run ever created, with its timeline (``GET /_emulator/jobs``)."""

    @abstractmethod
    def job_counts(self) -> dict[str, int]:
        """Runs by status, ``deleted`` included."""

    @abstractmethod
    def forget_jobs(self) -> None: ...

    def control(self, method: str, name: str, request: Request) -> Reply | None:
        """A control-plane call of this service's own (``/_emulator/<name>``), or None."""
        return None

    # --- emulated time ---------------------------------------------------------------

    def real_seconds(self, emulated: float) -> float:
        return emulated / self.time_scale

    # --- control plane -----------------------------------------------------------------

    def _reset_counters(self) -> None:
        self._faults = FaultPlan(parse_faults(self._startup_faults.to_dict(), self.operations),
                                 self.seed)  # fmt: skip
        self.calls: Counter[str] = Counter({op: 0 for op in self.operations})
        self.fault_counts: Counter[str] = Counter({kind: 0 for kind in FAULT_KINDS})
        self.throttled = 0
        self.max_active = 0
        self.total_jobs = 0

    def reset(self) -> None:
        """Forget every run and counter; faults go back to the start-up configuration."""
        with self.lock:
            self.forget_jobs()
            self._reset_counters()

    def set_faults(self, doc: Any) -> FaultConfig:
        config = parse_faults(doc, self.operations)
        with self.lock:
            self._faults = FaultPlan(config, self.seed)
        return config

    def fault_config(self) -> FaultConfig:
        with self.lock:
            return self._faults.config

    def begin_call(self, operation: str | None) -> Fault:
        with self.lock:
            if operation is None:
                return Fault()
            self.calls[operation] += 1
            fault = self._faults.decide(operation)
            self.fault_counts.update(fault.kinds)
            if fault.error == "throttle":
                self.throttled += 1
            return fault

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "throttled": self.throttled,
                "faults": dict(self.fault_counts),
                "jobs": {"total": self.total_jobs, "by_status": self.job_counts()},
                "max_active": self.max_active,
            }

    def jobs(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.job_views()
