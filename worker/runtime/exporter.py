"""``evalq exporter``: one /metrics endpoint with the cluster-wide truth.

A prometheus_client collector that reads everything at scrape time: the counters and
histograms every process records in Redis (``worker.observability.metrics``), and gauges
read from the job store and the broker. Run one (or a few: they agree, nothing is kept
per exporter but a cache of the labels of dead letters recorded before their index).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import redis
from prometheus_client import start_http_server
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker.jobs.gauges_store import JobGauges
from worker.keys import Keys
from worker.observability import metrics
from worker.observability.health import STALE_INTERVALS
from worker.settings import Settings
from worker.targets.config import TargetConfig, load_targets

#: Dead letters read per round trip when the cache meets entries the index does not name
#: (each up to four times EVALQ_MAX_PAYLOAD_BYTES before the index existed).
_LEGACY_PAGE = 10


class BrokerDepths(Protocol):
    def depths(self, queues: Sequence[str]) -> tuple[dict[str, int], int | None]:
        """Messages waiting per queue, and delivered but unacknowledged ones (None: the
        broker does not tell)."""
        ...


class EvalqCollector(Collector):
    def __init__(
        self,
        store: redis.Redis,
        broker: BrokerDepths | None,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store: Any = store
        self.broker = broker
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.clock = clock
        self._dead_letters: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # scrapes may overlap; the dead-letter cache is shared
            yield from self._families()
            yield from self._job_store()
            yield from self._dead_letter_gauge()
            yield from self._schedules()
            yield from self._broker()

    # -- counters and histograms recorded by every process ------------------------------
    def _families(self) -> Iterator[Metric]:
        pipe = self.store.pipeline(transaction=False)
        for family in metrics.FAMILIES:
            pipe.hgetall(self.keys.metrics(family.name))
        for family, fields in zip(metrics.FAMILIES, pipe.execute(), strict=True):
            if family.kind == "counter":
                yield _counter(family, fields)
            else:
                yield _histogram(family, fields)

    # -- gauges of the job store ---------------------------------------------------------
    def _job_store(self) -> Iterator[Metric]:
        keys, settings, now = self.keys, self.settings, self.clock()
        targets = load_targets(settings).targets  # read each scrape: the file may change
        pipe = self.store.pipeline(transaction=False)
        pipe.get(keys.last_tick)
        pipe.zrangebyscore(
            keys.heartbeats, now - STALE_INTERVALS * settings.heartbeat_interval, "+inf"
        )
        pipe.hgetall(keys.janitor_state)
        gauges, target_names = JobGauges(keys), [target.name for target in targets]
        gauges.queue_counts(pipe, target_names, settings.stall_alert_after)
        last_tick, beating, janitor, *job_replies = pipe.execute()
        stalled, per_target = gauges.counts(job_replies, target_names)
        yield GaugeMetricFamily(
            "evalq_stalled_jobs",
            "Jobs whose timer fired EVALQ_STALL_ALERT_AFTER times or more in a row without "
            "moving them (evalq jobs --stalled lists them).",
            value=float(stalled),
        )

        labels = ["backend", "target"]
        active: dict[tuple[str, str], float] = {}
        slots: dict[tuple[str, str], float] = {}
        paused: dict[tuple[str, str], float] = {}
        backlogs: list[tuple[tuple[str, str], int, str]] = []
        for target, counts in zip(targets, per_target, strict=True):
            labelled = (target.backend.value, target.name)
            active[labelled], slots[labelled] = counts.active, target.max_active_jobs
            pause = counts.paused_until
            paused[labelled] = 1.0 if pause is not None and pause > now else 0.0
            backlogs += [(labelled, priority, producer) for priority, producer in counts.waiting]
        yield _gauge("evalq_active_jobs", "Jobs holding one of the account's slots.",
                     labels, active)  # fmt: skip
        yield _gauge("evalq_slots", "Slots (the account's quota of active jobs).", labels,
                     slots)  # fmt: skip
        yield _gauge("evalq_admission_paused",
                     "1 while admission pauses after the account said its quota is full.",
                     labels, paused)  # fmt: skip

        for (_, name), priority, producer in backlogs:
            gauges.queue_backlog(pipe, name, producer, priority)
        sizes = pipe.execute() if backlogs else []
        backlog = GaugeMetricFamily(
            "evalq_backlog_requests",
            "Requests waiting for a slot, by producer, priority and target.",
            labels=["producer", "priority", "backend", "target"],
        )
        for (names, priority, producer), size in zip(backlogs, sizes, strict=True):
            backlog.add_metric([producer, str(priority), *names], int(size))
        yield backlog

        if last_tick is not None:
            yield GaugeMetricFamily(
                "evalq_last_tick_timestamp_seconds",
                "When the last evals.tick ended (Unix time).",
                value=float(last_tick),
            )
        yield GaugeMetricFamily(
            "evalq_tick_interval_seconds", "EVALQ_TICK_INTERVAL.", value=settings.tick_interval
        )
        roles = Counter(member.partition(":")[0] for member in beating)
        yield _gauge("evalq_workers", "Nodes whose heartbeat is fresh, by role.", ["role"],
                     {(role,): roles.get(role, 0) for role in ("worker", "beat")})  # fmt: skip
        yield from self._account(targets, janitor)

    def _account(
        self, targets: Sequence[TargetConfig], janitor: dict[str, str]
    ) -> Iterator[Metric]:
        labels = ["backend", "target"]
        listed = {
            (t.backend.value, t.name): int(janitor[f"remote_jobs:{t.name}"])
            for t in targets
            if f"remote_jobs:{t.name}" in janitor
        }
        yield _gauge("evalq_account_remote_jobs",
                     "Remote jobs in the account when the janitor last listed them.",
                     labels, listed)  # fmt: skip
        if "finished_at" in janitor:
            yield GaugeMetricFamily(
                "evalq_janitor_last_success_timestamp_seconds",
                "When the last janitor sweep that ran ended (Unix time).",
                value=float(janitor["finished_at"]),
            )
        high_water = {(t.backend.value, t.name): t.account_high_water for t in targets}
        yield _gauge("evalq_account_high_water_jobs",
                     "From this many remote jobs on, the janitor deletes published jobs early.",
                     labels, high_water)  # fmt: skip
        most = {(t.backend.value, t.name): t.account_max_jobs for t in targets}
        yield _gauge("evalq_account_max_jobs", "The account's quota of existing jobs.",
                     labels, most)  # fmt: skip

    # -- dead letters ---------------------------------------------------------------------
    def _dead_letter_gauge(self) -> Iterator[Metric]:
        """Dead letters now kept, by reason: the labels come from the store's small index
        of them (``Keys.dead_letter_labels``), never from the entries themselves, which
        may be as large as a message. An entry recorded before that index existed is read
        once, a few at a time, and its labels cached."""
        pipe = self.store.pipeline(transaction=False)
        pipe.zrange(self.keys.dead_letters, 0, -1)
        pipe.hgetall(self.keys.dead_letter_labels)
        ids, indexed = pipe.execute()
        counts: Counter[tuple[str, ...]] = Counter()
        unindexed = []
        for entry_id in ids:
            labels = indexed.get(entry_id, "").split(metrics.SEP)
            if len(labels) == 3:
                counts[tuple(labels)] += 1
            else:
                unindexed.append(entry_id)
        counts.update(self._labels_read_from_entries(unindexed))
        yield _gauge(
            "evalq_dead_letters",
            "Dead letters kept now, by reason (replay or purge them: docs/dead-letters.md).",
            ["reason", "backend", "target"],
            counts,
        )

    def _labels_read_from_entries(self, ids: list[str]) -> list[tuple[str, str, str]]:
        """Labels of entries the index does not name (recorded before it existed), each
        entry read once and cached while it stays unindexed."""
        current = set(ids)
        for gone in self._dead_letters.keys() - current:
            del self._dead_letters[gone]
        new = [i for i in ids if i not in self._dead_letters]
        for start in range(0, len(new), _LEGACY_PAGE):
            page = new[start : start + _LEGACY_PAGE]
            raws = self.store.mget([self.keys.dead_letter(i) for i in page])
            parsed = [(entry_id, _parse(raw)) for entry_id, raw in zip(page, raws, strict=True)
                      if raw is not None]  # fmt: skip
            # A dead letter's target is the one its job was routed to (its record says).
            pipe, gauges = self.store.pipeline(transaction=False), JobGauges(self.keys)
            for _, doc in parsed:
                gauges.queue_job_target(pipe, str(doc.get("request_id") or ""))
            for (entry_id, doc), target in zip(parsed, pipe.execute(), strict=True):
                self._dead_letters[entry_id] = _dead_letter_labels(doc, target)
        return [self._dead_letters[i] for i in ids if i in self._dead_letters]

    # -- schedules (docs/schedules.md) ------------------------------------------------------
    def _schedules(self) -> Iterator[Metric]:
        """Each schedule's period and last slot, as the last ``evals.schedules`` run wrote
        them (so the exporter needs no schedules file), and the entries it refused."""
        pipe = self.store.pipeline(transaction=False)
        pipe.hgetall(self.keys.schedules)
        pipe.hlen(self.keys.schedule_errors)
        index, refused = pipe.execute()
        periods = {name: float(period) for name, period in index.items() if period}
        for name in sorted(periods):
            # HGETALL of a small hash: the exporter's Redis user has no HMGET (roles.md).
            pipe.hgetall(self.keys.schedule(name))
        records = [(r.get("last_slot"), r.get("since")) for r in pipe.execute()] if periods else []
        yield _gauge("evalq_schedule_period_seconds",
                     "A schedule's period: its longest time between two slots.",
                     ["schedule"], {(name,): p for name, p in periods.items()})  # fmt: skip
        last = {(name,): float(slot if slot is not None else since)
                for name, (slot, since) in zip(sorted(periods), records, strict=True)
                if slot is not None or since is not None}  # fmt: skip
        yield _gauge("evalq_schedule_last_slot_timestamp_seconds",
                     "Start of a schedule's last slot submitted (before its first: when evalq "
                     "began running it), Unix time.", ["schedule"], last)  # fmt: skip
        yield GaugeMetricFamily(
            "evalq_schedule_refused_entries",
            "Entries of the schedules file refused (or 1 for a file that does not load): "
            "evalq schedules names them and the field.",
            value=float(refused),
        )

    # -- the broker -------------------------------------------------------------------------
    def _broker(self) -> Iterator[Metric]:
        if self.broker is None:
            return
        settings = self.settings
        waiting, unacked = self.broker.depths(settings.own_queues)
        yield _gauge(
            "evalq_broker_queue_messages",
            "Messages waiting on a broker queue (RabbitMQ: ready, not yet delivered).",
            ["queue"],
            {(queue,): n for queue, n in waiting.items()},
        )
        if unacked is not None:
            yield GaugeMetricFamily(
                "evalq_broker_unacked_messages",
                "Messages delivered to a worker and not yet acknowledged.",
                value=unacked,
            )


class RedisBrokerDepths:
    """Queue lengths of kombu's Redis transport: a list per queue, and the hash of
    delivered, unacknowledged messages."""

    def __init__(self, client: redis.Redis) -> None:
        self.client: Any = client

    def depths(self, queues: Sequence[str]) -> tuple[dict[str, int], int | None]:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        pipe.hlen("unacked")
        *lengths, unacked = pipe.execute()
        return dict(zip(queues, lengths, strict=True)), unacked


class AmqpBrokerDepths:
    """Queue depths on RabbitMQ from a passive declare (AMQP's own answer: the messages
    ready on the queue). AMQP does not tell unacknowledged messages; RabbitMQ's
    Prometheus plugin does (``rabbitmq_queue_messages_unacked``)."""

    def __init__(self, url: str, ssl: Any) -> None:
        self.url = url
        self.ssl = ssl

    def depths(self, queues: Sequence[str]) -> tuple[dict[str, int], int | None]:
        from kombu.connection import Connection
        from kombu.exceptions import OperationalError

        depths: dict[str, int] = {}
        with Connection(self.url, ssl=self.ssl, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            for queue in queues:
                # A queue nobody declared yet (no outcome published) holds nothing; the
                # broker answers NOT_FOUND and closes the channel, so one channel each.
                channel = conn.channel()
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except (OperationalError, *conn.channel_errors):
                    depths[queue] = 0
                finally:
                    if channel.is_open:
                        channel.close()
        return depths, None


def _parse(raw: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _dead_letter_labels(doc: dict[str, Any], target: str | None) -> tuple[str, str, str]:
    request = doc.get("request")
    backend = request.get("backend") if isinstance(request, dict) else None
    reason = doc.get("reason")
    return (
        reason if isinstance(reason, str) else metrics.UNKNOWN,
        metrics.backend_label(backend),
        metrics.UNKNOWN if target is None else metrics.target_label(target),
    )


def _gauge(
    name: str,
    help_text: str,
    labels: list[str],
    values: Mapping[Any, float],
    defaults: Sequence[tuple[str, ...]] = (),
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=labels)
    for label_values in defaults:
        if label_values not in values:
            family.add_metric(list(label_values), 0)
    for label_values, value in sorted(values.items()):
        family.add_metric(list(label_values), value)
    return family


def _split(family: metrics.Family, field: str, extra: int = 0) -> list[str] | None:
    parts = field.split(metrics.SEP) if field else []  # a family without labels: ""
    return parts if len(parts) == len(family.labels) + extra else None


def _counter(family: metrics.Family, fields: dict[str, str]) -> CounterMetricFamily:
    metric = CounterMetricFamily(family.name, family.help, labels=list(family.labels))
    for field, value in sorted(fields.items()):
        labels = _split(family, field)
        if labels is not None:
            metric.add_metric(labels, float(value))
    return metric


def _histogram(family: metrics.Family, fields: dict[str, str]) -> HistogramMetricFamily:
    """Redis keeps one count per bucket and the sum; Prometheus wants cumulative buckets."""
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for field, value in fields.items():
        parts = _split(family, field, extra=1)
        if parts is not None:
            series.setdefault(tuple(parts[:-1]), {})[parts[-1]] = float(value)
    metric = HistogramMetricFamily(family.name, family.help, labels=list(family.labels))
    bounds = [repr(b) for b in family.buckets] + ["+Inf"]
    for labels, values in sorted(series.items()):
        running, buckets = 0.0, []
        for bound in bounds:
            running += values.get(bound, 0.0)
            buckets.append((bound, running))
        metric.add_metric(list(labels), buckets, sum_value=values.get("sum", 0.0))
    return metric


def build_registry(settings: Settings) -> CollectorRegistry:
    from worker.runtime.connections import broker_kind, broker_settings
    from worker.runtime.redis_clients import redis_client

    broker: BrokerDepths
    if broker_kind(settings) == "amqp":
        broker = AmqpBrokerDepths(settings.broker_url, broker_settings(settings)["broker_use_ssl"])
    else:
        broker = RedisBrokerDepths(redis_client(settings, settings.broker_url))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EvalqCollector(redis_client(settings), broker, settings))
    return registry


def serve(settings: Settings, *, host: str, port: int) -> None:
    server, thread = start_http_server(port, addr=host, registry=build_registry(settings))
    print(f"exporter listening on http://{host}:{server.server_port}/metrics", flush=True)
    thread.join()
