"""The listing watch's store (``worker.jobs.watch``): a target's watch lock, whether a
fresh listing watches its running jobs (``TargetKeys.watching``), and how many jobs the
account held at the last listing (``TargetKeys.remote_jobs``)."""

from __future__ import annotations

from typing import Any

from worker.jobs.store import JobStore
from worker.jobs.store_base import StoreBase


class WatchStore(StoreBase):
    def __init__(self, store: JobStore) -> None:
        super().__init__(store.redis, store.keys, store.scripts)

    def remote_jobs(self, target: str) -> int:
        """How many jobs the account held at the target's last listing (0: never listed)."""
        return int(self.redis.get(self.keys.target(target).remote_jobs) or 0)

    def lock(self, target: str, timeout: float) -> Any:
        """Held while one task lists the target's jobs (non-blocking redis-py ``Lock``)."""
        return self.redis.lock(self.keys.target(target).watch_lock, timeout=timeout,
                               blocking=False)  # fmt: skip

    def is_watched(self, target: str) -> bool:
        """Whether a fresh listing watches the target's running jobs."""
        return bool(self.redis.exists(self.keys.target(target).watching))

    def listed(self, target: str, remote_jobs: int, *, now: float, fresh_ms: int) -> None:
        """A listing saw ``remote_jobs`` jobs in the account: the target is watched for
        ``fresh_ms`` from ``now``."""
        keys = self.keys.target(target)
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.remote_jobs, remote_jobs)
        pipe.set(keys.watching, now, px=fresh_ms)
        pipe.execute()

    def keep_watching(self, target: str, *, now: float, fresh_ms: int) -> None:
        """The target stays watched for ``fresh_ms`` from ``now`` (its next listing is
        timed)."""
        self.redis.set(self.keys.target(target).watching, now, px=fresh_ms)

    def stop_watching(self, target: str) -> list[str]:
        """The target is not watched any more: the slot holders that were (none when it
        was not watched)."""
        keys = self.keys.target(target)
        if not self.redis.delete(keys.watching):
            return []
        return list(self.redis.smembers(keys.active))
