"""Metrics recorded in Redis and rendered by the exporter's collector (fakeredis)."""

from __future__ import annotations

import fakeredis
import pytest
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from api_contracts import EvaluationRequest, ReasonCode
from api_contracts.examples import sample_request
from worker.dead_letters.store import DeadLetterStore
from worker.errors import BackPressure, RemoteConflict, RetryableError, Throttled
from worker.observability import metrics
from worker.runtime.exporter import EvalqCollector, RedisBrokerDepths
from worker.settings import Settings

NOW = 1_800_000_000.0


def _scrape(client, settings=None, broker=None) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry(auto_describe=False)
    depths = None if broker is None else RedisBrokerDepths(broker)
    collector = EvalqCollector(client, depths, settings or Settings(), clock=lambda: NOW)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, name, **labels) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))  # fmt: skip


def test_histogram_buckets_are_rendered_cumulative_with_sum_and_count(fake_redis, keys):
    pipe = fake_redis.pipeline()
    for seconds in (0.004, 0.2, 0.2, 7.0, 120.0):
        metrics.observe(pipe, keys, metrics.REMOTE_CALL_DURATION, seconds, "get", "agentcore",
                        "default")  # fmt: skip
    pipe.execute()
    samples = _scrape(fake_redis)
    name = "evalq_remote_call_duration_seconds_bucket"
    assert _value(samples, name, operation="get", le="0.01") == 1
    assert _value(samples, name, operation="get", le="0.25") == 3
    assert _value(samples, name, operation="get", le="10.0") == 4
    assert _value(samples, name, operation="get", le="30.0") == 4
    assert _value(samples, name, operation="get", le="+Inf") == 5
    assert _value(samples, "evalq_remote_call_duration_seconds_count") == 5
    assert _value(samples, "evalq_remote_call_duration_seconds_sum") == pytest.approx(127.404)


def test_a_value_on_a_bucket_bound_falls_in_that_bucket(keys):
    family = metrics.REMOTE_CALL_DURATION
    assert metrics.bucket_field(family, 0.5, ("x",)) == "x|0.5"
    assert metrics.bucket_field(family, 0.5000001, ("x",)) == "x|1.0"
    assert metrics.bucket_field(family, 99.0, ("x",)) == "x|+Inf"


def test_remote_calls_are_counted_by_result_and_errors_still_raise(fake_redis, keys):
    calls = metrics.RemoteCalls(fake_redis, keys, "agentcore")
    with calls.measure("get_batch_evaluation"):
        pass
    for error in (Throttled("slow down"), RetryableError("5xx"), BackPressure("full"),
                  RemoteConflict("409"), ValueError("bug")):  # fmt: skip
        with pytest.raises(type(error)), calls.measure("get_batch_evaluation"):
            raise error
    samples = _scrape(fake_redis)
    by_result = {dict(ls)["result"]: v for (n, ls), v in samples.items()
                 if n == "evalq_remote_calls_total"}  # fmt: skip
    assert by_result == {"ok": 1, "throttled": 1, "retryable_error": 1, "quota_full": 1,
                         "conflict": 1, "error": 1}  # fmt: skip
    assert _value(samples, "evalq_remote_call_duration_seconds_count") == 6


def test_recording_never_fails_the_work_it_measures(keys):
    server = fakeredis.FakeServer()
    broken = fakeredis.FakeRedis(server=server, decode_responses=True)
    server.connected = False
    calls = metrics.RemoteCalls(broken, keys, "agentcore")
    with calls.measure("start_batch_evaluation"):
        pass  # no exception although Redis is down
    metrics.tick_done(broken, keys, NOW)


def test_labels_are_bounded(keys):
    assert metrics.backend_label("agentcore") == "agentcore"
    assert metrics.backend_label("x" * 300) == "unknown"
    assert metrics.backend_label(None) == "unknown"
    assert metrics.target_label("checkout-prod") == "checkout-prod"
    assert metrics.target_label("Not A|Target") == "unknown"
    assert metrics.target_label(None) == "unknown"
    assert metrics.field("a|b", "c") == "a_b|c"


