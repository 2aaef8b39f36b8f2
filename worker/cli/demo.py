"""``evalq demo``: the whole service on one machine with nothing configured.

Starts a private redis-server, the AgentCore, Aymara and Agno emulators, a worker and
beat as child processes (as a user would start them), sends sample requests of all three
backends and a scenario run (a harness invoked on five scenarios, then one batch
evaluation of exactly those sessions) by task name as a producer service would, shows
live progress, prints the outcomes and stops everything it started, also on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from api_contracts.examples import (
    sample_agno_request,
    sample_aymara_request,
    sample_request,
    sample_scenario_request,
)
from worker.cli.emulator_cmd import INSTALL_HINT
from worker.cli.views import job_view
from worker.runtime.root import services

console = Console()

#: (sessions, final status) of the sample jobs: varied durations and outcomes.
_SAMPLES = [
    (4, "COMPLETED"),
    (8, "COMPLETED"),
    (3, "COMPLETED_WITH_ERRORS"),
    (6, "COMPLETED"),
    (2, "FAILED"),
    (10, "COMPLETED"),
    (5, "COMPLETED"),
    (7, "COMPLETED_WITH_ERRORS"),
]


#: The keys the demo's Aymara and Agno emulators accept.
AYMARA_KEY = "demo-aymara-key"
AGNO_KEY = "demo-agno-key"


def demo_environment(redis_url: str, emulators: dict[str, str]) -> dict[str, str]:
    return {
        "EVALQ_BROKER_URL": f"{redis_url}/0",
        "EVALQ_REDIS_URL": f"{redis_url}/1",
        "EVALQ_AGENTCORE_ENDPOINT_URL": emulators["agentcore"],
        "EVALQ_AYMARA_BASE_URL": emulators["aymara"],
        "EVALQ_AYMARA_API_KEY": AYMARA_KEY,
        "EVALQ_AGNO_BASE_URL": emulators["agno"],
        "EVALQ_AGNO_SECURITY_KEY": AGNO_KEY,
        "EVALQ_AWS_ACCESS_KEY_ID": "demo",
        "EVALQ_AWS_SECRET_ACCESS_KEY": "demo",
        "EVALQ_TICK_INTERVAL": "0.5",
        "EVALQ_POLL_INITIAL": "1.0",
        "EVALQ_POLL_MAX": "5.0",
        "EVALQ_LOG_LEVEL": "INFO",
    }


def sample_requests(count: int, aymara_url: str) -> list[dict[str, Any]]:
    """``count`` AgentCore requests of varied length and outcome, then two Aymara eval runs
    (against an eval made on the emulator, as a user would make one) and two Agno evals."""
    requests = agentcore_samples(count)
    eval_uuid, prompts = _aymara_eval(aymara_url)
    for i in range(2):
        request_id = f"demo-aymara-{i + 1}"
        requests.append(
            sample_aymara_request(request_id, "demo-c", eval_uuid=eval_uuid, prompt_uuids=prompts)
        )
    requests.append(sample_agno_request("demo-agno-1", "demo-c"))
    judge = sample_agno_request("demo-agno-2", "demo-c")
    judge["evaluation"] = {"eval_type": "performance", "input": "Say hi", "agent_id": "demo-agent",
                           "num_iterations": 2}  # fmt: skip
    requests.append(judge)
    requests.append(scenario_run())
    return requests


#: The demo's scenario run: five scenarios, one of whose streams breaks the first time
#: (it runs again under a new session id).
SCENARIO_PROMPTS = (
    "Where is order 7?",
    "Cancel my plan",
    "Do you ship to Oslo? [emulator:break=once]",
    "My invoice is wrong",
    "Talk to a human",
)


def scenario_run() -> dict[str, Any]:
    request = sample_scenario_request(
        "demo-scenarios-1", "demo-s", prompts=SCENARIO_PROMPTS, ingestion_delay_seconds=2
    )
    request["evaluation"]["tags"] = {"emulator:outcome": "COMPLETED"}
    return request


def _aymara_eval(url: str) -> tuple[str, tuple[str, ...]]:
    from aymara_ai import AymaraAI

    sdk = AymaraAI(api_key=AYMARA_KEY, base_url=url, max_retries=0)
    made = sdk.evals.create(ai_description="a support bot", eval_type="safety",
                            name="demo safety eval", num_prompts=3)  # fmt: skip
    prompts = sdk.evals.list_prompts(made.eval_uuid or "", limit=10).items
    return made.eval_uuid or "", tuple(p.prompt_uuid for p in prompts)


def agentcore_samples(count: int) -> list[dict[str, Any]]:
    requests = []
    for i in range(count):
        sessions, outcome = _SAMPLES[i % len(_SAMPLES)]
        request = sample_request(
            request_id=f"demo-{i + 1:03d}", producer="demo-a" if i % 3 else "demo-b"
        )
        request["evaluation"]["tags"] = {
            "emulator:sessions": str(sessions),
            "emulator:outcome": outcome,
        }
        request["correlation"] = {"sample": str(i + 1)}
        requests.append(request)
    return requests


def run_demo(*, requests: int, time_scale: float, workdir: Path | None) -> int:
    # The emulators and the process helpers are evalq-emulators' (the test tooling, not
    # in evalq's wheel): imported here, so `evalq example` and the rest never need them.
    try:
        from evalq_emulators.processes import ManagedProcess, RedisServer, evalq_command
    except ImportError:
        console.print(f"evalq demo: {INSTALL_HINT}", style="red", markup=False)
        return 1
    workdir = workdir or Path(tempfile.mkdtemp(prefix="evalq-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]evalq demo[/bold]: logs in {workdir}")
    started: list[Any] = []
    try:
        redis_server = RedisServer(log_path=workdir / "redis.log").start()
        started.append(redis_server)
        console.print(f"  redis-server   {redis_server.url}")
        emulators = {
            service: _start_emulator(workdir, time_scale, started, service, *options)
            for service, options in (
                ("agentcore", ()),
                ("aymara", ("--api-key", AYMARA_KEY)),
                ("agno", ("--security-key", AGNO_KEY)),
            )
        }
        for service, url in emulators.items():
            console.print(f"  {service + ' emulator':<20} {url} (time scale {time_scale}x)")
        env = demo_environment(redis_server.url, emulators)
        os.environ.update(env)
        for name, args in (
            ("worker", ["worker", "--concurrency", "2"]),
            ("beat", ["beat", "--schedule", str(workdir / "beat-schedule")]),
        ):
            proc = ManagedProcess(
                name, evalq_command(*args), env=env, log_path=workdir / f"{name}.log"
            ).start()
            started.append(proc)
            console.print(f"  {name:<14} pid {proc.pid}")
        return _drive(sample_requests(requests, emulators["aymara"]), env, workdir)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; stopping what the demo started[/yellow]")
        return 130
    finally:
        for part in reversed(started):
            part.stop()
        console.print("stopped redis-server, the emulators, worker and beat")


def _start_emulator(
    workdir: Path, time_scale: float, started: list[Any], service: str, *options: str
) -> str:
    from evalq_emulators.processes import ManagedProcess, evalq_command, free_port, wait_for_line

    port = free_port()
    log = workdir / f"emulator-{service}.log"
    argv = evalq_command("emulator", "--service", service, "--port", str(port),
                         "--time-scale", str(time_scale), *options)  # fmt: skip
    proc = ManagedProcess(f"emulator-{service}", argv, log_path=log).start()
    started.append(proc)
    wait_for_line(log, "emulator listening on", 20, proc)
    return f"http://127.0.0.1:{port}"


def _drive(requests: list[dict[str, Any]], env: dict[str, str], workdir: Path) -> int:
    from celery import Celery
    from kombu.connection import Connection

    from worker.settings import get_settings

    get_settings.cache_clear()
    producer_app = Celery("demo-producer", broker=env["EVALQ_BROKER_URL"])
    producer_app.conf.update(task_serializer="json", accept_content=["json"])
    for request in requests:
        producer_app.send_task("evals.submit", kwargs={"request": request}, queue="evals.requests")
    console.print(f"sent {len(requests)} requests by task name to evals.requests\n")

    outcomes: dict[str, dict[str, Any]] = {}
    wanted = {r["request_id"] for r in requests}
    deadline = time.monotonic() + 600
    with (
        Connection(env["EVALQ_BROKER_URL"]) as conn,
        Live(console=console, refresh_per_second=4) as live,
    ):
        results = conn.SimpleQueue("evals.results")
        while wanted - outcomes.keys() and time.monotonic() < deadline:
            while True:
                try:
                    message = results.get(block=True, timeout=0.25)
                except results.Empty:
                    break
                outcomes[message.payload["request_id"]] = message.payload
                message.ack()
            live.update(_progress_table(requests, outcomes))
        results.close()
    _print_outcomes(requests, outcomes)
    _print_scenarios(outcomes)
    (workdir / "outcomes.json").write_text(json.dumps(outcomes, indent=2))
    missing = wanted - outcomes.keys()
    if missing:
        console.print(f"[red]{len(missing)} requests without an outcome: {sorted(missing)}[/red]")
        return 1
    console.print(
        f"[green]all {len(requests)} outcomes published[/green] "
        f"(full bodies in {workdir / 'outcomes.json'})"
    )
    return 0


def _progress_table(requests: list[dict[str, Any]], outcomes: dict[str, Any]) -> Table:
    store = services().store
    table = Table(
        "request",
        "backend",
        "producer",
        "state",
        "remote",
        "progress",
        "outcome",
        title="evalq demo: live progress",
    )
    for request in requests:
        job = store.get(request["request_id"])
        view = job_view(job) if job else {"state": "SENT", "remote_status": "", "progress": ""}
        outcome = outcomes.get(request["request_id"], {}).get("status", "")
        table.add_row(
            request["request_id"],
            request.get("backend", "agentcore"),
            request["producer"],
            view["state"],
            view["remote_status"] or "",
            view["progress"] or "",
            outcome,
        )
    return table


def _print_outcomes(requests: list[dict[str, Any]], outcomes: dict[str, Any]) -> None:
    table = Table(
        "request",
        "backend",
        "status",
        "remote id",
        "scored",
        "score",
        title="outcomes on evals.results",
    )
    for request in requests:
        outcome = outcomes.get(request["request_id"])
        backend = request.get("backend", "agentcore")
        if outcome is None:
            table.add_row(request["request_id"], backend, "[red]missing[/red]", "", "", "")
            continue
        scored, score = _summary(backend, outcome.get("result") or {})
        table.add_row(
            request["request_id"],
            backend,
            outcome["status"],
            outcome.get("batch_evaluation_id") or "",
            scored,
            score,
        )
    console.print(table)


def _print_scenarios(outcomes: dict[str, Any]) -> None:
    """Each scenario run's items: the session evaluated, how it ended, its attempts."""
    for request_id, outcome in outcomes.items():
        if not outcome.get("scenarios"):
            continue
        table = Table("item", "scenario", "session (its item and attempt)", "stop reason",
                      "attempts", "error", title=f"{request_id}: scenario items")  # fmt: skip
        for item in outcome["scenarios"]:
            session = item.get("session_id") or ""
            table.add_row(
                str(item["index"]),
                item.get("scenario_id") or "",
                "…-" + "-".join(session.rsplit("-", 2)[1:]) if session else "",
                item.get("stop_reason") or "",
                str(item["attempts"]),
                item.get("error") or "",
            )
        console.print(table)


def _summary(backend: str, result: dict[str, Any]) -> tuple[str, str]:
    """(what was scored, the score) of one outcome's result, as each backend reports it."""
    if backend == "aymara":
        responses = result.get("responses") or []
        passed = sum(1 for r in responses if r.get("is_passed"))
        rate = result.get("pass_rate")
        return f"{passed}/{len(responses)} passed", "" if rate is None else f"{rate:.2f}"
    if backend == "agno":
        data = result.get("eval_data") or {}
        score = data.get("avg_score") if isinstance(data, dict) else None
        return str(result.get("eval_type", "")), "" if score is None else f"{score:.2f}"
    results = result.get("evaluationResults") or {}
    scores = [s.get("statistics", {}).get("averageScore")
              for s in results.get("evaluatorSummaries", [])]  # fmt: skip
    scores = [s for s in scores if s is not None]
    done, total = (
        results.get(k, 0) for k in ("numberOfSessionsCompleted", "totalNumberOfSessions")
    )
    return f"{done}/{total} sessions", f"{sum(scores) / len(scores):.2f}" if scores else ""
