"""Redis Sentinel for tests: a primary, a replica and three sentinels (``redis-server
--sentinel``) on free ports, watching the primary under one name, on short clocks so a
failover takes seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from evalq_emulators.processes import ManagedProcess, RedisServer, find_redis_server, free_port


class RedisSentinels:
    def __init__(
        self, directory: Path, master: str = "evalq-primary", down_after_ms: int = 1000
    ) -> None:
        self.directory = directory
        self.master = master
        self.down_after_ms = down_after_ms
        for name in ("primary", "replica"):
            (directory / name).mkdir(parents=True, exist_ok=True)
        self.primary = RedisServer(
            directory=directory / "primary", log_path=directory / "primary.log"
        )
        self.replica = RedisServer(
            directory=directory / "replica",
            log_path=directory / "replica.log",
            extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)],
        )
        self.ports = [free_port() for _ in range(3)]
        self.sentinels: list[ManagedProcess] = []

    @property
    def addresses(self) -> str:
        """``EVALQ_REDIS_SENTINELS``: comma-separated host:port."""
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def _config(self, port: int) -> Path:
        path = self.directory / f"sentinel-{port}.conf"
        path.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self.directory}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master} 10000\n"
            f"sentinel parallel-syncs {self.master} 1\n"
        )
        return path

    def start(self, timeout: float = 30.0) -> RedisSentinels:
        try:
            self.primary.start()
            self.replica.start()
            self._wait(lambda: self._linked(self.replica.port), timeout, "the replica syncs")
            for port in self.ports:
                argv = [find_redis_server(), str(self._config(port)), "--sentinel"]
                log = self.directory / f"sentinel-{port}.log"
                self.sentinels.append(ManagedProcess("sentinel", argv, log_path=log).start())
            # Each sentinel must know the replica and both other sentinels before a
            # failover can be agreed on.
            self._wait(self._acquainted, timeout, "the sentinels know each other")
        except BaseException:
            self.stop()  # nothing outlives a failed start
            raise
        return self

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=2)

    def primary_port(self) -> int | None:
        """The port the sentinels now name as the primary (None if they do not answer)."""
        for port in self.ports:
            try:
                address = self.sentinel(port).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master
                )
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def stop(self) -> None:
        for proc in self.sentinels:
            proc.stop()
        self.replica.stop()
        self.primary.stop()

    def _linked(self, port: int) -> bool:
        try:
            info: dict[str, Any] = redis.Redis(port=port).info("replication")  # type: ignore[assignment]
        except redis.RedisError:
            return False
        return bool(info.get("master_link_status") == "up")

    def _acquainted(self) -> bool:
        try:
            for port in self.ports:
                # Raw commands: redis-py's parsers of these replies vary between versions.
                client = self.sentinel(port)
                if len(client.execute_command("SENTINEL", "REPLICAS", self.master)) < 1:
                    return False
                others = client.execute_command("SENTINEL", "SENTINELS", self.master)
                if len(others) < len(self.ports) - 1:
                    return False
        except redis.RedisError:
            return False
        return True

    @staticmethod
    def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting until {what}")
            time.sleep(0.1)
