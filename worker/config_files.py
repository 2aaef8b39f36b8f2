"""Configuration files beside the settings (targets, producers): read as YAML or JSON,
and picked up again when they change, without a restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

_T = TypeVar("_T")


def read_data(path: Path) -> Any:
    """The file's data (JSON for ``.json``, else YAML); one that does not parse raises
    ValueError saying where."""
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc


class FileWatch(Generic[_T]):
    """Hands out ``load()`` again when the file at ``path`` changed, looking at most every
    ``interval`` seconds; a file that no longer loads is ignored until it does (the last
    good one stays in force), and handed to ``on_error`` if given."""

    def __init__(
        self,
        path: str,
        load: Callable[[], _T],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._path = path
        self._load = load
        self._interval = interval
        self._clock = clock
        self._on_error = on_error
        self._checked_at = clock()
        self._stamp = self._mtime()

    def changed(self) -> _T | None:
        now = self._clock()
        if now - self._checked_at < self._interval:
            return None
        self._checked_at = now
        stamp = self._mtime()
        if stamp == self._stamp:
            return None
        try:
            loaded = self._load()
        except (OSError, ValueError) as exc:
            if self._on_error is not None:
                self._on_error(exc)
            return None
        self._stamp = stamp
        return loaded

    def _mtime(self) -> float | None:
        try:
            return os.stat(self._path).st_mtime
        except OSError:
            return None