def test_dead_letter_gauge_follows_the_store_and_the_counter_what_was_recorded(fake_redis, keys):
    letters = DeadLetterStore(fake_redis, keys, max_entries=100, max_age=1e9)
    request = sample_request("r1")
    letters.record(reason=ReasonCode.invalid_request, error="e", request={"x": 1},
                   request_id=None, now=NOW)  # fmt: skip
    conflict = letters.record(reason=ReasonCode.idempotency_conflict, error="e",
                              request=request, request_id="r1", now=NOW,
                              target="default")  # fmt: skip
    # The same entry again:
    letters.record(reason=ReasonCode.idempotency_conflict, error="e", request=request,
                   request_id="r1", now=NOW + 1, target="default")  # fmt: skip
    # The gauge takes a dead letter's target from its job's record.
    fake_redis.hset(keys.job("r1"), "target", "default")
    collector_samples = _scrape(fake_redis)
    assert _value(collector_samples, "evalq_dead_letters", reason="idempotency_conflict",
                  backend="agentcore", target="default") == 1  # fmt: skip
    assert _value(collector_samples, "evalq_dead_letters", reason="invalid_request",
                  backend="unknown") == 1  # fmt: skip
    assert _value(collector_samples, "evalq_dead_letters", reason="invalid_request",
                  target="unknown") == 1  # fmt: skip
    assert _value(collector_samples, "evalq_dead_letters_recorded_total",
                  reason="idempotency_conflict", target="default") == 2  # fmt: skip
    assert _value(collector_samples, "evalq_dead_letters_recorded_total",
                  reason="invalid_request", target="unknown") == 1  # fmt: skip

    registry_collector = EvalqCollector(fake_redis, None, Settings(), clock=lambda: NOW)
    list(registry_collector.collect())
    letters.remove(conflict.dead_letter_id)
    after = {m.name: m for m in registry_collector.collect()}["evalq_dead_letters"]
    assert [(s.labels["reason"], s.value) for s in after.samples] == [("invalid_request", 1)]


def test_the_dead_letter_gauge_reads_the_label_index_never_the_entries(fake_redis, keys):
    """100 dead letters of 1 MiB took the exporter from 55 to 252 MiB: it read them all."""
    letters = DeadLetterStore(fake_redis, keys, max_entries=100, max_age=1e9)
    for n in range(30):
        letters.record(reason=ReasonCode.payload_too_large, error="e", request=f"body {n}",
                       request_id=None, now=NOW + n)  # fmt: skip
    letters.record(reason=ReasonCode.idempotency_conflict, error="e", target="default",
                   request=sample_request("r1"), request_id="r1", now=NOW)  # fmt: skip
    # Whatever an entry holds, the gauge does not read it: here there is nothing to read.
    fake_redis.delete(*fake_redis.keys(keys.dead_letter("*")))
    samples = _scrape(fake_redis)
    assert _value(samples, "evalq_dead_letters", reason="payload_too_large",
                  backend="unknown", target="unknown") == 30  # fmt: skip
    assert _value(samples, "evalq_dead_letters", reason="idempotency_conflict",
                  backend="agentcore", target="default") == 1  # fmt: skip


def test_entries_recorded_before_the_index_are_read_once(fake_redis, keys):
    letters = DeadLetterStore(fake_redis, keys, max_entries=100, max_age=1e9)
    old = [letters.record(reason=ReasonCode.invalid_request, error="e", request={"n": n},
                          request_id=f"r{n}", now=NOW + n) for n in range(25)]  # fmt: skip
    fake_redis.delete(keys.dead_letter_labels)  # as a store of an earlier version left them
    fake_redis.hset(keys.job("r0"), "target", "default")
    new = letters.record(reason=ReasonCode.unknown_backend, error="e", request={"n": 99},
                         request_id="r99", now=NOW + 99)  # fmt: skip
    fake_redis.delete(keys.dead_letter(new.dead_letter_id))  # indexed: never read
    collector = EvalqCollector(fake_redis, None, Settings(), clock=lambda: NOW)

    def gauge() -> dict[tuple[str, ...], float]:
        family = {m.name: m for m in collector.collect()}["evalq_dead_letters"]
        return {tuple(s.labels.values()): s.value for s in family.samples}

    assert gauge() == {("invalid_request", "unknown", "default"): 1,
                       ("invalid_request", "unknown", "unknown"): 24,
                       ("unknown_backend", "unknown", "unknown"): 1}  # fmt: skip
    fake_redis.delete(*(keys.dead_letter(d.dead_letter_id) for d in old[1:]))  # read once
    letters.remove(old[0].dead_letter_id)
    assert gauge() == {("invalid_request", "unknown", "unknown"): 24,
                       ("unknown_backend", "unknown", "unknown"): 1}  # fmt: skip


def test_job_store_gauges(fake_redis, keys, store):
    for i, producer in enumerate(["a", "a", "b"]):
        request = sample_request(f"r{i}", producer=producer)
        store.register(EvaluationRequest.model_validate(request), target="default", now=NOW,
                       deadline_at=NOW + 60, retention=0)  # fmt: skip
    store.admit("default", now=NOW, quota=1)
    fake_redis.set(keys.last_tick, repr(NOW - 1))
    fake_redis.zadd(keys.heartbeats, {"worker:w1@h": NOW, "worker:old@h": NOW - 3600,
                                      "beat:h": NOW - 2})  # fmt: skip
    samples = _scrape(fake_redis, Settings(max_active_jobs=3))
    assert _value(samples, "evalq_active_jobs", backend="agentcore", target="default") == 1
    assert _value(samples, "evalq_slots", backend="agentcore", target="default") == 3
    assert _value(samples, "evalq_backlog_requests", producer="a", priority="0",
                  backend="agentcore", target="default") == 1  # fmt: skip
    assert _value(samples, "evalq_backlog_requests", producer="b") == 1
    assert _value(samples, "evalq_requests_total", outcome="created", target="default") == 3
    assert _value(samples, "evalq_last_tick_timestamp_seconds") == NOW - 1
    assert _value(samples, "evalq_workers", role="worker") == 1
    assert _value(samples, "evalq_workers", role="beat") == 1
    assert not any("request_id" in dict(ls) for _, ls in samples)


