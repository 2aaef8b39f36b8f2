"""Messages lost to SIGKILLed workers: the reliable fetch (worker/broker.py) against
kombu's stock BRPOP, on the same broker, the same requests and the same kill schedule;
and RabbitMQ (a private vhost on the machine's node) under the same schedule. Then how
fast one worker drains a queue of requests into the backlog on each broker.

A worker killed while a popped message is on its way to it loses that message with the
stock transport. The window is one reply's flight time, so the workers here reach Redis
through a proxy that delays every reply (as a distant or congested Redis does); that makes
the window wide enough to hit within a minute. The job store is reached directly.
"""

from __future__ import annotations

import queue
import random
import signal
import socket
import threading
import time

from evalq_emulators.pytest_plugin import Producer
from evalq_emulators.rabbitmq import RabbitVhost
from tests.bench.harness import Rig, Row, rig, wait_until
from tests.bench.requests import bench_request

REPLY_DELAY = 0.02  # seconds added to every Redis reply on the worker's broker connection


class DelayingProxy:
    """A TCP proxy that passes requests at once and holds each reply back ``delay`` s."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._delayed_pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            sink.close()
            source.close()

    def _delayed_pump(self, source: socket.socket, sink: socket.socket) -> None:
        pending: queue.Queue[tuple[float, bytes] | None] = queue.Queue()

        def send_when_due() -> None:
            try:
                while (item := pending.get()) is not None:
                    due, data = item
                    time.sleep(max(0.0, due - time.monotonic()))
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                sink.close()

        threading.Thread(target=send_when_due, daemon=True).start()
        try:
            while data := source.recv(65536):
                pending.put((time.monotonic() + self.delay, data))
        except OSError:
            pass
        finally:
            pending.put(None)
            source.close()


def delivery(quick: bool) -> list[Row]:
    storm = 25.0 if quick else 90.0
    count = 300 if quick else 1200
    lost: dict[str, tuple[int, int]] = {}
    rates: dict[str, tuple[float, float]] = {}
    vhost = RabbitVhost().create()
    try:
        with rig("--time-scale", "1000") as r:
            redis_proxy = DelayingProxy(r.redis_server.port, REPLY_DELAY)
            rabbit_proxy = DelayingProxy(5672, REPLY_DELAY)
            proxied_vhost = f"amqp://guest:guest@127.0.0.1:{rabbit_proxy.port}/{vhost.name}"
            variants = {
                "stock": ({"EVALQ_BROKER_RELIABLE_FETCH": "false"}, r.env["EVALQ_BROKER_URL"],
                          f"redis://127.0.0.1:{redis_proxy.port}/0"),
                "reliable": ({}, r.env["EVALQ_BROKER_URL"],
                             f"redis://127.0.0.1:{redis_proxy.port}/0"),
                "rabbitmq": ({"EVALQ_BROKER_URL": vhost.url}, vhost.url, proxied_vhost),
            }  # fmt: skip
            rng = random.Random(7)
            for name, (env, url, via_proxy) in variants.items():
                lost[name] = _storm(r, name, env, url, via_proxy, count, storm, rng, vhost)
            for name in ("reliable", "rabbitmq"):
                env, url, _ = variants[name]
                rates[name] = _drain_rates(r, f"{name}-drain", env, url, count)
    finally:
        vhost.delete()
    (reliable, kills), (stock, stock_kills) = lost["reliable"], lost["stock"]
    rabbit, rabbit_kills = lost["rabbitmq"]
    redis_rates, rabbit_rates = rates["reliable"], rates["rabbitmq"]
    schedule = (f"replies delayed {REPLY_DELAY * 1000:.0f} ms; workers killed every 0.3-1.5 s "
                f"after start for up to {storm:.0f} s")  # fmt: skip
    return [("messages lost to SIGKILLed workers", f"{reliable} of {count}",
             f"{stock} of {count} (stock BRPOP)", f"{kills} / {stock_kills} kills", schedule),
            ("messages lost to SIGKILLed workers, RabbitMQ", f"{rabbit} of {count}",
             f"{stock} of {count} (Redis, stock BRPOP)", f"{rabbit_kills} / {stock_kills} kills",
             f"{schedule}; acks late, prefetch 4 per process"),
            ("queue drain, no-op tasks/s, RabbitMQ", f"{rabbit_rates[0]:.0f}/s",
             f"{redis_rates[0]:.0f}/s Redis reliable fetch",
             f"{rabbit_rates[0] / redis_rates[0]:.2f}",
             f"{4 * count} queued first, then 1 worker x 2 processes"),
            ("queue drain, requests/s into the backlog, RabbitMQ", f"{rabbit_rates[1]:.0f}/s",
             f"{redis_rates[1]:.0f}/s Redis reliable fetch",
             f"{rabbit_rates[1] / redis_rates[1]:.2f}",
             f"{count} queued first, then 1 worker x 2 processes")]  # fmt: skip


def _storm(
    r: Rig,
    prefix: str,
    env: dict[str, str],
    url: str,
    via_proxy: str,
    count: int,
    storm: float,
    rng: random.Random,
    vhost: RabbitVhost,
) -> tuple[int, int]:
    """Queue ``count`` requests, then start and SIGKILL workers (reaching the broker
    through the delaying proxy) until the queue is empty or ``storm`` s passed; a healthy
    worker takes the rest. Returns (requests with no job record, kills)."""
    producer = Producer(url)
    for i in range(count):
        producer.submit(bench_request(i, prefix=prefix))
    kills = 0
    end = time.monotonic() + storm
    while time.monotonic() < end and _queued(r, url, vhost):
        proxied = {**env, "EVALQ_BROKER_URL": via_proxy}
        worker = r.start_worker(f"{prefix}-{kills}", concurrency=2, **proxied)
        time.sleep(rng.uniform(0.3, 1.5))
        worker.kill(signal.SIGKILL)
        r.processes.remove(worker)
        kills += 1
    # A healthy worker takes what is left, and (Redis) what kombu restores from the
    # unacked hash once the visibility timeout has passed.
    healthy = r.start_worker(f"{prefix}-healthy", concurrency=2, **env)
    wait_until(lambda: not _queued(r, url, vhost), 300, interval=0.5)
    time.sleep(2.0)
    recorded = sum(r.store.exists(f"evalq:job:{prefix}-{i:06d}") for i in range(count))
    r.stop(healthy)
    return count - recorded, kills


def _queued(r: Rig, url: str, vhost: RabbitVhost) -> bool:
    """Requests still on the broker, waiting or unacknowledged."""
    if url.startswith("amqp"):
        rows = vhost.list("queues", "name", "messages")
        return any(row["name"] == "evals.requests" and row["messages"] != "0" for row in rows)
    return bool(r.broker.llen("evals.requests") or r.broker.hlen("unacked"))


def _drain_rates(
    r: Rig, prefix: str, env: dict[str, str], url: str, count: int
) -> tuple[float, float]:
    """Tasks per second one worker (2 processes) takes from a full queue, timed from its
    "ready.": no-op tasks (the broker's own cost), then requests into the backlog."""
    producer = Producer(url)
    with producer.connection() as conn:
        channel = conn.default_channel

        def waiting() -> int:
            if url.startswith("redis"):  # an empty list is no key: no queue to declare
                return int(r.broker.llen("evals.requests"))
            return int(channel.queue_declare("evals.requests", passive=True).message_count)

        noops = count * 4
        for _ in range(noops):
            producer.app.send_task("evals.ping", queue="evals.requests")
        worker = r.start_worker(f"{prefix}-noop", concurrency=2, **env)
        start, left = time.perf_counter(), waiting()
        wait_until(lambda: waiting() == 0, 300)
        noop_rate = left / (time.perf_counter() - start)
        r.stop(worker)

        for i in range(count):
            producer.submit(bench_request(i, prefix=prefix))
        target = r.store.zcard("evalq:jobs") + count
        worker = r.start_worker(f"{prefix}-intake", concurrency=2, **env)
        start, taken = time.perf_counter(), r.store.zcard("evalq:jobs")
        wait_until(lambda: r.store.zcard("evalq:jobs") >= target, 300)
        intake_rate = (target - taken) / (time.perf_counter() - start)
        r.stop(worker)
    return noop_rate, intake_rate
