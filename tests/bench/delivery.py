"""Messages lost to SIGKILLed workers: the reliable fetch (worker/broker.py) against
kombu's stock BRPOP, on the same broker, the same requests and the same kill schedule.

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

from tests.bench.harness import Row, rig, wait_until
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
    results: dict[bool, tuple[int, int]] = {}
    with rig("--time-scale", "1000") as r:
        proxy = DelayingProxy(r.redis_server.port, REPLY_DELAY)
        rng = random.Random(7)
        store, broker = r.store, r.broker
        for reliable in (False, True):
            prefix = "reliable" if reliable else "stock"
            env = {"EVALQ_BROKER_RELIABLE_FETCH": str(reliable).lower()}
            producer = r.producer()
            for i in range(count):
                producer.submit(bench_request(i, prefix=prefix))
            via_proxy = {**env, "EVALQ_BROKER_URL": f"redis://127.0.0.1:{proxy.port}/0"}
            kills = 0
            end = time.monotonic() + storm
            while time.monotonic() < end and broker.llen("evals.requests"):
                worker = r.start_worker(f"{prefix}-{kills}", concurrency=2, **via_proxy)
                time.sleep(rng.uniform(0.3, 1.5))
                worker.kill(signal.SIGKILL)
                r.processes.remove(worker)
                kills += 1
            # A healthy worker takes what is left, and what kombu restores from the
            # unacked hash once the visibility timeout has passed.
            healthy = r.start_worker(f"{prefix}-healthy", concurrency=2, **env)
            wait_until(
                lambda: broker.llen("evals.requests") == 0 and broker.hlen("unacked") == 0, 300
            )
            time.sleep(2.0)
            recorded = sum(
                store.exists(f"evalq:job:{prefix}-{i:06d}") for i in range(count)
            )  # fmt: skip
            results[reliable] = (count - recorded, kills)
            r.stop(healthy)
    (lost, kills), (stock_lost, stock_kills) = results[True], results[False]
    return [("messages lost to SIGKILLed workers", f"{lost} of {count}",
             f"{stock_lost} of {count} (stock BRPOP)", f"{kills} / {stock_kills} kills",
             f"replies delayed {REPLY_DELAY * 1000:.0f} ms; workers killed every 0.3-1.5 s "
             f"after start for up to {storm:.0f} s")]  # fmt: skip
