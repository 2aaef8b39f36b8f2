"""Which target a request runs in.

A request that names a ``target`` runs there. Otherwise the first target (in file order)
whose rules match what the request carries takes it: one of its CloudWatch log group
names starts with a configured prefix, its service name is a configured one, or its
online evaluation config lives in the target's account and region. Else the default
target, if there is one. Else the request is a dead letter ``no_target`` whose error says
what was tried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api_contracts import AgentCoreEvaluation, Backend, EvaluationRequest, ReasonCode
from worker.errors import PermanentError
from worker.targets.config import TargetConfig


class NoTarget(PermanentError):
    reason = ReasonCode.no_target


def route(
    request: EvaluationRequest, targets: Sequence[TargetConfig], default: str | None
) -> TargetConfig:
    """The target of ``request``; raises :class:`NoTarget` naming what was tried."""
    targets = [t for t in targets if t.backend == request.backend]
    if not targets:
        # The contract knows the backend but this deployment runs no such service.
        raise PermanentError(
            f"backend {request.backend.value!r} is not configured on this deployment",
            ReasonCode.unknown_backend,
        )
    by_name = {t.name: t for t in targets}
    if request.target is not None:
        if request.target in by_name:
            return by_name[request.target]
        raise NoTarget(
            f"target {request.target!r} is not configured for backend "
            f"{request.backend.value} (have: {_names(targets)})"
        )
    facts = _facts(request)
    for target in targets:
        if _matches(target, facts):
            return target
    if default in by_name:
        return by_name[default]
    if request.backend is not Backend.AGENTCORE:
        return targets[0]  # Aymara and Agno run in the one target of their settings
    raise NoTarget(
        f"no target matches log groups {facts['log_groups']}, service names "
        f"{facts['services']}, online evaluation config {facts['online_config'] or '-'} "
        f"(tried: {_names(targets)}; no default_target)"
    )


def _facts(request: EvaluationRequest) -> dict[str, Any]:
    if not isinstance(request.evaluation, AgentCoreEvaluation):
        return {"log_groups": [], "services": [], "online_config": None,
                "online_region": None, "online_account": None}  # fmt: skip
    source = request.evaluation.dataSourceConfig
    logs = source.cloudWatchLogs
    online = source.onlineEvaluationConfigSource
    arn = online.onlineEvaluationConfigArn if online else None
    parts = arn.split(":") if arn else []
    return {
        "log_groups": list(logs.logGroupNames or []) if logs else [],
        "services": list(logs.serviceNames) if logs else [],
        "online_config": arn,
        # arn:aws:bedrock-agentcore:REGION:ACCOUNT:online-evaluation-config/...
        "online_region": parts[3] if len(parts) > 4 else None,
        "online_account": parts[4] if len(parts) > 4 else None,
    }


def _matches(target: TargetConfig, facts: dict[str, Any]) -> bool:
    rules = target.match
    if any(g.startswith(p) for g in facts["log_groups"] for p in rules.log_group_prefixes):
        return True
    if any(s in rules.service_names for s in facts["services"]):
        return True
    return (
        facts["online_account"] is not None
        and facts["online_account"] == target.account_id
        and facts["online_region"] == target.region
    )


def _names(targets: Sequence[TargetConfig]) -> str:
    return ", ".join(t.name for t in targets)
