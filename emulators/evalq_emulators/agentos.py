"""The real Agno AgentOS, run offline: the oracle of the Agno emulator's contract tests.

``python -m evalq_emulators.agentos --port N --model-url URL --db-file F`` serves
``agno.os.AgentOS`` with uvicorn: a ``SqliteDb`` (id ``--db-id``), agents (``--agents``)
and teams (``--teams``) whose model is ``OpenAIChat(base_url=--model-url)`` (the fake
model server, ``evalq_emulators.fake_openai``), each agent with one tool (``multiply``) so
reliability evals have a call to check, and ``--security-key`` as ``OS_SECURITY_KEY``.
It prints ``agentos listening on URL`` once it serves.

Needs evalq-emulators' extra ``agentos`` (agno, fastapi, uvicorn, sqlalchemy, aiosqlite, openai).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

#: The model id every agent, team and judge uses (any id: the fake server ignores it).
MODEL_ID: Final = "gpt-4o-mini"
DEFAULT_DB_ID: Final = "agentos-db"
#: The table AgentOS stores eval runs in (the ``table`` query parameter names it).
EVAL_TABLE: Final = "agno_eval_runs"


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def build_app(
    *,
    model_url: str,
    db_file: str,
    db_id: str = DEFAULT_DB_ID,
    agents: Sequence[str] = ("demo-agent",),
    teams: Sequence[str] = (),
    security_key: str | None = None,
) -> Any:
    """The AgentOS FastAPI app."""
    # No telemetry (there is no network) and the key AgentOS reads from its settings.
    os.environ["AGNO_TELEMETRY"] = "false"
    os.environ.setdefault("OPENAI_API_KEY", "fake-key")
    # The judges agno builds itself (accuracy, agent-as-judge) use OpenAI's default URL.
    os.environ["OPENAI_BASE_URL"] = model_url
    if security_key:
        os.environ["OS_SECURITY_KEY"] = security_key
    else:
        os.environ.pop("OS_SECURITY_KEY", None)

    from agno.agent import Agent
    from agno.db.sqlite import SqliteDb
    from agno.models.openai import OpenAIChat
    from agno.os import AgentOS
    from agno.team import Team

    def model() -> OpenAIChat:
        return OpenAIChat(id=MODEL_ID, base_url=model_url, api_key="fake-key", max_retries=0)

    db = SqliteDb(id=db_id, db_file=db_file, eval_table=EVAL_TABLE)
    made_agents: list[Any] = [
        Agent(id=name, name=name, model=model(), tools=[multiply], db=db, telemetry=False)
        for name in agents
    ]
    made_teams: list[Any] = [
        Team(
            id=name,
            name=name,
            model=model(),
            members=[Agent(name=f"{name}-member", model=model(), telemetry=False)],
            db=db,
            telemetry=False,
        )
        for name in teams
    ]
    agent_os = AgentOS(
        id="evalq-oracle", db=db, agents=made_agents, teams=made_teams, telemetry=False
    )
    return agent_os.get_app()


def _announce_when_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):  # noqa: S310 - loopback
                print(f"agentos listening on {url}", flush=True)
                return
        except OSError:
            time.sleep(0.1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m evalq_emulators.agentos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-url", required=True, help="OpenAI-compatible base URL")
    parser.add_argument("--db-file", required=True)
    parser.add_argument("--db-id", default=DEFAULT_DB_ID)
    parser.add_argument("--agents", default="demo-agent", help="comma-separated agent ids")
    parser.add_argument("--teams", default="", help="comma-separated team ids")
    parser.add_argument("--security-key", default=None)
    args = parser.parse_args(argv)
    app = build_app(
        model_url=args.model_url,
        db_file=args.db_file,
        db_id=args.db_id,
        agents=[a for a in args.agents.split(",") if a],
        teams=[t for t in args.teams.split(",") if t],
        security_key=args.security_key,
    )
    import uvicorn

    url = f"http://{args.host}:{args.port}"
    threading.Thread(target=_announce_when_ready, args=(url,), daemon=True).start()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
