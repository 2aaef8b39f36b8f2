"""Every failure is classified: retryable (throttling, 5xx, connections, timeouts),
back-pressure (quota) or permanent (validation, access, credentials, unknown backend), and
what the lifecycle does with each."""

from __future__ import annotations

import json
import urllib.request

import boto3
import botocore.exceptions
import pytest
import redis

from api_contracts import ReasonCode
from api_contracts.examples import sample_request
from tests.unit.conftest import reconfigure
from worker.backends.agentcore import classify
from worker.errors import (
    BackPressure,
    PermanentError,
    RemoteConflict,
    RemoteJobNotFound,
    RetryableError,
    Throttled,
)
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.states import JobState

MODEL = boto3.client("bedrock-agentcore", region_name="us-east-1").meta.service_model


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "StartBatchEvaluation",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind", "reason"),
    [
        # Throttling, under any of the names AWS services use: never spends an attempt.
        ("ThrottlingException", 429, Throttled, None),
        ("InternalServerException", 500, RetryableError, None),
        ("ThrottledException", 429, Throttled, None),
        ("Throttling", 400, Throttled, None),
        ("RequestLimitExceeded", 400, Throttled, None),
        ("TooManyRequestsException", 400, Throttled, None),
        ("SomethingElse", 429, Throttled, None),
        # 5xx and timeouts.
        ("ServiceException", 500, RetryableError, None),
        ("BadGateway", 502, RetryableError, None),
        ("ServiceUnavailableException", 503, RetryableError, None),
        ("GatewayTimeout", 504, RetryableError, None),
        ("RequestTimeout", 400, RetryableError, None),
        ("RequestTimeoutException", 408, RetryableError, None),
        ("RetryableConflictException", 409, RetryableError, None),
        # Credentials: 401, and the 403/400 answers AWS gives for bad or expired keys.
        ("UnrecognizedClientException", 403, PermanentError, ReasonCode.unauthorized),
        ("InvalidSignatureException", 403, PermanentError, ReasonCode.unauthorized),
        ("ExpiredTokenException", 400, PermanentError, ReasonCode.unauthorized),
        ("SomethingElse", 401, PermanentError, ReasonCode.unauthorized),
        ("SubscriptionRequiredException", 403, PermanentError, ReasonCode.access_denied),
        ("InvalidInputException", 400, PermanentError, ReasonCode.remote_validation),
        ("DuplicateIdException", 409, RemoteConflict, ReasonCode.remote_conflict),
        ("RuntimeClientError", 424, PermanentError, None),
        ("ServiceQuotaExceededException", 402, BackPressure, None),
        ("ResourceNotFoundException", 404, RemoteJobNotFound, None),
    ],
)
def test_remote_error_codes_are_classified(code, status, kind, reason):
    error = classify(_client_error(code, status))
    assert type(error) is kind or (kind is PermanentError and isinstance(error, PermanentError))
    if reason is not None:
        assert error.reason == reason
    if kind is RetryableError:
        assert error.spends_attempt


@pytest.mark.parametrize("shape", MODEL.error_shapes, ids=lambda s: s.name)
def test_every_error_the_service_defines_has_a_class(shape):
    error = classify(_client_error(shape.name, shape.metadata["error"]["httpStatusCode"]))
    assert isinstance(error, RetryableError | BackPressure | PermanentError | RemoteJobNotFound)
    if not shape.metadata["error"].get("senderFault"):
        assert isinstance(error, RetryableError), "server faults are worth another try"


