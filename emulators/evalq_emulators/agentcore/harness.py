"""InvokeHarness: emulated agent sessions and the events each invocation streams.

Any well-formed harness ARN of the emulated account, in the region the call is signed
for, is a harness. A session
id names one conversation: invoking it again continues it (the turn count rises). Each
invocation answers with a deterministic agent loop (a tool call, its result, an answer)
spread over ``harness_seconds`` of emulated time, so a client can be killed mid-stream.

Directives in the last user message steer one invocation (they are not part of the real
API; tests and demos use them):

* ``[emulator:stop_reason=max_tokens]``: the final ``messageStop`` reason (default end_turn)
* ``[emulator:tools=N]``: tool rounds before the answer (default 1)
* ``[emulator:seconds=S]``: emulated duration of this stream
* ``[emulator:break=always|once]``: cut the connection midway (``once``: only the first
  invocation ever made with this prompt text)
* ``[emulator:error=NAME]`` / ``[emulator:error_once=NAME]``: a modeled in-stream error
  midway (``runtimeClientError``, ``internalServerException``, ``validationException``)

The call's overrides (every member but the harness, qualifier, session and messages:
``model``, ``systemPrompt``, ``tools``, ``skills``, ``allowedTools``, ``maxIterations``,
``maxTokens``, ``timeoutSeconds``, ``actorId``, ``runtimeUserId``, ...) are kept with the
invocation (``GET /_emulator/sessions``) and bound the emulated loop as the service's
would: ``maxIterations`` (tool rounds + the answer; past it the turn ends
``max_iterations_exceeded``), ``maxTokens`` (the answer's words; past it ``max_tokens``),
``timeoutSeconds`` (the stream's emulated length; past it ``timeout_exceeded``); the tool
called is the first of ``tools`` by name, none when ``allowedTools`` does not allow it;
the answer names the ``model``'s ``modelId``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..common.faults import STREAM_ERRORS, StreamFault
from .errors import ApiError, field_validation_error

HARNESS_ARN = re.compile(
    r"arn:(?P<partition>[^:]+)?:bedrock-agentcore:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"harness/(?P<name>[a-zA-Z][a-zA-Z0-9_]{0,39}-[a-zA-Z0-9]{10})"
)
_DIRECTIVE = re.compile(r"\[emulator:(\w+)=([\w.]+)\]")
#: InvokeHarness members that name the call rather than override the harness's defaults.
_NOT_OVERRIDES = frozenset({"harnessArn", "qualifier", "runtimeSessionId", "messages"})

#: (event type, event body) as the output shape's stream members spell them.
Event = tuple[str, dict[str, Any]]


@dataclass
class Invocation:
    """One InvokeHarness call that reached the harness."""

    session_id: str
    harness_arn: str
    qualifier: str | None
    turn: int
    started_at: float
    #: completed | broken (fault) | error:<name> (in-stream error) | client_gone; None
    #: while the stream is being sent.
    outcome: str | None = None
    ended_at: float | None = None
    stop_reason: str | None = None
    #: The call's overrides, as they arrived (``model``, ``tools``, ``runtimeUserId``, ...).
    overrides: dict[str, Any] = field(default_factory=dict)
    #: What the user asked this turn (the last user message's text, directives removed).
    prompt: str = ""

    def view(self) -> dict[str, Any]:
        return {
            "harness_arn": self.harness_arn,
            "qualifier": self.qualifier,
            "turn": self.turn,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "outcome": self.outcome,
            "stop_reason": self.stop_reason,
            "overrides": self.overrides,
            "prompt": self.prompt,
        }


@dataclass
class HarnessSession:
    """A conversation a harness produced; its traces are what a batch evaluation finds."""

    session_id: str
    harness_arn: str
    qualifier: str | None
    first_started_at: float
    invocations: list[Invocation] = field(default_factory=list)

    def ingested_by(self, now: float, ingestion_real: float) -> bool:
        return now >= self.first_started_at + ingestion_real

    def active_in(self, window: tuple[float, float] | None) -> bool:
        """Whether it had activity (an invocation began) in ``[start, end)``."""
        if window is None:
            return True
        return any(window[0] <= i.started_at < window[1] for i in self.invocations)

    @property
    def region(self) -> str:
        """The region of the harness that produced it (where its traces land)."""
        match = HARNESS_ARN.fullmatch(self.harness_arn)
        return match["region"] if match else ""

    def view(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "harness_arn": self.harness_arn,
            "qualifier": self.qualifier,
            "first_started_at": self.first_started_at,
            "invocations": [i.view() for i in self.invocations],
        }


@dataclass(frozen=True)
class Directives:
    stop_reason: str = "end_turn"
    tools: int = 1
    seconds: float | None = None
    break_mode: str | None = None
    error: str | None = None
    error_once: str | None = None
    #: What the call's overrides set: the tool called, the answer's most words, the
    #: model the answer names.
    tool_name: str = "lookup"
    max_words: int | None = None
    model: str | None = None


def overrides_of(params: dict[str, Any]) -> dict[str, Any]:
    """The call's members that override the harness's defaults."""
    return {k: v for k, v in params.items() if k not in _NOT_OVERRIDES and v is not None}


def bounded(steer: Directives, overrides: dict[str, Any], seconds: float) -> Directives:
    """``steer`` within the call's overrides (``seconds``: the stream's emulated length
    without them); a limit the loop reaches is its final stop reason."""
    tool = _tool_name(overrides)
    rounds = steer.tools if tool is not None else 0
    stop = steer.stop_reason
    iterations = overrides.get("maxIterations")
    if iterations is not None and rounds + 1 > iterations:
        rounds, stop = max(0, iterations - 1), "max_iterations_exceeded"
    seconds = seconds if steer.seconds is None else steer.seconds
    timeout = overrides.get("timeoutSeconds")
    if timeout is not None and seconds > timeout:
        seconds, stop = max(0, timeout), "timeout_exceeded"
    model = _model_id(overrides.get("model"))
    return dataclasses.replace(
        steer, tools=rounds, stop_reason=stop, seconds=seconds, tool_name=tool or "lookup",
        max_words=overrides.get("maxTokens"), model=model,
    )  # fmt: skip


def _model_id(model: dict[str, dict[str, Any]] | None) -> str | None:
    """The ``modelId`` of a ``model`` override (one provider's config), if any."""
    configs = list((model or {}).values())
    return str(configs[0]["modelId"]) if configs else None


def _tool_name(overrides: dict[str, Any]) -> str | None:
    """The tool the agent calls: the first of ``tools`` (its name, else its type), unless
    ``allowedTools`` leaves it out (None: no tool call)."""
    tools = overrides.get("tools")
    name = "lookup" if not tools else str(tools[0].get("name") or tools[0]["type"])
    allowed = overrides.get("allowedTools")
    if allowed is not None and "*" not in allowed and name not in allowed:
        return None
    return name


def check_harness(arn: str, region: str, account: str) -> None:
    """ResourceNotFoundException unless ``arn`` names a harness of the emulated account."""
    match = HARNESS_ARN.fullmatch(arn)
    if match is None or match["region"] != region or match["account"] != account:
        raise ApiError("ResourceNotFoundException", f"Harness {arn} not found")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (what the agent is asked this turn)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return " ".join(
                block["text"] for block in message.get("content") or [] if "text" in block
            )
    return ""


def directives(text: str) -> Directives:
    found = dict(_DIRECTIVE.findall(text))
    try:
        tools = int(found.get("tools", "1"))
        seconds = float(found["seconds"]) if "seconds" in found else None
    except ValueError as exc:
        raise field_validation_error([("messages", f"bad emulator directive: {exc}")]) from exc
    for key in ("error", "error_once"):
        if key in found and found[key] not in STREAM_ERRORS:
            names = ", ".join(STREAM_ERRORS)
            raise field_validation_error([("messages", f"emulator:{key} must be one of {names}")])
    return Directives(
        stop_reason=found.get("stop_reason", "end_turn"),
        tools=max(0, min(tools, 5)),
        seconds=seconds,
        break_mode=found.get("break"),
        error=found.get("error"),
        error_once=found.get("error_once"),
    )


def clean_prompt(text: str) -> str:
    return _DIRECTIVE.sub("", text).strip()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def agent_events(
    session_id: str, turn: int, prompt: str, steer: Directives, input_tokens: int, latency_ms: int
) -> list[Event]:
    """The events of one successful invocation, in stream order."""
    events: list[Event] = []
    question = clean_prompt(prompt) or "(no prompt)"
    for round_no in range(steer.tools):
        tool_use_id = "tooluse_" + _digest(session_id, str(turn), str(round_no))[:20]
        query = json.dumps({"query": question[:200]})
        events += [
            ("messageStart", {"role": "assistant"}),
            _block_start(0, {"toolUse": {"toolUseId": tool_use_id, "name": steer.tool_name}}),
            _block_delta(0, {"toolUse": {"input": query}}),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            ("messageStop", {"stopReason": "tool_use"}),
            ("messageStart", {"role": "user"}),
            _block_start(0, {"toolResult": {"toolUseId": tool_use_id, "status": "success"}}),
            _block_delta(0, {"toolResult": [{"text": f"result {round_no + 1} for {question}"}]}),
            ("contentBlockStop", {"contentBlockIndex": 0}),
            ("messageStop", {"stopReason": "tool_result"}),
        ]
    words, stop_reason = _answer(session_id, turn, question, steer)
    chunks = [" ".join(words[i : i + 3]) + " " for i in range(0, len(words), 3)]
    chunks[-1] = chunks[-1].rstrip()
    events.append(("messageStart", {"role": "assistant"}))
    events += [_block_delta(0, {"text": chunk}) for chunk in chunks]
    events += [
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": stop_reason}),
    ]
    output_tokens = len(words) + 8 * steer.tools
    usage = {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens,
    }
    events.append(("metadata", {"usage": usage, "metrics": {"latencyMs": latency_ms}}))
    return events


def _answer(session_id: str, turn: int, question: str, steer: Directives) -> tuple[list[str], str]:
    """The answer's words and the turn's stop reason (``max_tokens`` when cut short)."""
    by = f" ({steer.model})" if steer.model else ""
    digest = _digest(session_id, str(turn))[:8]
    words = f"Turn {turn}{by}: an answer to {question!r} ({digest}).".split(" ")
    if steer.max_words is not None and len(words) > steer.max_words:
        return words[: max(1, steer.max_words)], "max_tokens"
    return words, steer.stop_reason


def _block_start(index: int, start: dict[str, Any]) -> Event:
    return ("contentBlockStart", {"contentBlockIndex": index, "start": start})


def _block_delta(index: int, delta: dict[str, Any]) -> Event:
    return ("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})


def final_stop_reason(events: list[Event]) -> str | None:
    """The stop reason of the last message the client will receive."""
    reasons = [body["stopReason"] for kind, body in events if kind == "messageStop"]
    return reasons[-1] if reasons else None


def cut(events: list[Event]) -> list[Event]:
    """The events sent before a midway failure: before the final message ends."""
    final_stop = max(i for i, (kind, _) in enumerate(events) if kind == "messageStop")
    return events[: max(1, final_stop - 1)]


def stream_error_body(name: str, session_id: str) -> dict[str, Any]:
    """The JSON body of an in-stream error, with the members its shape requires."""
    if name == "validationException":
        return {
            "message": f"Session {session_id}: the agent produced an invalid request",
            "reason": "FieldValidationFailed",
            "fieldList": [],
        }
    if name == "runtimeClientError":
        return {"message": f"Session {session_id}: the agent's runtime failed (emulated)"}
    return {"message": f"Session {session_id}: internal error in the harness (emulated)"}


@dataclass(frozen=True)
class Lookup:
    """How a batch evaluation starting at ``now`` in ``region`` looks for traces."""

    now: float
    region: str
    ingestion_real: float
    window: tuple[float, float] | None = None
    #: A named session the harness never ran is a trace of the producer's own agent.
    assume_traces: bool = True


@dataclass(frozen=True)
class StreamPlan:
    """Everything the HTTP layer needs to send one invocation's stream."""

    invocation: Invocation
    #: Events to send, in order; an exception (``error``) follows them when set.
    events: list[Event]
    error: str | None
    #: Close the connection after ``events`` without ending the HTTP response.
    cut: bool
    #: Seconds of the service's clock to wait before each frame.
    interval: float


class Harnesses:
    """Every harness session and invocation; the caller holds the emulator's lock."""

    def __init__(self) -> None:
        self.sessions: dict[str, HarnessSession] = {}
        self.calls_by_session: dict[str, int] = {}
        self.invocations: list[Invocation] = []
        self._prompts_seen: set[str] = set()

    def begin(
        self,
        params: dict[str, Any],
        now: float,
        stream_seconds_real: float,
        time_scale: float,
        fault: StreamFault,
    ) -> StreamPlan:
        session_id: str = params["runtimeSessionId"]
        arn: str = params["harnessArn"]
        qualifier: str | None = params.get("qualifier")
        prompt = last_user_text(params["messages"])
        overrides = overrides_of(params)
        # A bad directive is refused before the session exists.
        steer = bounded(directives(prompt), overrides, stream_seconds_real * time_scale)
        self.calls_by_session[session_id] = self.calls_by_session.get(session_id, 0) + 1
        session = self.sessions.get(session_id)
        if session is None:
            session = HarnessSession(session_id, arn, qualifier, first_started_at=now)
            self.sessions[session_id] = session
        first_time = prompt not in self._prompts_seen
        self._prompts_seen.add(prompt)
        invocation = Invocation(session_id, arn, qualifier, len(session.invocations) + 1, now,
                                overrides=overrides, prompt=clean_prompt(prompt))  # fmt: skip
        session.invocations.append(invocation)
        self.invocations.append(invocation)
        seconds_real = float(steer.seconds or 0.0) / time_scale  # set by bounded()
        words = sum(len(last_user_text([m]).split()) for m in params["messages"])
        events = agent_events(
            session_id, invocation.turn, prompt, steer, words, int(seconds_real * 1000)
        )
        error = steer.error or (steer.error_once if first_time else None) or fault.error
        wants_cut = steer.break_mode == "always" or (steer.break_mode == "once" and first_time)
        cut_now = not error and (wants_cut or fault.cut)
        if error or cut_now:
            events = cut(events)
        invocation.stop_reason = None if error or cut_now else final_stop_reason(events)
        frames = len(events) + (1 if error else 0)
        return StreamPlan(invocation, events, error, cut_now, seconds_real / max(1, frames))

    @staticmethod
    def finish(invocation: Invocation, outcome: str, now: float) -> None:
        invocation.outcome = outcome
        invocation.ended_at = now
        if outcome != "completed":
            invocation.stop_reason = None

    def found(self, session_ids: list[str], look: Lookup) -> list[str]:
        """The named sessions a batch evaluation finds traces of: each session the
        harness ran once ingested, in its own region and with activity in the window;
        with ``look.assume_traces``, each id the harness never ran too."""
        return [sid for sid in dict.fromkeys(session_ids) if self._finds(sid, look)]

    def _finds(self, session_id: str, look: Lookup) -> bool:
        session = self.sessions.get(session_id)
        if session is None:
            return look.assume_traces
        return (
            session.region == look.region
            and session.ingested_by(look.now, look.ingestion_real)
            and session.active_in(look.window)
        )

    def prompts(self, session_ids: list[str]) -> dict[str, list[str]]:
        """What each of these sessions was asked, turn by turn (those the harness ran)."""
        return {
            sid: [i.prompt for i in self.sessions[sid].invocations if i.prompt]
            for sid in session_ids
            if sid in self.sessions
        }

    def stats(self) -> dict[str, Any]:
        outcomes: dict[str, int] = {}
        for invocation in self.invocations:
            key = invocation.outcome or "streaming"
            outcomes[key] = outcomes.get(key, 0) + 1
        return {
            "sessions": len(self.sessions),
            "invocations": len(self.invocations),
            "by_outcome": outcomes,
            "calls_by_session": dict(self.calls_by_session),
        }

    def views(self) -> list[dict[str, Any]]:
        return [s.view() for s in self.sessions.values()]
