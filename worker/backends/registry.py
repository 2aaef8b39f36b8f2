"""The targets a process serves, each with what it needs at run time.

A :class:`Target` joins a target's configuration, its Redis keys, its shared rate limits
and its backend (built on first use: a client is not cheap). :class:`Targets` holds them
by name, routes requests, and picks up a changed targets file within
``EVALQ_TARGETS_RELOAD_SECONDS``, so a target can be added without a restart
(docs/targets.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from api_contracts import EvaluationRequest, ReasonCode
from worker.backends.base import Backend
from worker.backends.ratelimit import OPERATIONS, Operation, SharedRateLimits
from worker.config_files import FileWatch
from worker.errors import PermanentError
from worker.keys import TargetKeys
from worker.settings import Settings
from worker.targets.config import TargetConfig, TargetSet, load_targets
from worker.targets.routing import route


@dataclass
class Target:
    config: TargetConfig
    keys: TargetKeys
    rate_limits: SharedRateLimits
    build_backend: Callable[[TargetConfig], Backend] = field(repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def quota(self) -> int:
        """Most jobs active at once in the account."""
        return self.config.max_active_jobs

    @property
    def max_invocations(self) -> int:
        """Most InvokeHarness calls in flight at once (scenario runs)."""
        return self.config.max_invocations

    @cached_property
    def backend(self) -> Backend:
        return self.build_backend(self.config)


def rates_of(config: TargetConfig) -> dict[Operation, float]:
    """The target's call rates per second."""
    return {op: float(getattr(config, f"{op}_rate")) for op in OPERATIONS}


def targets_file_watch(settings: Settings, clock: Callable[[], float] = time.monotonic
                       ) -> FileWatch[TargetSet]:  # fmt: skip
    """The targets file, loaded again when it changed (``EVALQ_TARGETS_RELOAD_SECONDS``)."""
    assert settings.targets_file is not None
    return FileWatch(settings.targets_file, lambda: load_targets(settings),
                     settings.targets_reload_seconds, clock)  # fmt: skip


class Targets:
    """Every configured target by name, in file order."""

    def __init__(
        self,
        file: TargetSet,
        make: Callable[[TargetConfig], Target],
        watch: FileWatch[TargetSet] | None = None,
    ) -> None:
        self._make = make
        self._watch = watch
        self._by_name: dict[str, Target] = {}
        self._default: str | None = None
        self._load(file)

    def __getitem__(self, name: str) -> Target:
        self._refresh()
        try:
            return self._by_name[name]
        except KeyError:
            # A job whose target left the file cannot be reached any more.
            raise PermanentError(
                f"target {name!r} is not configured on this worker", ReasonCode.no_target
            ) from None

    def get(self, name: str) -> Target | None:
        self._refresh()
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Target]:
        self._refresh()
        return iter(list(self._by_name.values()))

    def named_or_default(self, name: str | None) -> Target:
        """Target ``name``, or the default target when ``name`` is None (an evaluator
        rollout names its target or goes to the default one)."""
        self._refresh()
        chosen = name if name is not None else self._default
        if chosen is None:
            raise PermanentError("no target named, and there is no default target",
                                 ReasonCode.no_target)  # fmt: skip
        if chosen not in self._by_name:
            raise PermanentError(f"target {chosen!r} is not configured", ReasonCode.no_target)
        return self._by_name[chosen]

    def route(self, request: EvaluationRequest) -> Target:
        """The target ``request`` runs in (``worker.targets.routing``)."""
        self._refresh()
        configs = [t.config for t in self._by_name.values()]
        return self._by_name[route(request, configs, self._default).name]

    def _refresh(self) -> None:
        file = self._watch.changed() if self._watch is not None else None
        if file is not None:
            self._load(file)

    def _load(self, file: TargetSet) -> None:
        # A target whose configuration did not change keeps its clients and sessions.
        kept = self._by_name
        self._by_name = {
            c.name: kept[c.name] if c.name in kept and kept[c.name].config == c else self._make(c)
            for c in file.targets
        }
        self._default = file.default_target
