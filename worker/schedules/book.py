"""The schedules file in force in one process, read again when it changes (as the targets
and producers files are): a file that no longer loads leaves the last good schedules in
force, and says why in ``errors`` under ``file``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from worker.config_files import FileWatch
from worker.schedules.config import FILE, ScheduleSet, load_schedules

log = structlog.stdlib.get_logger("evalq.schedules")


class ScheduleBook:
    def __init__(
        self, path: str, reload_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._file_error: str | None = None
        self._set = ScheduleSet()
        try:
            self._loaded(load_schedules(path))
        except (OSError, ValueError) as exc:
            self._refused(exc)
        self._watch = FileWatch(path, lambda: load_schedules(path), reload_seconds, clock,
                                on_error=self._refused)  # fmt: skip

    def current(self) -> ScheduleSet:
        """The schedules in force now, with the entries (or the file) refused."""
        changed = self._watch.changed()
        if changed is not None:
            self._loaded(changed)
        if self._file_error is None:
            return self._set
        return replace(self._set, errors={**self._set.errors, FILE: self._file_error})

    def _loaded(self, schedules: ScheduleSet) -> None:
        self._set, self._file_error = schedules, None
        for entry, error in schedules.errors.items():
            log.error("schedule refused", entry=entry, error=error, file=self.path)

    def _refused(self, exc: Exception) -> None:
        self._file_error = f"{self.path}: {exc}"
        log.error("schedules file refused; the last good one stays in force",
                  error=str(exc), file=self.path)  # fmt: skip
