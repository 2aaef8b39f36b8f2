"""deploy/ is checked with real tools on every CI run, and a broken copy fails them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy import checks
from worker import task_names
from worker.runtime.app import time_limits
from worker.settings import Settings

DEPLOY = checks.DEPLOY


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_deploy_passes(name):
    assert checks.CHECKS[name](DEPLOY) == ""


def test_the_dashboard_queries_only_exported_metrics():
    assert checks.dashboard(DEPLOY, _exported_names()) == ""


def _exported_names() -> set[str]:
    """Every sample name the exporter can serve (a populated store, rendered)."""
    import fakeredis
    from prometheus_client import generate_latest
    from prometheus_client.core import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families

    from api_contracts import EvaluationRequest, ReasonCode
    from api_contracts.examples import sample_request
    from worker.dead_letters.store import DeadLetterStore
    from worker.jobs.store import JobStore
    from worker.keys import Keys
    from worker.observability import metrics
    from worker.runtime.exporter import EvalqCollector, RedisBrokerDepths

    client, keys = fakeredis.FakeRedis(decode_responses=True), Keys()
    pipe = client.pipeline()
    for family in metrics.FAMILIES:
        labels = tuple("x" for _ in family.labels)
        if family.kind == "counter":
            metrics.count(pipe, keys, family, *labels)
        else:
            metrics.observe(pipe, keys, family, 1.0, *labels)
    state = {"remote_jobs:default": 1, "finished_at": 1}
    pipe.set(keys.last_tick, "1").hset(keys.janitor_state, mapping=state)
    pipe.hset(keys.schedules, "nightly", "86400").hset(keys.schedule("nightly"), "last_slot", 1)
    pipe.execute()
    request = EvaluationRequest.model_validate(sample_request("r1"))
    JobStore(client, keys).register(request, target="default", now=1.0, deadline_at=2.0,
                                   retention=0)  # fmt: skip
    DeadLetterStore(client, keys, max_entries=10, max_age=1e9).record(
        reason=ReasonCode.invalid_request, error="e", request={}, request_id=None, now=1.0
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EvalqCollector(client, RedisBrokerDepths(client), Settings()))
    text = generate_latest(registry).decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    return names | {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def test_every_alert_has_a_runbook_line():
    rules = yaml.safe_load((DEPLOY / "observability" / "alerts.yaml").read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    operations = (checks.ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"### {alert}" in operations, alert
    exported = _exported_names()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert set(re.findall(r"\bevalq_\w+", rule["expr"])) <= exported, rule["alert"]


# -- a broken copy fails ----------------------------------------------------------------------
#: The start of the producer template's rules in users.acl.
_PRODUCER = "user evalq-producer on >change-me-producer resetchannels resetkeys -@all"
BREAKAGES = [
    ("kubernetes", "k8s/worker-deployment.yaml", "terminationGracePeriodSeconds",
     "terminationGracePeriod"),
    ("kubernetes", "k8s/exporter.yaml", "containerPort: 9808", "containerPort: nine"),
    ("kubernetes", "k8s/kustomization.yaml", "  - pdb.yaml", "  - pdb-missing.yaml"),
    ("kubernetes", "k8s/networkpolicy.yaml", "  podSelector: {}", "  podSelecter: {}"),
    ("kubernetes", "k8s/networkpolicy.yaml", "    - from:", "    - form:"),
    ("yamllint", "k8s/configmap.yaml", "  EVALQ_AWS_REGION: us-east-1",
     " EVALQ_AWS_REGION: us-east-1"),
    ("compose", "compose.yaml", "stop_grace_period: 3m", "stop_grace_periods: 3m"),
    ("dockerfile", "Dockerfile", 'ENTRYPOINT ["evalq"]', 'ENTRYPONT ["evalq"]'),
    ("dockerfile", "Dockerfile", "USER 10001:10001", "USER root"),
    ("iam", "iam-policy.json", "bedrock-agentcore:GetBatchEvaluation\"",
     "bedrock-agentcore:GetBatchEvaluations\""),
    ("iam", "iam-policy.json", "batch-evaluate/*", "batch-evaluation/*"),
    ("alert_rules", "observability/alerts.yaml", "> 3 * evalq_tick_interval_seconds",
     "> 3 * (evalq_tick_interval_seconds"),
    ("alert_rules", "observability/alerts.yaml", "for: 2m", "for: 20m"),
    # A producer's Redis user given more than it needs (docs/roles.md).
    *[("roles", "redis/users.acl", _PRODUCER, f"{_PRODUCER} {extra}")
      for extra in ("~*", "&*", "+@all", "+eval", "+flushdb", "+del", "+keys", "~evalq:* +get")],
    ("roles", "redis/users.acl", "+discard (%W~evals.requests", "+discard (~evals.requests"),
    ("roles", "redis/users.acl", "(~team-a.* ~_kombu", "(~evals.* ~_kombu"),
    ("roles", "redis/users.acl", "user default off", "user default on nopass"),
    ("roles", "redis/users.acl", "%R~unacked -@all +ping", "%R~unacked -@all +ping +hset"),
    ("roles", "redis/users.acl", "%W~evals.control %W", "%W~evals.* %W"),
    # The job store's role without a command one of its scripts calls (survey.lua's ZCOUNT).
    ("roles", "redis/users.acl", "+zrevrangebyscore +zcount", "+zrevrangebyscore"),
    # A RabbitMQ producer given more than the exchange evals.requests and its own queues.
    ("roles", "rabbitmq/definitions.json", '"write": "^evals\\\\.requests$"', '"write": ".*"'),
    ("roles", "rabbitmq/definitions.json", '"write": "^evals\\\\.requests$"',
     '"write": "evals\\\\.requests"'),
    ("roles", "rabbitmq/definitions.json", '"read": "^team-a\\\\..+$"',
     '"read": "^(team-a\\\\..+|evals\\\\.requests)$"'),
    ("roles", "rabbitmq/definitions.json", '"configure": "^team-a\\\\..+$"', '"configure": ".*"'),
    ("roles", "rabbitmq/definitions.json", '"write": ""', '"write": ".*"'),  # the exporter
]  # fmt: skip


@pytest.mark.parametrize(("check", "path", "old", "new"), BREAKAGES)
def test_a_broken_copy_fails(tmp_path: Path, check, path, old, new):
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    target = copy / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    assert checks.CHECKS[check](copy) != ""


# -- numbers that must agree across settings and manifests ---------------------------------------
def _rendered(entry: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / entry)], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _deployment(docs: list[dict], name: str) -> dict:
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


def test_grace_periods_outlast_every_time_limit_and_the_janitor_lock():
    settings = Settings()
    limits = time_limits(settings)
    # Only the synchronous worker runs these.
    run = max(limits.pop(name)["time_limit"] for name in (task_names.RUN, task_names.INVOKE))
    longest = max(limit["time_limit"] for limit in limits.values())
    assert settings.janitor_lock_seconds > settings.janitor_time_limit
    docs = _rendered("k8s")
    worker, synchronous = (_deployment(docs, name)["spec"]["template"]["spec"]
                           for name in ("evalq-worker", "evalq-worker-synchronous"))  # fmt: skip
    grace = worker["terminationGracePeriodSeconds"]
    assert grace > settings.janitor_lock_seconds > longest
    assert synchronous["terminationGracePeriodSeconds"] > run
    queues = {settings.requests_queue, settings.control_queue, settings.timers_queue}
    assert set(_queues(worker)) == queues
    assert _queues(synchronous) == [settings.synchronous_queue]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert _seconds(compose["services"]["worker"]["stop_grace_period"]) >= grace
    assert set(compose["services"]["worker"]["command"][2].split(",")) == queues
    unit = (DEPLOY / "systemd" / "evalq-worker.service").read_text()
    assert _seconds(re.search(r"TimeoutStopSec=(\w+)", unit)[1]) >= grace
    assert set(re.search(r"--queues (\S+)", unit)[1].split(",")) == queues
    unit = (DEPLOY / "systemd" / "evalq-worker-synchronous.service").read_text()
    assert _seconds(re.search(r"TimeoutStopSec=(\w+)", unit)[1]) > run
    assert f"--queues {settings.synchronous_queue}" in unit


def _queues(pod: dict) -> list[str]:
    args = pod["containers"][0]["args"]
    return str(args[args.index("--queues") + 1]).split(",")


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"(\d+)([smh]?)", str(text)).groups()
    return float(value) * {"": 1, "s": 1, "m": 60, "h": 3600}[unit]


def test_probes_run_evalq_health_and_beat_has_one():
    docs = _rendered("k8s")
    for name, role in (("evalq-worker", "--worker"), ("evalq-beat", "--beat")):
        container = _deployment(docs, name)["spec"]["template"]["spec"]["containers"][0]
        probes = [container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")
                  if p in container]  # fmt: skip
        assert probes
        for probe in probes:
            assert probe["exec"]["command"][:3] == ["evalq", "health", role]


def test_keda_scales_the_worker_on_the_request_queue_and_never_to_zero():
    docs = _rendered("k8s-keda")
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    worker = _deployment(docs, "evalq-worker")
    assert "replicas" not in worker["spec"]  # the HPA owns it
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert spec["minReplicaCount"] >= 1
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == Settings().requests_queue
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    broker = re.fullmatch(r"redis://([\w.-]+):(\d+)/(\d+)", config["EVALQ_BROKER_URL"])
    host, port = trigger["metadata"]["address"].split(":")
    assert host.split(".")[0] == broker[1]
    assert port == broker[2]
    assert trigger["metadata"]["databaseIndex"] == broker[3]


#: The Secret each component's credentials come from (docs/roles.md).
_CREDENTIALS = {
    "evalq-worker": "evalq-worker-secrets",
    "evalq-worker-synchronous": "evalq-worker-secrets",
    "evalq-beat": "evalq-worker-secrets",
    "evalq-exporter": "evalq-exporter-secrets",
}


def test_each_component_has_its_network_policy_and_its_own_credentials():
    docs = _rendered("k8s")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    (deny,) = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == set(_CREDENTIALS)
    for deployment in deployments:
        name, pod = deployment["metadata"]["name"], deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        (policy,) = [p for p in policies if p["spec"]["podSelector"].get("matchLabels", {0: 0})
                     .items() <= labels.items()]  # fmt: skip
        spec = policy["spec"]
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"], name
        ports = {port["port"] for rule in spec["egress"] for port in rule["ports"]}
        assert {53, 6379} <= ports <= {53, 6379, 26379, 5671, 5672, 443}, name
        if name == "evalq-exporter":
            (rule,) = spec["ingress"]
            assert [p["port"] for p in rule["ports"]] == [9808]
            assert rule["from"][0]["podSelector"]["matchLabels"]
        else:
            assert "ingress" not in spec, name  # nothing may connect to it
        if name == "evalq-beat":
            assert 443 not in ports  # beat talks to no AWS API
        secrets = [s["secretRef"]["name"] for s in pod["spec"]["containers"][0]["envFrom"]
                   if "secretRef" in s]  # fmt: skip
        assert secrets == [_CREDENTIALS[name]], name
