"""Several accounts from one queue: three emulator processes as three AgentCore accounts,
one targets file, real worker and beat processes, requests sent by task name."""

from __future__ import annotations

import collections
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.config import Config

from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request
from evalq_emulators.processes import evalq_command

QUOTAS = {"checkout": 2, "search": 3, "support": 5}


def _request(i: int, service: str, *, sessions: int = 2) -> dict[str, Any]:
    request = sample_request(request_id=f"{service}-{i:03d}", producer=f"team-{i % 2}")
    request["evaluation"]["dataSourceConfig"] = {
        "cloudWatchLogs": {"serviceNames": [f"{service}-agent"],
                           "logGroupNames": [f"/aws/agents/{service}"]}
    }  # fmt: skip
    request["evaluation"]["tags"] = {"emulator:sessions": str(sessions)}
    return request


def _targets_file(tmp_path: Path, emulators: dict[str, Any]) -> Path:
    lines = ["targets:"]
    for name, emulator in emulators.items():
        lines += [
            f"  - name: {name}",
            "    region: us-east-1",
            f"    endpoint_url: {emulator.url}",
            f"    max_active_jobs: {QUOTAS[name]}",
            f"    job_name_prefix: evalq{name}_",
            f"    match: {{log_group_prefixes: [/aws/agents/{name}]}}",
        ]
    path = tmp_path / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _three_accounts(
    emulator_factory: Any, cluster_factory: Any, tmp_path: Path, **settings: str
) -> Any:
    emulators = {name: emulator_factory("--time-scale", "40") for name in QUOTAS}
    path = _targets_file(tmp_path, emulators)
    cluster = cluster_factory(
        emulators["checkout"],
        EVALQ_TARGETS_FILE=str(path),
        EVALQ_JANITOR_INTERVAL="1",
        **settings,
    )
    cluster.start_worker("w1", concurrency=3)
    cluster.start_beat()
    return emulators, cluster


def _client(emulator: Any) -> Any:
    return boto3.client(
        "bedrock-agentcore", endpoint_url=emulator.url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip


def test_routed_traffic_completes_in_each_account_within_its_quota(
    emulator_factory, cluster_factory, producer, tmp_path
):
    emulators, cluster = _three_accounts(emulator_factory, cluster_factory, tmp_path)
    # Someone else's job in search's account, named with checkout's prefix.
    evaluation = EvaluationRequest.model_validate(sample_request()).evaluation
    foreign = evaluation.to_boto3_kwargs() | {
        "batchEvaluationName": "evalqcheckout_foreign",
        "tags": {"emulator:duration": "1000000000000"},
    }
    _client(emulators["search"]).start_batch_evaluation(
        clientToken=f"foreign-{uuid.uuid4().hex}", **foreign
    )

    requests = [_request(i, name) for name in QUOTAS for i in range(8)]
    for request in requests:
        producer.submit(request)
    producer.submit(_request(0, "elsewhere"))
    outcomes = {o["request_id"]: o for o in producer.collect(len(requests), timeout=240)}

    assert len(outcomes) == len(requests)
    assert {o["status"] for o in outcomes.values()} == {"COMPLETED"}
    assert {rid: o["target"] for rid, o in outcomes.items()} == {
        r["request_id"]: r["request_id"].split("-")[0] for r in requests
    }
    for name, emulator in emulators.items():
        stats = emulator.stats()
        ours = [j for j in emulator.jobs() if j["batchEvaluationName"].startswith(f"evalq{name}_")]
        assert len(ours) == 8, name
        assert stats["max_active"] <= QUOTAS[name] + (1 if name == "search" else 0), name
    searched = {j["batchEvaluationName"]: j for j in emulators["search"].jobs()}
    assert searched["evalqcheckout_foreign"]["stop_requested_at"] is None

    store = redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"], decode_responses=True)
    letters = [json.loads(store.get(f"evalq:dead:{i}")) for i in store.zrange("evalq:dead", 0, -1)]
    assert [(d["request_id"], d["reason"]) for d in letters] == [("elsewhere-000", "no_target")]
    listed = subprocess.run(
        evalq_command("jobs", "--target", "search", "--json", "--limit", "100"),
        env=cluster.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    shown = [json.loads(line) for line in listed.stdout.splitlines()]
    assert collections.Counter(v["target"] for v in shown) == {"search": 8}


def test_one_accounts_outage_does_not_stop_the_others(
    emulator_factory, cluster_factory, producer, tmp_path
):
    # The outage is shorter than the retry budget: the stuck requests recover after it.
    emulators, _ = _three_accounts(
        emulator_factory, cluster_factory, tmp_path, EVALQ_RETRY_MAX_ATTEMPTS="1000"
    )
    emulators["checkout"].post("/_emulator/faults", {"server_error": 1.0})

    healthy = [_request(i, name) for name in ("search", "support") for i in range(6)]
    stuck = [_request(i, "checkout") for i in range(3)]
    for request in stuck + healthy:
        producer.submit(request)
    done = {o["request_id"] for o in producer.collect(len(healthy), timeout=180)}

    assert done == {r["request_id"] for r in healthy}
    emulators["checkout"].post("/_emulator/faults", {"server_error": 0.0})
    recovered = {o["request_id"] for o in producer.collect(len(stuck), timeout=180)}
    assert recovered == {r["request_id"] for r in stuck}