def test_an_empty_store_still_exports_the_series_alerts_compare():
    samples = _scrape(fakeredis.FakeRedis(decode_responses=True))
    assert _value(samples, "evalq_active_jobs", backend="agentcore", target="default") == 0
    assert _value(samples, "evalq_slots", backend="agentcore", target="default") == 5
    assert ("evalq_workers", (("role", "worker"),)) in samples


def test_janitor_runs_and_actions(fake_redis, keys):
    metrics.janitor_run(fake_redis, keys, "ok", actions={"expired": 2, "stopped": 0},
                        remote_jobs={"default": 1900}, now=NOW)  # fmt: skip
    metrics.janitor_run(fake_redis, keys, "skipped")
    samples = _scrape(fake_redis)
    assert _value(samples, "evalq_janitor_runs_total", result="ok") == 1
    assert _value(samples, "evalq_janitor_runs_total", result="skipped") == 1
    assert _value(samples, "evalq_janitor_actions_total", action="expired") == 2
    assert _value(samples, "evalq_janitor_actions_total", action="stopped") == 0
    assert _value(samples, "evalq_account_remote_jobs", target="default") == 1900
    assert _value(samples, "evalq_account_high_water_jobs", target="default") == 1800
    assert _value(samples, "evalq_janitor_last_success_timestamp_seconds") == NOW


def test_every_family_name_follows_prometheus_conventions():
    for family in metrics.FAMILIES:
        assert family.name.startswith("evalq_")
        assert not family.name.endswith("_total")
        assert "request_id" not in family.labels
        if family.kind == "histogram":
            assert family.name.endswith("_seconds")
            assert list(family.buckets) == sorted(family.buckets)


def test_every_configured_target_has_its_own_gauges(fake_redis, keys, store, tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text(
        """
targets:
  - {name: east, region: us-east-1, max_active_jobs: 2, account_high_water: 90}
  - {name: west, region: us-west-2, max_active_jobs: 7}
default_target: east
"""
    )
    settings = Settings(targets_file=str(path), account_high_water=1800)
    for i in range(3):
        request = EvaluationRequest.model_validate(sample_request(f"w{i}"))
        store.register(request, target="west", now=NOW, deadline_at=NOW + 60, retention=0)
    store.admit("west", now=NOW, quota=1)
    fake_redis.set(keys.target("west").admission_paused_until, repr(NOW + 5))
    metrics.janitor_run(fake_redis, keys, "ok", remote_jobs={"east": 4, "west": 11}, now=NOW)

    samples = _scrape(fake_redis, settings)
    assert _value(samples, "evalq_slots", target="east") == 2
    assert _value(samples, "evalq_slots", target="west") == 7
    assert _value(samples, "evalq_active_jobs", target="east") == 0
    assert _value(samples, "evalq_active_jobs", target="west") == 1
    assert _value(samples, "evalq_backlog_requests", target="west") == 2
    assert _value(samples, "evalq_admission_paused", target="west") == 1
    assert _value(samples, "evalq_admission_paused", target="east") == 0
    assert _value(samples, "evalq_account_remote_jobs", target="west") == 11
    assert _value(samples, "evalq_account_high_water_jobs", target="east") == 90
    assert _value(samples, "evalq_account_high_water_jobs", target="west") == 1800
    assert _value(samples, "evalq_requests_total", outcome="created", target="west") == 3
    assert not any(dict(ls).get("target") == "default" for _, ls in samples)


def test_a_measured_backend_counts_each_call_under_its_target(fake_redis, keys):
    from worker.backends.measured import MeasuredBackend

    class Backend:
        name = "agentcore"
        capabilities = None
        call_timeout = 1.0
        client = "the client"

        def get(self, remote_id, scope=None):
            raise Throttled("slow down")

        def delete(self, remote_id, scope=None):
            return None

    measured = MeasuredBackend(
        Backend(), metrics.RemoteCalls(fake_redis, keys, "agentcore", "east")
    )
    with pytest.raises(Throttled):
        measured.get("j1")
    measured.delete("j1")
    assert measured.client == "the client"  # what is not a remote call is the backend's
    samples = _scrape(fake_redis)
    assert _value(samples, "evalq_remote_calls_total", operation="get", result="throttled",
                  backend="agentcore", target="east") == 1  # fmt: skip
    assert _value(samples, "evalq_remote_calls_total", operation="delete", result="ok",
                  target="east") == 1  # fmt: skip


def test_timers_handed_out_again_are_counted(fake_redis, keys):
    metrics.timer_leases_expired(fake_redis, keys, 2)
    metrics.timer_leases_expired(fake_redis, keys, 3)
    assert _value(_scrape(fake_redis), "evalq_timer_leases_expired_total") == 5
