"""The control-plane operations on evaluators and online evaluation configs.

Every method runs under the emulator state's lock and returns the operation's output as
the service model spells it (see ``evaluators.py`` for the rules).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from .config import EmulatorConfig
from .errors import conflict, field_validation_error, validation_error
from .evaluators import (
    BUILTIN_CREATED_AT,
    BUILTIN_LEVELS,
    TAG_DELETE_DURATION,
    TAG_UPDATE_OUTCOME,
    UPDATABLE,
    Evaluator,
    EvaluatorUpdate,
    OnlineConfig,
    builtin_config,
    check_tags,
    config_not_found,
    evaluator_not_found,
    evaluator_type,
    locked,
    not_updatable,
    update_plan,
)
from .jobs import ACCOUNT_ID

DEFAULT_MAX_RESULTS = 100


class EvaluatorRegistry:
    """The evaluators and online evaluation configs of one region."""

    def __init__(
        self,
        config: EmulatorConfig,
        new_suffix: Callable[[], str],
        roll_update_failure: Callable[[], bool],
        region: str | None = None,
    ) -> None:
        self._config = config
        self.region = region or config.region
        self._new_suffix = new_suffix
        self._roll_update_failure = roll_update_failure
        self.evaluators: dict[str, Evaluator] = {
            eid: _builtin(eid, level) for eid, level in BUILTIN_LEVELS.items()
        }
        self.configs: dict[str, OnlineConfig] = {}
        #: (operation, clientToken) -> the answer given.
        self._tokens: dict[tuple[str, str], dict[str, Any]] = {}

    # --- evaluators --------------------------------------------------------------

    def create_evaluator(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        replay = self._replay("CreateEvaluator", params)
        if replay is not None:
            return replay
        request = _without_token(params)
        name: str = request["evaluatorName"]
        check_tags(request.get("tags") or {})
        if any(e.name == name and not e.builtin for e in self.evaluators.values()):
            raise conflict(f"An evaluator named {name} already exists")
        evaluator_id = self._new_id(name, self.evaluators)
        evaluator = Evaluator(
            evaluator_id=evaluator_id,
            arn=self._arn("evaluator", evaluator_id),
            name=name,
            created_at=now,
            ready_at=now + self._config.real_seconds(self._config.create_seconds),
            fields={k: request[k] for k in UPDATABLE if request.get(k) is not None},
            tags=dict(request.get("tags") or {}),
        )
        self.evaluators[evaluator_id] = evaluator
        out = {
            "evaluatorArn": evaluator.arn,
            "evaluatorId": evaluator_id,
            "createdAt": now,
            "status": evaluator.status(now),
        }
        self._remember("CreateEvaluator", params, out)
        return out

    def get_evaluator(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        evaluator = self._evaluator(params["evaluatorId"], now)
        return {**self._summary(evaluator, now), **_config_part(evaluator, now)}

    def delete_evaluator(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        evaluator = self._evaluator(params["evaluatorId"], now)
        if evaluator.builtin:
            raise not_updatable(evaluator.evaluator_id, "deleted")
        lockers = self.locked_by(evaluator.evaluator_id)
        if lockers:
            raise locked(evaluator.evaluator_id, lockers)
        status = evaluator.status(now)
        if status in ("CREATING", "UPDATING", "DELETING"):
            raise conflict(f"Evaluator {evaluator.evaluator_id} is {status}; try again later")
        default = self._config.real_seconds(self._config.update_seconds)
        evaluator.deleting_at = now
        evaluator.gone_at = now + update_plan(
            evaluator, default, self._config.time_scale, TAG_DELETE_DURATION
        )
        return {"evaluatorArn": evaluator.arn, "evaluatorId": evaluator.evaluator_id,
                "status": "DELETING"}  # fmt: skip

    def update_evaluator(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        replay = self._replay("UpdateEvaluator", params)
        if replay is not None:
            return replay
        evaluator = self._evaluator(params["evaluatorId"], now)
        if evaluator.builtin:
            raise not_updatable(evaluator.evaluator_id)
        lockers = self.locked_by(evaluator.evaluator_id)
        if lockers:
            raise locked(evaluator.evaluator_id, lockers)
        status = evaluator.status(now)
        if status in ("CREATING", "UPDATING", "DELETING", "CREATE_FAILED"):
            raise conflict(f"Evaluator {evaluator.evaluator_id} is {status}; try again later")
        request = _without_token(params)
        failed = evaluator.tags.get(TAG_UPDATE_OUTCOME) == "UPDATE_FAILED"
        outcome = "UPDATE_FAILED" if failed or self._roll_update_failure() else "ACTIVE"
        seconds = update_plan(
            evaluator,
            self._config.real_seconds(self._config.update_seconds),
            self._config.time_scale,
        )
        out = {
            "evaluatorArn": evaluator.arn,
            "evaluatorId": evaluator.evaluator_id,
            "updatedAt": now,
            "status": "UPDATING",
        }
        evaluator.updates.append(
            EvaluatorUpdate(now, now + seconds, outcome, params.get("clientToken"), request, out)
        )
        self._remember("UpdateEvaluator", params, out)
        return out

    def list_evaluators(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        self._forget_deleted(now)
        everything = list(self.evaluators.values())
        start = _decode_offset(params.get("nextToken"))
        size = params.get("maxResults", DEFAULT_MAX_RESULTS)
        page = everything[start : start + size]
        out: dict[str, Any] = {"evaluators": [self._summary(e, now) for e in page]}
        if start + size < len(everything):
            out["nextToken"] = _encode_offset(start + size)
        return out

    def locked_by(self, evaluator_id: str) -> list[str]:
        """Ids of the enabled online evaluation configs that reference the evaluator."""
        return [
            c.config_id
            for c in self.configs.values()
            if c.execution_status == "ENABLED" and evaluator_id in c.evaluator_ids()
        ]

    def _summary(self, evaluator: Evaluator, now: float) -> dict[str, Any]:
        fields = evaluator.current_fields(now)
        return {
            "evaluatorArn": evaluator.arn,
            "evaluatorId": evaluator.evaluator_id,
            "evaluatorName": evaluator.name,
            "description": fields.get("description"),
            "evaluatorType": "Builtin"
            if evaluator.builtin
            else evaluator_type(fields["evaluatorConfig"]),
            "provider": "AWS" if evaluator.builtin else "Custom",
            "level": fields.get("level"),
            "status": evaluator.status(now),
            "createdAt": evaluator.created_at,
            "updatedAt": evaluator.updated_at(now),
            "lockedForModification": bool(self.locked_by(evaluator.evaluator_id)),
            "kmsKeyArn": fields.get("kmsKeyArn"),
        }

    def _evaluator(self, evaluator_id: str, now: float) -> Evaluator:
        self._forget_deleted(now)
        evaluator = self.evaluators.get(evaluator_id)
        if evaluator is None:
            raise evaluator_not_found(evaluator_id)
        return evaluator

    def _forget_deleted(self, now: float) -> None:
        """Evaluators whose deletion ended are gone."""
        for evaluator_id, evaluator in list(self.evaluators.items()):
            if evaluator.gone_at is not None and now >= evaluator.gone_at:
                del self.evaluators[evaluator_id]

    # --- online evaluation configs -----------------------------------------------

    def create_config(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        replay = self._replay("CreateOnlineEvaluationConfig", params)
        if replay is not None:
            return replay
        request = _without_token(params)
        name: str = request["onlineEvaluationConfigName"]
        if any(c.name == name for c in self.configs.values()):
            raise conflict(f"An online evaluation configuration named {name} already exists")
        self._check_references(request.get("evaluators") or [])
        config_id = self._new_id(name, self.configs)
        online = OnlineConfig(
            config_id=config_id,
            arn=self._arn("online-evaluation-config", config_id),
            name=name,
            created_at=now,
            ready_at=now + self._config.real_seconds(self._config.create_seconds),
            fields={
                k: v
                for k, v in request.items()
                if k not in ("onlineEvaluationConfigName", "enableOnCreate", "tags")
            },
            execution_status="ENABLED" if request["enableOnCreate"] else "DISABLED",
            updated_at=now,
        )
        self.configs[config_id] = online
        out = {
            "onlineEvaluationConfigArn": online.arn,
            "onlineEvaluationConfigId": config_id,
            "createdAt": now,
            "outputConfig": online.fields.get("outputConfig"),
            "status": online.status(now),
            "executionStatus": online.execution_status,
        }
        self._remember("CreateOnlineEvaluationConfig", params, out)
        return out

    def get_config(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        online = self._online(params["onlineEvaluationConfigId"])
        return {
            **online.fields,
            "onlineEvaluationConfigArn": online.arn,
            "onlineEvaluationConfigId": online.config_id,
            "onlineEvaluationConfigName": online.name,
            "status": online.status(now),
            "executionStatus": online.execution_status,
            "createdAt": online.created_at,
            "updatedAt": online.updated_at,
        }

    def list_configs(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        everything = list(self.configs.values())
        start = _decode_offset(params.get("nextToken"))
        size = params.get("maxResults", DEFAULT_MAX_RESULTS)
        page = everything[start : start + size]
        summaries = [
            {
                "onlineEvaluationConfigArn": c.arn,
                "onlineEvaluationConfigId": c.config_id,
                "onlineEvaluationConfigName": c.name,
                "description": c.fields.get("description"),
                "status": c.status(now),
                "executionStatus": c.execution_status,
                "createdAt": c.created_at,
                "updatedAt": c.updated_at,
                "insights": c.fields.get("insights"),
                "clusteringConfig": c.fields.get("clusteringConfig"),
            }
            for c in page
        ]
        out: dict[str, Any] = {"onlineEvaluationConfigs": summaries}
        if start + size < len(everything):
            out["nextToken"] = _encode_offset(start + size)
        return out

    def update_config(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        replay = self._replay("UpdateOnlineEvaluationConfig", params)
        if replay is not None:
            return replay
        online = self._online(params["onlineEvaluationConfigId"])
        status = online.status(now)
        if status != "ACTIVE":
            raise conflict(
                f"Online evaluation configuration {online.config_id} is {status}; "
                "try again after the operation completes"
            )
        request = _without_token(params)
        if request.get("evaluators") is not None:
            self._check_references(request["evaluators"])
        # Changes take effect at once (executionStatus included); the status shows
        # UPDATING for as long as a creation takes.
        for key, value in request.items():
            if key == "executionStatus":
                online.execution_status = value
            elif key != "onlineEvaluationConfigId":
                online.fields[key] = value
        online.updated_at = now
        online.busy_until = now + self._config.real_seconds(self._config.create_seconds)
        out = {
            "onlineEvaluationConfigArn": online.arn,
            "onlineEvaluationConfigId": online.config_id,
            "updatedAt": now,
            "status": online.status(now),
            "executionStatus": online.execution_status,
        }
        self._remember("UpdateOnlineEvaluationConfig", params, out)
        return out

    def delete_config(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        online = self._online(params["onlineEvaluationConfigId"])
        # Deletion is instant here: the answer says DELETING, the lock is already gone.
        del self.configs[online.config_id]
        return {
            "onlineEvaluationConfigArn": online.arn,
            "onlineEvaluationConfigId": online.config_id,
            "status": "DELETING",
        }

    def _online(self, config_id: str) -> OnlineConfig:
        online = self.configs.get(config_id)
        if online is None:
            raise config_not_found(config_id)
        return online

    def _check_references(self, references: list[dict[str, Any]]) -> None:
        unknown = [
            ref["evaluatorId"]
            for ref in references
            if "evaluatorId" in ref and ref["evaluatorId"] not in self.evaluators
        ]
        if unknown:
            raise field_validation_error(
                [("evaluators", f"Unknown evaluator(s): {', '.join(unknown)}")]
            )

    # --- views for /_emulator/evaluators ---------------------------------------------

    def control_views(self, now: float) -> list[dict[str, Any]]:
        return [
            {
                "evaluatorId": e.evaluator_id,
                "evaluatorName": e.name,
                "builtin": e.builtin,
                "status": e.status(now),
                "lockedBy": self.locked_by(e.evaluator_id),
                "created_at": e.created_at,
                "update_calls": [
                    {
                        "called_at": u.called_at,
                        "ends_at": u.ends_at,
                        "outcome": u.outcome,
                        "clientToken": u.client_token,
                    }
                    for u in e.updates
                ],
                "history": e.history(now),
            }
            for e in self.evaluators.values()
        ]

    # --- shared ----------------------------------------------------------------

    def _replay(self, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The earlier answer to a call with this clientToken: the service "ignores the
        request, but doesn't return an error", whatever its parameters."""
        token = params.get("clientToken")
        if token is None:
            return None
        return self._tokens.get((operation, token))

    def _remember(self, operation: str, params: dict[str, Any], answer: dict[str, Any]) -> None:
        token = params.get("clientToken")
        if token is not None:
            self._tokens[(operation, token)] = answer

    def _new_id(self, name: str, taken: dict[str, Any]) -> str:
        while True:
            candidate = f"{name}-{self._new_suffix()}"
            if candidate not in taken:
                return candidate

    def _arn(self, kind: str, resource_id: str) -> str:
        return f"arn:aws:bedrock-agentcore:{self.region}:{ACCOUNT_ID}:{kind}/{resource_id}"


def _builtin(evaluator_id: str, level: str) -> Evaluator:
    return Evaluator(
        evaluator_id=evaluator_id,
        arn=f"arn:aws:bedrock-agentcore:::evaluator/{evaluator_id}",
        name=evaluator_id,
        created_at=BUILTIN_CREATED_AT,
        ready_at=BUILTIN_CREATED_AT,
        fields={"evaluatorConfig": builtin_config(evaluator_id), "level": level},
        builtin=True,
    )


def _config_part(evaluator: Evaluator, now: float) -> dict[str, Any]:
    return {"evaluatorConfig": evaluator.current_fields(now)["evaluatorConfig"]}


def _without_token(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "clientToken"}


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise TypeError(offset)
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise validation_error("Invalid nextToken", [("nextToken", "Invalid token")]) from exc
