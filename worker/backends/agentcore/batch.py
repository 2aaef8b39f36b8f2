"""Amazon Bedrock AgentCore batch evaluations through boto3 (a thin hook, Airflow-style)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api_contracts import EvaluationRequest
from worker.backends.agentcore.classification import classify
from worker.backends.agentcore.client import client_token, derive_job_name, make_client
from worker.backends.base import RemoteJob
from worker.errors import RemoteJobNotFound
from worker.jobs.record import Job
from worker.observability.metrics import NO_CALL_METRICS, RemoteCalls
from worker.settings import Settings


class AgentCoreBackend:
    name = "agentcore"

    def __init__(self, client: Any, name_prefix: str, calls: RemoteCalls = NO_CALL_METRICS) -> None:
        self.client = client
        self.name_prefix = name_prefix
        self.calls = calls

    @classmethod
    def from_settings(
        cls, settings: Settings, calls: RemoteCalls = NO_CALL_METRICS
    ) -> AgentCoreBackend:
        return cls(make_client(settings), settings.job_name_prefix, calls)

    def remote_name(self, request: EvaluationRequest) -> str:
        """The name the request's remote job gets: the producer's, else the derived one."""
        given = request.evaluation.batchEvaluationName
        return given or derive_job_name(self.name_prefix, request.request_id)

    def start(self, job: Job) -> RemoteJob:
        request = EvaluationRequest.model_validate(job.request)
        params = request.evaluation.to_boto3_kwargs()
        params.setdefault("batchEvaluationName", derive_job_name(self.name_prefix, job.request_id))
        params["clientToken"] = client_token(job.request_id)
        return _remote(self._call("start_batch_evaluation", **params))

    def get(self, remote_id: str) -> RemoteJob:
        return _remote(self._call("get_batch_evaluation", batchEvaluationId=remote_id))

    def stop(self, remote_id: str) -> RemoteJob:
        return _remote(self._call("stop_batch_evaluation", batchEvaluationId=remote_id))

    def delete(self, remote_id: str) -> None:
        try:
            self._call("delete_batch_evaluation", batchEvaluationId=remote_id)
        except RemoteJobNotFound:
            return

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """One ListBatchEvaluations page (for callers that rate-limit each call) and the
        token of the next page, if any."""
        page = self._call(
            "list_batch_evaluations", maxResults=100, **({"nextToken": token} if token else {})
        )
        return [_remote(s) for s in page.get("batchEvaluations", [])], page.get("nextToken")

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        with self.calls.measure(operation):
            try:
                response: dict[str, Any] = getattr(self.client, operation)(**params)
            except Exception as exc:
                raise classify(exc) from exc
        response.pop("ResponseMetadata", None)
        return response


def _remote(body: dict[str, Any]) -> RemoteJob:
    safe = _json_safe(body)
    created = body.get("createdAt")
    return RemoteJob(
        id=safe["batchEvaluationId"],
        arn=safe.get("batchEvaluationArn"),
        name=safe.get("batchEvaluationName"),
        status=safe["status"],
        body=safe,
        created_at=created.timestamp() if isinstance(created, datetime) else None,
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
