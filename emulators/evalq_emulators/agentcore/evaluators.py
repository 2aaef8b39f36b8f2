"""Evaluators and online evaluation configs (bedrock-agentcore-control), computed from time.

Like batch jobs, an evaluator stores only when things were asked for; its status at any
instant follows from them: CREATING for ``create_seconds`` after CreateEvaluator, ACTIVE,
then UPDATING for ``update_seconds`` after each accepted UpdateEvaluator, ending ACTIVE or
UPDATE_FAILED. While an update runs, GetEvaluator shows the requested fields; an update
that failed leaves the fields of the last update that became ACTIVE.

Rules the real service states, enforced here:

* built-in (``Builtin.*``) and third-party evaluators cannot be updated (ValidationException);
* an evaluator referenced by an online evaluation config whose executionStatus is ENABLED
  is ``lockedForModification`` and UpdateEvaluator is refused with a ConflictException
  naming the config(s) (AWS documents the lock, not the error's wording; 409 is what the
  model offers for "a conflict performing an operation");
* an update while the evaluator is CREATING or UPDATING is a ConflictException;
* ``clientToken``: the same token with the same parameters answers as the first call did
  and changes nothing; with other parameters it is a ConflictException.

DeleteEvaluator (not of a built-in, nor of a locked evaluator, nor while it is CREATING,
UPDATING or DELETING) answers DELETING; the evaluator stays DELETING for
``update_seconds``, then it is gone (ResourceNotFoundException).

Tags on CreateEvaluator steer it (not part of the real API): ``emulator:create-outcome``
(ACTIVE | CREATE_FAILED: what CREATING ends in), ``emulator:update-outcome`` (ACTIVE |
UPDATE_FAILED), ``emulator:update-duration`` and ``emulator:delete-duration`` (emulated
seconds). An evaluator whose creation failed cannot be updated (ConflictException).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, conflict, field_validation_error

TAG_CREATE_OUTCOME = "emulator:create-outcome"
TAG_UPDATE_OUTCOME = "emulator:update-outcome"
TAG_UPDATE_DURATION = "emulator:update-duration"
TAG_DELETE_DURATION = "emulator:delete-duration"
CREATE_OUTCOMES = ("ACTIVE", "CREATE_FAILED")
UPDATE_OUTCOMES = ("ACTIVE", "UPDATE_FAILED")
#: Fields of UpdateEvaluator that change the evaluator (besides its id and clientToken).
UPDATABLE = ("description", "evaluatorConfig", "level", "kmsKeyArn")

#: Built-in evaluators the emulated account sees, with their evaluation level.
BUILTIN_LEVELS: dict[str, str] = {
    "Builtin.Helpfulness": "TRACE",
    "Builtin.Correctness": "TRACE",
    "Builtin.Faithfulness": "TRACE",
    "Builtin.Harmfulness": "TRACE",
    "Builtin.Stereotyping": "TRACE",
    "Builtin.Refusal": "TRACE",
    "Builtin.Coherence": "TRACE",
    "Builtin.Conciseness": "TRACE",
    "Builtin.ResponseRelevance": "TRACE",
    "Builtin.InstructionFollowing": "TRACE",
    "Builtin.GoalSuccessRate": "SESSION",
    "Builtin.ToolSelectionAccuracy": "TOOL_CALL",
    "Builtin.ToolParameterAccuracy": "TOOL_CALL",
}
#: When the built-ins "were created" (epoch seconds): a fixed instant.
BUILTIN_CREATED_AT = 1_752_537_600.0


def builtin_config(evaluator_id: str) -> dict[str, Any]:
    name = evaluator_id.removeprefix("Builtin.")
    return {
        "llmAsAJudge": {
            "instructions": f"Rate the {name} of the agent's response.",
            "ratingScale": {
                "numerical": [
                    {"definition": "Poor", "value": 0.0, "label": "poor"},
                    {"definition": "Good", "value": 1.0, "label": "good"},
                ]
            },
            "modelConfig": {"bedrockEvaluatorModelConfig": {"modelId": "emulated-judge"}},
        }
    }


def evaluator_type(config: dict[str, Any]) -> str:
    """``evaluatorType`` of a custom evaluator, from the member of its config union."""
    if "codeBased" in config:
        return "CustomCode"
    if "derived" in config:
        return "CustomDerived"
    return "Custom"


@dataclass
class EvaluatorUpdate:
    """One accepted UpdateEvaluator call."""

    called_at: float
    ends_at: float
    outcome: str
    client_token: str | None
    #: The update's parameters without clientToken (what replays are compared to).
    params: dict[str, Any]
    response: dict[str, Any]


@dataclass
class Evaluator:
    evaluator_id: str
    arn: str
    name: str
    created_at: float
    ready_at: float
    fields: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    builtin: bool = False
    updates: list[EvaluatorUpdate] = field(default_factory=list)
    #: DeleteEvaluator: DELETING from ``deleting_at``, gone from ``gone_at``.
    deleting_at: float | None = None
    gone_at: float | None = None

    @property
    def create_failed(self) -> bool:
        return self.tags.get(TAG_CREATE_OUTCOME) == "CREATE_FAILED"

    def status(self, now: float) -> str:
        if self.deleting_at is not None and now >= self.deleting_at:
            return "DELETING"
        if now < self.ready_at:
            return "CREATING"
        if self.create_failed:
            return "CREATE_FAILED"
        if not self.updates:
            return "ACTIVE"
        last = self.updates[-1]
        return "UPDATING" if now < last.ends_at else last.outcome

    def updated_at(self, now: float) -> float:
        moments = [self.created_at] + ([self.ready_at] if now >= self.ready_at else [])
        for update in self.updates:
            moments.append(update.called_at)
            if now >= update.ends_at:
                moments.append(update.ends_at)
        return max(moments)

    def current_fields(self, now: float) -> dict[str, Any]:
        """Created fields, then every update that is running or became ACTIVE."""
        out = dict(self.fields)
        for update in self.updates:
            if now < update.ends_at or update.outcome == "ACTIVE":
                out.update({k: v for k, v in update.params.items() if k in UPDATABLE})
        return out

    def history(self, now: float) -> list[dict[str, Any]]:
        """Every update call and status change that has happened by ``now``."""
        events: list[dict[str, Any]] = [{"at": self.created_at, "status": "CREATING"}]
        if self.builtin:
            events = [{"at": self.created_at, "status": "ACTIVE"}]
        elif now >= self.ready_at:
            created = "CREATE_FAILED" if self.create_failed else "ACTIVE"
            events.append({"at": self.ready_at, "status": created})
        for update in self.updates:
            events.append(
                {
                    "at": update.called_at,
                    "call": "UpdateEvaluator",
                    "status": "UPDATING",
                    "clientToken": update.client_token,
                }
            )
            if now >= update.ends_at:
                events.append({"at": update.ends_at, "status": update.outcome})
        if self.deleting_at is not None and now >= self.deleting_at:
            events.append({"at": self.deleting_at, "call": "DeleteEvaluator", "status": "DELETING"})
        return events


@dataclass
class OnlineConfig:
    config_id: str
    arn: str
    name: str
    created_at: float
    ready_at: float
    fields: dict[str, Any]
    execution_status: str
    updated_at: float
    busy_until: float = 0.0

    def status(self, now: float) -> str:
        if now < self.ready_at:
            return "CREATING"
        if now < self.busy_until:
            return "UPDATING"
        return "ACTIVE"

    def evaluator_ids(self) -> set[str]:
        return {
            ref["evaluatorId"]
            for ref in self.fields.get("evaluators") or []
            if "evaluatorId" in ref
        }


def update_plan(
    evaluator: Evaluator,
    default_seconds_real: float,
    time_scale: float,
    tag: str = TAG_UPDATE_DURATION,
) -> float:
    """Real seconds an update (or, with ``TAG_DELETE_DURATION``, the deletion) of
    ``evaluator`` takes (its duration tag, else the default)."""
    raw = evaluator.tags.get(tag)
    if raw is None:
        return default_seconds_real
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise field_validation_error([(f"tags.{tag}", "Member must be a non-negative number")])
    return seconds / time_scale


#: Tags whose value must be one of a few words.
_OUTCOME_TAGS = ((TAG_CREATE_OUTCOME, CREATE_OUTCOMES), (TAG_UPDATE_OUTCOME, UPDATE_OUTCOMES))


def check_tags(tags: dict[str, str]) -> None:
    for tag, allowed in _OUTCOME_TAGS:
        outcome = tags.get(tag)
        if outcome is not None and outcome not in allowed:
            raise field_validation_error(
                [(f"tags.{tag}", f"Member must be one of {', '.join(allowed)}")]
            )


def evaluator_not_found(evaluator_id: str) -> ApiError:
    return ApiError("ResourceNotFoundException", f"Evaluator {evaluator_id} not found")


def config_not_found(config_id: str) -> ApiError:
    return ApiError(
        "ResourceNotFoundException", f"Online evaluation configuration {config_id} not found"
    )


def not_updatable(evaluator_id: str, action: str = "updated") -> ApiError:
    return field_validation_error(
        [("evaluatorId", f"Built-in evaluator {evaluator_id} cannot be {action}")]
    )


def locked(evaluator_id: str, config_ids: list[str]) -> ApiError:
    return conflict(
        f"Evaluator {evaluator_id} is locked for modification: it is referenced by enabled "
        f"online evaluation configuration(s) {', '.join(config_ids)}. Disable them first."
    )
