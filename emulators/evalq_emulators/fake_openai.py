"""A tiny OpenAI-compatible chat server, so the real Agno AgentOS runs evals offline.

``POST /v1/chat/completions`` (and ``/chat/completions``) answers as OpenAI's API does,
without a model behind it:

* with a structured-output schema (``response_format`` ``json_schema``), the JSON that
  schema asks for: every property, integers at their maximum (an evaluator's score of
  10), strings ``"ok"``, booleans ``true``, the first value of an enum;
* with ``tools`` and no tool result yet in the conversation, a call of the first tool
  (arguments built from its parameter schema), so reliability evals see a tool call;
* otherwise plain text: ``FAKE_ANSWER`` (``"4"``, the sample accuracy eval's answer).

Streaming requests get the same answer as server-sent events. Every request is counted
(``GET /_fake/stats``). ``python -m evalq_emulators.fake_openai --port N`` serves it until
SIGTERM, printing ``fake openai listening on URL`` once it listens.

Hand-written because no maintained package serves an OpenAI-compatible API offline with
answers that follow a request's own JSON Schema.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

#: The plain answer (the sample accuracy eval asks "What is 2 + 2?").
FAKE_ANSWER: Final = "4"
_CHAT_PATHS: Final = ("/v1/chat/completions", "/chat/completions")


def value_for(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """A value that satisfies the JSON Schema ``schema`` (the subset models ask for)."""
    defs = defs if defs is not None else schema.get("$defs", {}) if isinstance(schema, dict) else {}
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return value_for(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        branches = [b for b in schema.get(combinator, []) if b.get("type") != "null"]
        if branches:
            return value_for(branches[0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: value_for(sub, defs) for name, sub in properties.items()}
    if kind == "array":
        return [value_for(schema["items"], defs)] if schema.get("minItems") else []
    bound: Any = schema.get("maximum", schema.get("minimum", 1))
    if kind == "integer":
        return int(bound)
    if kind == "number":
        return float(bound)
    if kind == "boolean":
        return True
    if kind == "string":
        return "ok"
    return None


def answer_for(request: dict[str, Any]) -> dict[str, Any]:
    """The assistant message a chat request gets."""
    messages = request.get("messages") or []
    tools = request.get("tools") or []
    tool_answered = any(m.get("role") == "tool" for m in messages if isinstance(m, dict))
    if tools and not tool_answered:
        function = tools[0].get("function", {})
        arguments = value_for(function.get("parameters") or {"type": "object"})
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": function.get("name"), "arguments": json.dumps(arguments)},
                }
            ],
        }
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return {"role": "assistant", "content": json.dumps(value_for(schema))}
    if response_format.get("type") == "json_object":
        return {"role": "assistant", "content": "{}"}
    return {"role": "assistant", "content": FAKE_ANSWER}


def completion(request: dict[str, Any]) -> dict[str, Any]:
    message = answer_for(request)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def stream_chunks(full: dict[str, Any]) -> list[dict[str, Any]]:
    """The completion as ``chat.completion.chunk`` events: the message, then the end."""
    choice = full["choices"][0]
    delta = {k: v for k, v in choice["message"].items() if v is not None}
    if "tool_calls" in delta:
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(delta["tool_calls"])]
    base = {"id": full["id"], "object": "chat.completion.chunk", "created": full["created"],
            "model": full["model"]}  # fmt: skip
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
            "usage": full["usage"],
        },
    ]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.calls = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/_fake/stats":
            with self.server.lock:
                self._json(200, {"calls": self.server.calls})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?", 1)[0] not in _CHAT_PATHS:
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        with self.server.lock:
            self.server.calls += 1
        full = completion(request)
        if request.get("stream"):
            self._stream(stream_chunks(full))
        else:
            self._json(200, full)

    def _json(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, chunks: Sequence[dict[str, Any]]) -> None:
        events = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        data = events.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAI:
    """The fake model server on a daemon thread; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client (``.../v1``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def calls(self) -> int:
        with self._server.lock:
            return self._server.calls

    def start(self) -> Self:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evalq_emulators.fake_openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = FakeOpenAI(args.host, args.port)
    print(f"fake openai listening on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
