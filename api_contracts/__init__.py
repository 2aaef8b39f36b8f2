"""evalq's public message contracts, version 1.

Producers send :class:`EvaluationRequest` (optionally with ``scenarios``, a
:class:`ScenarioRun`), :class:`CancelRequest` and :class:`EvaluatorUpdateRequest`; evalq publishes
:class:`EvaluationOutcome` and :class:`EvaluatorUpdateOutcome` and stores
:class:`DeadLetter`. Their JSON Schemas ship in ``api_contracts/schemas/``.
"""

from api_contracts.agentcore import AgentCoreEvaluation
from api_contracts.agno import AgnoEvaluation
from api_contracts.aymara import AymaraEvaluation
from api_contracts.cancel import CancelRequest
from api_contracts.common import SCHEMA_VERSION, Backend
from api_contracts.dead_letter import DeadLetter, ReasonCode
from api_contracts.errors import describe_validation_error, reason_for_validation_error
from api_contracts.evaluator_update import (
    EvaluatorUpdateOutcome,
    EvaluatorUpdateRequest,
    EvaluatorUpdateStatus,
    make_evaluator_update_event_id,
)
from api_contracts.outcome import (
    EvaluationOutcome,
    OutcomeStatus,
    ScenarioItemOutcome,
    make_event_id,
)
from api_contracts.request import EvaluationRequest
from api_contracts.scenarios import ScenarioItem, ScenarioRun

__all__ = [
    "SCHEMA_VERSION",
    "AgentCoreEvaluation",
    "AgnoEvaluation",
    "AymaraEvaluation",
    "Backend",
    "CancelRequest",
    "DeadLetter",
    "EvaluationOutcome",
    "EvaluationRequest",
    "EvaluatorUpdateOutcome",
    "EvaluatorUpdateRequest",
    "EvaluatorUpdateStatus",
    "OutcomeStatus",
    "ReasonCode",
    "ScenarioItem",
    "ScenarioItemOutcome",
    "ScenarioRun",
    "describe_validation_error",
    "make_evaluator_update_event_id",
    "make_event_id",
    "reason_for_validation_error",
]
