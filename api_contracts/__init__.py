"""evalq's public message contracts, version 1.

Producers send :class:`EvaluationRequest`; evalq publishes :class:`EvaluationOutcome` and
stores :class:`DeadLetter`. JSON Schemas of all three ship in ``api_contracts/schemas/``.
"""

from api_contracts.agentcore import AgentCoreEvaluation
from api_contracts.agno import AgnoEvaluation
from api_contracts.aymara import AymaraEvaluation
from api_contracts.common import SCHEMA_VERSION, Backend
from api_contracts.dead_letter import DeadLetter, ReasonCode
from api_contracts.errors import describe_validation_error, reason_for_validation_error
from api_contracts.outcome import EvaluationOutcome, OutcomeStatus, make_event_id
from api_contracts.request import EvaluationRequest

__all__ = [
    "SCHEMA_VERSION",
    "AgentCoreEvaluation",
    "AgnoEvaluation",
    "AymaraEvaluation",
    "Backend",
    "DeadLetter",
    "EvaluationOutcome",
    "EvaluationRequest",
    "OutcomeStatus",
    "ReasonCode",
    "describe_validation_error",
    "make_event_id",
    "reason_for_validation_error",
]
