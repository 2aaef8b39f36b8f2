"""The baselines evalq is measured against, as plain Celery tasks would do it without evalq.
Run as ``celery -A tests.bench.baseline worker -Q baseline``.

* ``baseline.run``: start a job and poll it every 30 emulated seconds with a fixed delay, as
  AWS's own examples do (holding its worker process while it sleeps).
* ``baseline.start``: start a job, with Celery's own ``rate_limit`` set to the account's
  3 TPS (a per-worker limit: several workers together exceed it) and botocore's standard
  retries on throttling."""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from typing import Any

import boto3
import redis
from botocore.config import Config
from celery import Celery

from worker.backends.agentcore import client_token, derive_job_name

app = Celery("baseline", broker=os.environ.get("EVALQ_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(task_serializer="json", accept_content=["json"], task_acks_late=True,
                worker_prefetch_multiplier=1, task_ignore_result=True)  # fmt: skip

POLL_SECONDS = 30.0  # emulated


@lru_cache(maxsize=1)
def _client() -> Any:
    return boto3.client(
        "bedrock-agentcore", region_name="us-east-1",
        endpoint_url=os.environ["EVALQ_AGENTCORE_ENDPOINT_URL"],
        aws_access_key_id="bench", aws_secret_access_key="bench",
        config=Config(retries={"total_max_attempts": 10, "mode": "standard"}),
    )  # fmt: skip


def _start(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    evaluation = dict(request["evaluation"])
    evaluation["batchEvaluationName"] = derive_job_name("base_", request["request_id"])
    return dict(client.start_batch_evaluation(clientToken=client_token(request["request_id"]),
                                              **evaluation))  # fmt: skip


@app.task(name="baseline.run")
def run(request: dict[str, Any], time_scale: float) -> None:
    client = _client()
    started = _start(client, request)
    gets = 0
    while True:
        time.sleep(POLL_SECONDS / time_scale)
        body = client.get_batch_evaluation(batchEvaluationId=started["batchEvaluationId"])
        gets += 1
        if body["status"] in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED"):
            break
    record = {"id": started["batchEvaluationId"], "detected_at": time.time(), "gets": gets}
    store = redis.Redis.from_url(os.environ["EVALQ_REDIS_URL"])
    store.rpush("baseline:done", json.dumps(record))


@app.task(name="baseline.start", rate_limit="3/s")
def start(request: dict[str, Any]) -> None:
    outcome = "started"
    try:
        _start(_client(), request)
    except Exception:
        outcome = "failed"  # botocore gave up (throttled on every attempt)
    finally:
        redis.Redis.from_url(os.environ["EVALQ_REDIS_URL"]).hincrby("baseline:starts", outcome)
