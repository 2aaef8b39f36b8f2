"""Amazon Bedrock AgentCore batch evaluations through boto3 (a thin hook, Airflow-style),
and the target's harness and evaluator clients (scenario runs, rollouts).

A start's clientToken derives from the request_id, so every retry asks for the same job.
The service ignores a start whose token it has seen, without an error, whatever its
parameters, and answers with the earlier job: a request_id reused (after evalq forgot
it) with other parameters would silently get the earlier request's job. So a start's
answer must echo what was asked (``_ECHOED``); else the job is an
``idempotency_conflict``.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from api_contracts import AgentCoreEvaluation, EvaluationRequest, ReasonCode, ScenarioRun
from worker.backends.agentcore.classification import classify
from worker.backends.agentcore.client import (
    client_token,
    derive_job_name,
    make_client,
    make_control_client,
    make_harness_client,
)
from worker.backends.agentcore.evaluators import EvaluatorClient
from worker.backends.agentcore.harness import HarnessClient
from worker.backends.agentcore.status import counts_of, status_of
from worker.backends.base import Capabilities, RemoteJob, Scope, StartSpec
from worker.errors import PermanentError, RemoteJobNotFound
from worker.settings import Settings
from worker.targets.config import TargetConfig


class AgentCoreBackend:
    name = "agentcore"
    capabilities = Capabilities()

    def __init__(
        self,
        client: Any,
        name_prefix: str,
        call_timeout: float = 20.0,
        *,
        settings: Settings | None = None,
        target: TargetConfig | None = None,
    ) -> None:
        self.client = client
        self.name_prefix = name_prefix
        self.call_timeout = call_timeout
        #: Where the harness and control-plane clients are made from (on first use).
        self._settings = settings
        self._target = target

    @classmethod
    def for_target(cls, settings: Settings, target: TargetConfig) -> AgentCoreBackend:
        return cls(
            make_client(settings, target),
            target.job_name_prefix,
            settings.aws_read_timeout,
            settings=settings,
            target=target,
        )

    @cached_property
    def harness(self) -> HarnessClient:
        """InvokeHarness in this target (scenario runs)."""
        if self._settings is None:
            raise RuntimeError("this backend was built without settings: no harness client")
        return HarnessClient(make_harness_client(self._settings, self._target))

    @cached_property
    def evaluators(self) -> EvaluatorClient:
        """UpdateEvaluator and GetEvaluator in this target (rollouts)."""
        if self._settings is None:
            raise RuntimeError("this backend was built without settings: no control client")
        return EvaluatorClient(make_control_client(self._settings, self._target))

    def remote_name(self, request: EvaluationRequest, job_id: str) -> str:
        """The name the request's remote job gets: the producer's, else the derived one."""
        given = request.evaluation_of(AgentCoreEvaluation).batchEvaluationName
        return given or derive_job_name(self.name_prefix, job_id)

    def start(self, spec: StartSpec, *, timeout: float | None = None) -> RemoteJob:
        request = EvaluationRequest.model_validate(spec.request)
        params = request.evaluation_of(AgentCoreEvaluation).to_boto3_kwargs()
        if request.scenarios is not None:
            name_sessions(params, request.scenarios, spec.scenarios or [])
        params.setdefault("batchEvaluationName", derive_job_name(self.name_prefix, spec.request_id))
        params["clientToken"] = client_token(spec.request_id)
        answer = self._call("start_batch_evaluation", **params)
        _check_echo(params, answer)
        return _remote(answer)

    def find(self, spec: StartSpec) -> RemoteJob | None:
        return None  # the clientToken makes a retried start return the same job

    def get(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        return _remote(self._call("get_batch_evaluation", batchEvaluationId=remote_id))

    def stop(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        return _remote(self._call("stop_batch_evaluation", batchEvaluationId=remote_id))

    def delete(self, remote_id: str, scope: Scope | None = None) -> None:
        try:
            self._call("delete_batch_evaluation", batchEvaluationId=remote_id)
        except RemoteJobNotFound:
            return

    def delete_many(self, jobs: list[tuple[str, Scope]]) -> None:
        for remote_id, _ in jobs:
            self.delete(remote_id)

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """One ListBatchEvaluations page (for callers that rate-limit each call) and the
        token of the next page, if any."""
        page = self._call(
            "list_batch_evaluations", maxResults=100, **({"nextToken": token} if token else {})
        )
        return [_remote(s) for s in page.get("batchEvaluations", [])], page.get("nextToken")

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
        except Exception as exc:
            raise classify(exc) from exc
        response.pop("ResponseMetadata", None)
        return response


def name_sessions(params: dict[str, Any], run: ScenarioRun, items: list[dict[str, Any]]) -> None:
    """Name in ``params`` (StartBatchEvaluation's) exactly the sessions of the scenario
    items whose stream ended (``filterConfig.sessionIds``), each with its item's
    ``sessionMetadata`` (scenario id, ground truth). ``items`` are the job's per-item
    results, frozen when the job entered the backlog, so every start asks the same."""
    ended = [i for i in items if i.get("stop_reason") is not None and i.get("session_id")]
    source = params["dataSourceConfig"]["cloudWatchLogs"]
    source.setdefault("filterConfig", {})["sessionIds"] = [i["session_id"] for i in ended]
    params["evaluationMetadata"] = {
        "sessionMetadata": [run.items[i["index"]].session_metadata(i["session_id"]) for i in ended]
    }


#: Members of StartBatchEvaluation's answer that echo its request.
_ECHOED = ("batchEvaluationName", "evaluators", "insights", "description", "kmsKeyArn", "tags")


def _check_echo(params: dict[str, Any], answer: dict[str, Any]) -> None:
    """``idempotency_conflict`` unless the answer echoes the start's parameters: else it
    is the job an earlier request started with the same clientToken (the service ignored
    this start). Members the answer leaves out are not compared."""
    differ = [m for m in _ECHOED if m in answer and not _same(m, params.get(m), answer[m])]
    if differ:
        raise PermanentError(
            f"StartBatchEvaluation answered with batch evaluation "
            f"{answer.get('batchEvaluationId')}, started earlier with this request_id's "
            f"clientToken and another {', '.join(differ)}: the service ignores a start whose "
            "clientToken it has seen. The request_id was reused after evalq forgot it; "
            "send the request under a new request_id",
            ReasonCode.idempotency_conflict,
        )


def _same(member: str, asked: Any, answered: Any) -> bool:
    """Whether an answer's member echoes what was asked: lists in any order, tags as far
    as the keys sent go (a service may add its own), absent the same as empty."""
    if not asked and not answered:
        return True  # left out and answered empty alike
    if member == "tags":
        return all((answered or {}).get(k) == v for k, v in (asked or {}).items())
    if isinstance(asked, list) and isinstance(answered, list):
        return sorted(map(repr, asked)) == sorted(map(repr, answered))
    return bool(asked == answered)


def _remote(body: dict[str, Any]) -> RemoteJob:
    safe = _json_safe(body)
    created = body.get("createdAt")
    return RemoteJob(
        id=safe["batchEvaluationId"],
        arn=safe.get("batchEvaluationArn"),
        name=safe.get("batchEvaluationName"),
        status=status_of(safe["status"]),
        body=safe,
        created_at=created.timestamp() if isinstance(created, datetime) else None,
        counts=counts_of(safe),
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
