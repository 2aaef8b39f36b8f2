from __future__ import annotations

import re

import boto3
import botocore.exceptions
import pytest

from worker.backends.agentcore import classify, client_token, derive_job_name
from worker.errors import (
    RetryableError,
)

MODEL = boto3.client("bedrock-agentcore", region_name="us-east-1").meta.service_model
START = MODEL.operation_model("StartBatchEvaluation").input_shape


def _fullmatch(shape_name: str, value: str) -> bool:
    shape = START.members[shape_name]
    meta = shape.metadata
    ok_len = meta.get("min", 0) <= len(value) <= meta.get("max", 10**9)
    return ok_len and re.fullmatch(meta["pattern"], value) is not None


@pytest.mark.parametrize("request_id", ["r", "req-1", "x" * 128, "a.b:c-d_e"])
def test_client_token_and_name_satisfy_the_service_model(request_id):
    assert _fullmatch("clientToken", client_token(request_id))
    assert _fullmatch("batchEvaluationName", derive_job_name("evalq_", request_id))


def test_derived_values_are_deterministic_and_distinct():
    assert client_token("a") == client_token("a") != client_token("b")
    assert derive_job_name("evalq_", "a") != derive_job_name("evalq_", "b")


def test_connection_failures_are_retryable():
    error = classify(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
    assert isinstance(error, RetryableError)
    assert error.spends_attempt
