"""The baseline evalq is measured against: a plain Celery task that starts a job and polls
it every 30 emulated seconds with a fixed delay, as AWS's own examples do (holding its
worker process while it sleeps). Run as ``celery -A tests.bench.baseline worker``."""

from __future__ import annotations

import json
import os
import time
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


@app.task(name="baseline.run")
def run(request: dict[str, Any], time_scale: float) -> None:
    client = boto3.client(
        "bedrock-agentcore", region_name="us-east-1",
        endpoint_url=os.environ["EVALQ_AGENTCORE_ENDPOINT_URL"],
        aws_access_key_id="bench", aws_secret_access_key="bench",
        config=Config(retries={"total_max_attempts": 10, "mode": "standard"}),
    )  # fmt: skip
    evaluation = dict(request["evaluation"])
    evaluation["batchEvaluationName"] = derive_job_name("base_", request["request_id"])
    started = client.start_batch_evaluation(clientToken=client_token(request["request_id"]),
                                            **evaluation)  # fmt: skip
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
