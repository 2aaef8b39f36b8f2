"""What the job store's modules share: the Redis client, the keys, the job scripts.

The job store is split by concern (``store.py``: registration, admission, moves, timers,
reads; ``items_store.py``: scenario items; ``janitor_store.py``: the janitor's indexes;
``watch_store.py``: the listing watch; ``gauges_store.py``: the exporter's reads). They
are the only modules that name a job's Redis keys or run a job script
(``tests/unit/test_architecture.py``); the rest of ``worker`` calls their methods.
"""

from __future__ import annotations

from typing import Any

from worker.keys import Keys
from worker.lua import Script


class StoreBase:
    """A Redis client (replies as text), evalq's keys and the job scripts."""

    def __init__(self, client: Any, keys: Keys, scripts: dict[str, Script]) -> None:
        # redis-py types every reply as `Awaitable | Any` (sync and async share stubs).
        self.redis: Any = client
        self.keys = keys
        self.scripts = scripts

    def _keys(self, target: str, request_id: str | None = None, **more: str) -> dict[str, str]:
        """The keys a script may name: every global key, the target's, the job's, more."""
        named = {**self.keys.fixed, **self.keys.target(target).fixed, **more}
        if request_id is not None:
            named["job"] = self.keys.job(request_id)
        return named
