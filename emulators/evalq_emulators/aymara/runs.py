"""Aymara's resources as the emulator keeps them: evals with their prompts, and eval runs
whose status follows emulated time (``created`` -> ``processing`` -> ``finished|failed``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Run statuses, and ``deleted`` for the control plane's counts.
RUN_STATUSES = ("created", "processing", "finished", "failed")
ACTIVE_STATUSES = frozenset({"created", "processing"})
#: A response whose content holds this is scored as failed.
FAIL_MARKER = "emulator:fail"


def iso(moment: float) -> str:
    """An epoch time as Aymara writes timestamps (ISO 8601, UTC)."""
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Eval:
    eval_uuid: str
    body: dict[str, Any]
    prompts: list[dict[str, Any]]
    created_at: float

    def view(self) -> dict[str, Any]:
        return {
            **self.body,
            "eval_uuid": self.eval_uuid,
            "num_prompts": len(self.prompts),
            # Prompts are ready at once (the service generates them asynchronously).
            "status": "finished",
            "created_at": iso(self.created_at),
            "updated_at": iso(self.created_at),
        }


@dataclass
class Run:
    """One eval run. Times are real epoch seconds, computed at creation from emulated
    durations, so a run's status is a pure function of the clock."""

    eval_run_uuid: str
    eval: Eval
    body: dict[str, Any]
    workspace_uuid: str | None
    is_sandbox: bool
    created_at: float
    processing_at: float
    ends_at: float
    fails: bool
    deleted_at: float | None = None
    response_uuids: list[str] = field(default_factory=list)

    @property
    def responses(self) -> list[dict[str, Any]]:
        return list(self.body["responses"])

    @property
    def scorable(self) -> list[int]:
        return [i for i, r in enumerate(self.responses) if not r.get("exclude_from_scoring")]

    def status(self, now: float) -> str:
        if now < self.processing_at:
            return "created"
        if now < self.ends_at:
            return "processing"
        return "failed" if self.fails else "finished"

    def status_or_deleted(self, now: float) -> str:
        if self.deleted_at is not None and now >= self.deleted_at:
            return "deleted"
        return self.status(now)

    def scored_count(self, now: float) -> int:
        """Responses scored so far: rising linearly while processing."""
        total = len(self.scorable)
        if now >= self.ends_at:
            return 0 if self.fails else total
        if now < self.processing_at or self.ends_at <= self.processing_at:
            return 0
        return int(total * (now - self.processing_at) / (self.ends_at - self.processing_at))

    def updated_at(self, now: float) -> float:
        return max(t for t in (self.created_at, self.processing_at, self.ends_at) if t <= now)

    def scored_responses(self, now: float) -> list[dict[str, Any]]:
        scored = set(self.scorable[: self.scored_count(now)])
        out = []
        for index, (response, uuid) in enumerate(
            zip(self.responses, self.response_uuids, strict=True)
        ):
            item = {
                "prompt_uuid": response["prompt_uuid"],
                "response_uuid": uuid,
                "content": response.get("content"),
                "content_type": response.get("content_type", "text"),
                "ai_refused": response.get("ai_refused", False),
                "exclude_from_scoring": response.get("exclude_from_scoring", False),
                "continue_thread": response.get("continue_thread", False),
                "thread_uuid": response.get("thread_uuid"),
                "turn_number": response.get("turn_number", 1),
                "is_passed": None,
                "confidence": None,
                "explanation": None,
            }
            if index in scored:
                passed = FAIL_MARKER not in str(response.get("content") or "")
                item.update(
                    is_passed=passed,
                    confidence=0.9,
                    explanation="Emulated score: "
                    + ("the response is safe." if passed else "the response fails the eval."),
                )
            out.append(item)
        return out

    def view(self, now: float) -> dict[str, Any]:
        """The run as ``GET /v2/eval-runs/{uuid}`` answers it (``EvalRunResult``)."""
        status = self.status(now)
        responses = self.scored_responses(now)
        scored = [r for r in responses if r["is_passed"] is not None]
        passed = sum(1 for r in scored if r["is_passed"])
        return {
            "eval_run_uuid": self.eval_run_uuid,
            "eval_uuid": self.eval.eval_uuid,
            "status": status,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at(now)),
            "name": self.body.get("name") or f"{self.eval.body.get('name') or 'Eval'} run",
            "ai_description": self.body.get("ai_description"),
            "eval_run_examples": self.body.get("eval_run_examples"),
            "is_sandbox": self.is_sandbox,
            "num_prompts": len(self.eval.prompts),
            "num_responses_scored": len(scored),
            "pass_rate": passed / len(scored) if scored and status == "finished" else None,
            "workspace_uuid": self.workspace_uuid,
        }

    def control_view(self, now: float) -> dict[str, Any]:
        """The ``/_emulator/jobs`` entry: real epoch seconds for every edge."""
        return {
            "eval_run_uuid": self.eval_run_uuid,
            "eval_uuid": self.eval.eval_uuid,
            "name": self.body.get("name"),
            "status": self.status_or_deleted(now),
            "created_at": self.created_at,
            "processing_at": self.processing_at,
            "finished_at": self.ends_at,
            "deleted_at": self.deleted_at,
            "responses": len(self.responses),
            "workspace_uuid": self.workspace_uuid,
        }
