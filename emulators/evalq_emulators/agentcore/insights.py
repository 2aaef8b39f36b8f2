"""What GetBatchEvaluation returns beyond scores once a job ends: the results of the
insights it asked for, and the ``insightResults`` of the ``Builtin.FailureAnalysis``
evaluator (botocore's model: ``failureAnalysisResult``, ``userIntentResult``,
``executionSummaryResult``, ``insightResults``).

Which result an insight gives is read from its id (``Builtin.Insight.FailureAnalysis``,
``...UserIntent``, ``...ExecutionSummary``; a custom insight id naming one of them gives
its result). The content is emulated but stable: clusters over the job's sessions, the
affected ones every third session, signals from the model's categories (``other``
included).
"""

from __future__ import annotations

import hashlib
from typing import Any

#: The evaluator whose insights come back as ``insightResults``.
FAILURE_ANALYSIS_EVALUATOR = "Builtin.FailureAnalysis"
#: Words in an insight id -> the GetBatchEvaluation member its results fill.
_RESULT_OF = (
    ("FailureAnalysis", "failureAnalysisResult"),
    ("UserIntent", "userIntentResult"),
    ("ExecutionSummary", "executionSummaryResult"),
)
#: Signal categories of the emulated failures (model enum values; ``other`` is new).
CATEGORIES = ("execution-error-category-resource-not-found", "other")


def results(
    insight_ids: list[str],
    evaluator_ids: list[str],
    sessions: list[str],
    prompts: dict[str, list[str]],
    ended_at: float,
) -> dict[str, Any]:
    """The insight members of a finished job's GetBatchEvaluation answer."""
    out: dict[str, Any] = {}
    for words, member in _RESULT_OF:
        if any(words in insight for insight in insight_ids):
            out[member] = _BUILDERS[member](sessions, prompts)
    if FAILURE_ANALYSIS_EVALUATOR in evaluator_ids:
        out["insightResults"] = _insight_results(sessions, ended_at)
    return out


def affected(sessions: list[str]) -> list[str]:
    """The sessions an emulated failure pattern affects: every third one."""
    return sessions[::3]


def _hex(*parts: str, length: int) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:length]


def _span(session_id: str) -> dict[str, Any]:
    signals = [
        {"category": category, "evidence": f"Emulated evidence ({category})", "confidence": c}
        for category, c in zip(CATEGORIES, (0.9, 0.6), strict=True)
    ]
    return {
        "spanId": _hex(session_id, "span", length=16),
        "traceId": _hex(session_id, "trace", length=32),
        "signals": signals,
    }


def _failure_analysis(sessions: list[str], _prompts: dict[str, list[str]]) -> dict[str, Any]:
    hit = affected(sessions)
    if not hit:
        return {"failures": []}
    root = {
        "clusterId": 111,
        "name": "Lookup returns nothing",
        "rootCause": "The lookup tool is called with an order id it cannot resolve.",
        "recommendation": "Validate the order id before calling lookup.",
        "affectedSessionCount": len(hit),
        "affectedSessions": [
            {
                "sessionId": sid,
                "explanation": "The agent answered without the order it looked up.",
                "fixType": "SYSTEM_PROMPT",
                "recommendation": "Ask for the order id when lookup finds nothing.",
                "failureSpans": [_span(sid)],
            }
            for sid in hit
        ],
    }
    sub = {"clusterId": 11, "name": "Tool lookups", "description": "Lookups that fail.",
           "affectedSessionCount": len(hit), "rootCauses": [root]}  # fmt: skip
    top = {"clusterId": 1, "name": "Tool errors", "description": "Tools that fail the agent.",
           "affectedSessionCount": len(hit), "subCategories": [sub]}  # fmt: skip
    return {"failures": [top]}


def _user_intents(sessions: list[str], prompts: dict[str, list[str]]) -> dict[str, Any]:
    if not sessions:
        return {"userIntents": []}
    members = [
        {"sessionId": sid, "userMessages": prompts.get(sid) or ["(emulated user message)"]}
        for sid in sessions
    ]
    cluster = {"clusterId": 1, "name": "Ask about an order", "description": "Users ask "
               "where an order is or how to change it.", "affectedSessionCount": len(sessions),
               "affectedSessions": members}  # fmt: skip
    return {"userIntents": [cluster]}


def _execution_summaries(sessions: list[str], _prompts: dict[str, list[str]]) -> dict[str, Any]:
    if not sessions:
        return {"executionSummaries": []}
    members = [
        {
            "sessionId": sid,
            "approachTaken": "Looked the order up, then answered.",
            "finalOutcome": "Answered",
        }
        for sid in sessions
    ]
    cluster = {"clusterId": 1, "name": "Look up, then answer", "description": "One tool "
               "call, then an answer.", "affectedSessionCount": len(sessions),
               "affectedSessions": members}  # fmt: skip
    return {"executionSummaries": [cluster]}


def _insight_results(sessions: list[str], ended_at: float) -> list[dict[str, Any]]:
    hit = affected(sessions)
    if not hit:
        return []  # "an empty list means that no failures were found"
    samples = [
        {
            "sessionId": sid,
            "lastSeenAt": ended_at,
            "findings": [
                {
                    "targetId": _hex(sid, "span", length=16),
                    "targetType": "SPAN_ID",
                    "description": "Lookup found no order; the agent answered anyway.",
                    "category": CATEGORIES[-1],
                    "confidence": 0.7,
                }
            ],
        }
        for sid in hit[:10]
    ]
    root = {"name": "Unresolved order ids", "explanation": "The agent passes ids lookup "
            "cannot resolve.", "affectedSessionCount": len(hit), "suggestedFix": "Ask for "
            "the order id first.", "sampleSessions": samples}  # fmt: skip
    return [
        {
            "type": "FAILURE",
            "name": "Answers without the order",
            "description": "The agent answers although its lookup found nothing.",
            "createdAt": ended_at,
            "affectedSessionCount": len(hit),
            "rootCauses": [root],
        }
    ]


_BUILDERS = {
    "failureAnalysisResult": _failure_analysis,
    "userIntentResult": _user_intents,
    "executionSummaryResult": _execution_summaries,
}