@pytest.mark.parametrize(
    "exc",
    [
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"),
        botocore.exceptions.ConnectTimeoutError(endpoint_url="http://x"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
        TimeoutError("slow"),
        ConnectionResetError("reset"),
    ],
    ids=type,
)
def test_connection_failures_and_timeouts_are_retryable(exc):
    assert type(classify(exc)) is RetryableError


@pytest.mark.parametrize(
    "exc",
    [
        botocore.exceptions.NoCredentialsError(),
        botocore.exceptions.PartialCredentialsError(provider="env", cred_var="secret"),
        botocore.exceptions.CredentialRetrievalError(provider="sso", error_msg="expired"),
    ],
    ids=type,
)
def test_missing_credentials_are_unauthorized(exc):
    assert classify(exc).reason == ReasonCode.unauthorized


def test_bad_parameters_and_bugs_are_permanent():
    invalid = botocore.exceptions.ParamValidationError(report="clientToken too short")
    assert classify(invalid).reason == ReasonCode.remote_validation
    assert classify(KeyError("oops")).reason == ReasonCode.internal_error


def test_secrets_never_reach_the_error_text():
    error = classify(
        botocore.exceptions.ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "key AKIAABCDEFGHIJKLMNOP"}},
            "StartBatchEvaluation",
        )
    )
    assert "AKIAABCDEFGHIJKLMNOP" not in str(error)


# -- what the lifecycle does with each ------------------------------------------------------
def _faults(emulator, body):
    request = urllib.request.Request(
        emulator.url + "/_emulator/faults", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request).close()


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("UnauthorizedException", "unauthorized"),
        ("AccessDeniedException", "access_denied"),
        ("ValidationException", "remote_validation"),
        ("ConflictException", "remote_conflict"),
    ],
)
def test_permanent_remote_errors_are_dead_lettered_at_once(services, emulator, error, reason):
    _faults(emulator, {"errors": {error: 1.0}})
    accept(services, sample_request(request_id="r1"))
    assert advance(services, "r1") == "dead"
    (letter,) = services.dead_letters.find()
    assert (letter.reason, letter.attempts, letter.task_name) == (reason, 1, "evals.advance")
    assert services.store.active_count("default") == 0


def test_throttling_past_the_time_budget_is_retries_exhausted(services, emulator, clock):
    _faults(emulator, {"throttle": 1.0})
    accept(services, sample_request(request_id="r1"))
    assert advance(services, "r1") == "retry"
    clock.advance(services.settings.retry_max_seconds + 1)
    assert advance(services, "r1") == "dead"
    (letter,) = services.dead_letters.find()
    assert letter.reason == "retries_exhausted"


def test_a_job_whose_target_left_the_configuration_is_dead_lettered(services, tmp_path):
    accept(services, sample_request(request_id="r1"))
    other = tmp_path / "targets.yaml"
    other.write_text("targets: [{name: other, region: us-east-1}]\n")
    reconfigure(services, targets_file=str(other))
    assert advance(services, "r1") == "dead"
    assert services.dead_letters.find()[0].reason == "no_target"


def test_an_unknown_backend_name_in_a_request_is_its_own_reason(services):
    accept(services, sample_request(request_id="r1", backend="vertex"))
    (letter,) = services.dead_letters.find()
    assert letter.reason == "unknown_backend"
    assert services.store.get("r1") is None


def test_an_unexpected_error_is_retried_then_dead_lettered_as_internal(services, monkeypatch):
    accept(services, sample_request(request_id="r1"))

    def broken(job, **_):
        raise KeyError("a bug")

    monkeypatch.setattr(services.targets["default"].backend, "start", broken)
    outcomes = [advance(services, "r1") for _ in range(4)]
    assert outcomes == ["retry", "retry", "retry", "dead"]
    (letter,) = services.dead_letters.find()
    assert letter.reason == "internal_error"
    assert "KeyError" in letter.error
    assert services.store.get("r1").state == JobState.DEAD


def test_an_unreachable_store_is_not_dead_lettered(services, monkeypatch):
    accept(services, sample_request(request_id="r1"))

    def down(job, **_):
        raise redis.ConnectionError("gone")

    monkeypatch.setattr(services.targets["default"].backend, "start", down)
    with pytest.raises(redis.ConnectionError):
        advance(services, "r1")
    assert services.dead_letters.count() == 0


def test_text_redis_cannot_store_still_becomes_a_dead_letter(services):
    request = sample_request(request_id="r1")
    request["evaluation"]["description"] = "lone \ud800 surrogate"
    assert accept(services, request).outcome == "rejected"
    (letter,) = services.dead_letters.find()
    assert letter.reason == "invalid_request"
    assert letter.request["evaluation"]["description"] == "lone \\ud800 surrogate"
