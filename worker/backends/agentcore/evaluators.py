"""UpdateEvaluator and GetEvaluator (bedrock-agentcore-control), classified for a rollout.

The ``clientToken`` of an update derives from the rollout's ``request_id``, so every
delivery and every retry of one rollout asks for the same update. Failures map onto
evalq's hierarchy:

* locked by an enabled online evaluation config -> :class:`~worker.errors.EvaluatorLocked`
  naming the config(s) (looked up, since the service's message need not name them);
* unknown evaluator -> ``PermanentError(invalid_request)`` with the service's message;
* a conflict while the evaluator is CREATING or UPDATING -> retryable (try later);
  any other conflict -> ``RemoteConflict``;
* an answer about another evaluator -> ``PermanentError(idempotency_conflict)``: the
  service ignores an update whose clientToken it has seen (without an error, whatever
  the parameters) and answers as it did then, so the request_id was reused after evalq
  forgot it. A reuse on the same evaluator with another update cannot be told from the
  answer (it carries no parameters);
* throttling, 5xx, connections -> retryable, as everywhere (``classification.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import botocore.exceptions

from api_contracts import ReasonCode
from worker.backends.agentcore.classification import classify
from worker.backends.agentcore.client import client_token, make_control_client
from worker.errors import (
    EvalqError,
    EvaluatorLocked,
    PermanentError,
    RemoteConflict,
    RemoteJobNotFound,
    RetryableError,
)
from worker.observability.redaction import redact
from worker.settings import Settings

#: Evaluator states in which the service refuses an update for now, not for good
#: (DELETING is for good: such a conflict stays a ``RemoteConflict``).
_BUSY = frozenset({"CREATING", "UPDATING"})


class EvaluatorClient:
    """A thin hook over the control plane's evaluator operations."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> EvaluatorClient:
        return cls(make_control_client(settings))

    def get(self, evaluator_id: str) -> dict[str, Any]:
        """The GetEvaluator body, JSON-safe (timestamps as ISO 8601 strings)."""
        return _json_safe(self._call("get_evaluator", evaluatorId=evaluator_id))

    def check_updatable(self, evaluator_id: str) -> dict[str, Any]:
        """The GetEvaluator body, if the evaluator exists and no enabled online evaluation
        configuration locks it; else ``PermanentError(invalid_request)`` with the service's
        message, or :class:`EvaluatorLocked` naming the lock (before a rollout drains)."""
        body = self.get(evaluator_id)
        if body.get("lockedForModification"):
            raise self._locked(evaluator_id, "lockedForModification is true")
        return body

    def update(self, evaluator_id: str, update: dict[str, Any], request_id: str) -> dict[str, Any]:
        """Call UpdateEvaluator once (202: the update runs); the UpdateEvaluator body.

        ``update`` is ``EvaluatorUpdate.to_boto3_kwargs()``; the clientToken derives from
        ``request_id``, so a repeated call is the same update, not a second one.
        """
        params = {**update, "evaluatorId": evaluator_id, "clientToken": client_token(request_id)}
        try:
            answer = _json_safe(self._call("update_evaluator", **params))
        except RemoteConflict as conflict:
            raise self._explain_conflict(evaluator_id, conflict) from conflict
        _check_ours(answer, evaluator_id)
        return answer

    def locks(self, evaluator_id: str) -> list[str]:
        """Names (and ids) of the enabled online evaluation configs that reference it."""
        found = []
        token: str | None = None
        while True:
            page = self._call(
                "list_online_evaluation_configs",
                maxResults=100,
                **({"nextToken": token} if token else {}),
            )
            for summary in page.get("onlineEvaluationConfigs", []):
                if summary.get("executionStatus") != "ENABLED":
                    continue
                config_id = summary["onlineEvaluationConfigId"]
                config = self._call(
                    "get_online_evaluation_config", onlineEvaluationConfigId=config_id
                )
                referenced = {e.get("evaluatorId") for e in config.get("evaluators") or []}
                if evaluator_id in referenced:
                    found.append(f"{summary.get('onlineEvaluationConfigName')} ({config_id})")
            token = page.get("nextToken")
            if not token:
                return found

    def _locked(self, evaluator_id: str, said: str) -> EvaluatorLocked:
        """The lock, naming the enabled configurations that hold it."""
        try:
            names = ", ".join(self.locks(evaluator_id)) or "not listed"
        except EvalqError:
            names = "not listed (could not read the online evaluation configs)"
        return EvaluatorLocked(
            f"Evaluator {evaluator_id} is locked for modification by enabled online "
            f"evaluation configuration(s): {names}. Disable them, then replay. "
            f"The service said: {said}"
        )

    def _explain_conflict(self, evaluator_id: str, conflict: RemoteConflict) -> EvalqError:
        """Why UpdateEvaluator said 409: the lock, a running update, or a reused token."""
        try:
            current = self.get(evaluator_id)
        except EvalqError:
            return conflict
        if current.get("lockedForModification"):
            return self._locked(evaluator_id, str(conflict))
        if current.get("status") in _BUSY:
            return RetryableError(
                f"Evaluator {evaluator_id} is {current['status']}; the update waits ({conflict})"
            )
        return conflict

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
        except botocore.exceptions.ClientError as exc:
            raise _classify(exc) from exc
        except Exception as exc:
            raise classify(exc) from exc
        response.pop("ResponseMetadata", None)
        return response


def _check_ours(answer: dict[str, Any], evaluator_id: str) -> None:
    """The service ignores an update whose clientToken it has seen, without an error, and
    answers as it did then: an answer about another evaluator is an earlier rollout's
    (the request_id reused after evalq forgot it), and nothing was updated."""
    answered = answer.get("evaluatorId")
    if answered is not None and answered != evaluator_id:
        raise PermanentError(
            f"UpdateEvaluator answered about evaluator {answered}, updated earlier with this "
            f"request_id's clientToken, not {evaluator_id}: the service ignores an update "
            "whose clientToken it has seen. Send the rollout under a new request_id",
            ReasonCode.idempotency_conflict,
        )


def _classify(exc: botocore.exceptions.ClientError) -> EvalqError:
    error = classify(exc)
    if isinstance(error, RemoteJobNotFound):
        message = redact(str(exc.response.get("Error", {}).get("Message", "")) or str(error))
        return PermanentError(message, ReasonCode.invalid_request)
    return error


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    safe: dict[str, Any] = _jsonable(value)
    return safe


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
