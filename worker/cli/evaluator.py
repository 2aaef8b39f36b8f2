"""``evalq evaluator``: look at (and roll out) AgentCore custom evaluators."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from worker.cli.text import line, plain
from worker.settings import get_settings

app = typer.Typer(
    help="AgentCore evaluators: show one (GetEvaluator); roll out a new judge.",
    no_args_is_help=True,
)
console = Console()

#: GetEvaluator fields shown as table rows, in this order (the config is shown below).
_ROWS = (
    "evaluatorId",
    "evaluatorName",
    "evaluatorType",
    "provider",
    "level",
    "status",
    "lockedForModification",
    "createdAt",
    "updatedAt",
    "description",
    "kmsKeyArn",
    "evaluatorArn",
)


@app.command()
def show(
    evaluator_id: Annotated[str, typer.Argument(help="e.g. my_judge-a1b2c3d4e5 or Builtin.X")],
    as_json: Annotated[bool, typer.Option("--json", help="print the GetEvaluator body")] = False,
) -> None:
    """Show one evaluator as GetEvaluator returns it (status, lock, configuration)."""
    from worker.backends.agentcore.evaluators import EvaluatorClient
    from worker.errors import EvalqError

    try:
        body = EvaluatorClient.from_settings(get_settings()).get(evaluator_id)
    except EvalqError as exc:
        console.print(line((type(exc).__name__, "red"), ": ", plain(exc)))
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(body, indent=2, sort_keys=True))
        return
    console.print(_table(body))
    if body.get("evaluatorConfig") is not None:
        console.print("evaluatorConfig:")
        console.print(Syntax(json.dumps(body["evaluatorConfig"], indent=2), "json"))


def _table(body: dict[str, Any]) -> Table:
    table = Table(show_header=False)
    for key in _ROWS:
        if key in body:
            value = body[key]
            table.add_row(key, _status(value) if key == "status" else plain(value))
    return table


def _status(status: str) -> Text:
    colour = {"ACTIVE": "green", "UPDATING": "yellow", "CREATING": "yellow"}.get(status, "red")
    return plain(status, colour)


@app.command()
def update(
    evaluator_id: Annotated[str, typer.Argument(help="the custom evaluator to update")],
    file: Annotated[
        Path,
        typer.Option("--file", "-f", help="JSON: UpdateEvaluator's fields as boto3 spells them"),
    ],
    drain: Annotated[
        bool, typer.Option("--drain/--no-drain", help="hold jobs that use it until it is ACTIVE")
    ] = True,
    wait: Annotated[bool, typer.Option("--wait", help="show progress until the outcome")] = False,
    target: Annotated[str | None, typer.Option(help="its target (default: evalq's)")] = None,
    request_id: Annotated[
        str | None, typer.Option(help="idempotency key (default: a new one)")
    ] = None,
    producer: Annotated[str, typer.Option(help="who asks")] = "evalq-cli",
    timeout: Annotated[float, typer.Option(help="--wait gives up after this long (s)")] = 3600.0,
) -> None:
    """Roll out a new judge: send evals.evaluator.update by name (docs/evaluators.md).
    With --wait, exit 0 once the evaluator is ACTIVE again (UPDATED), 1 otherwise."""
    from pydantic import ValidationError

    from api_contracts import EvaluatorUpdateRequest, describe_validation_error
    from worker.runtime.app import send_to_intake

    raw: dict[str, Any] = {
        "schema_version": 1,
        "request_id": request_id or f"cli-{uuid.uuid4().hex[:16]}",
        "producer": producer,
        "evaluator_id": evaluator_id,
        "update": json.loads(file.read_text()),
        "drain": drain,
        **({"target": target} if target else {}),
    }
    try:
        request = EvaluatorUpdateRequest.model_validate(raw)
    except ValidationError as exc:
        console.print(line(("invalid", "red"), ": ", plain(describe_validation_error(exc))))
        raise typer.Exit(1) from exc
    sent_at = time.time()
    send_to_intake(request.model_dump(mode="json"))
    console.print(line("sent rollout ", plain(request.request_id), " of ", plain(evaluator_id)))
    if wait:
        raise typer.Exit(_wait_for_outcome(request.request_id, evaluator_id, sent_at, timeout))


def _wait_for_outcome(request_id: str, evaluator_id: str, sent_at: float, timeout: float) -> int:
    """Show the rollout's progress until it ends; 0 if UPDATED."""
    from worker.jobs.rollouts import jobs_using
    from worker.runtime.root import services

    svc = services()
    deadline = time.monotonic() + timeout
    with console.status("waiting for intake") as status:
        while time.monotonic() < deadline:
            job = svc.store.get(request_id)
            letter = next(
                (d for d in svc.dead_letters.find(since=sent_at) if d.request_id == request_id),
                None,
            )
            if letter is not None:
                console.print(
                    line(("dead letter", "red"), f" {letter.reason.value}: ", plain(letter.error))
                )
                return 1
            if job is not None and job.outcome_status is not None:
                ok = job.outcome_status == "UPDATED"
                said = plain(f": {job.error}" if job.error else "")
                outcome = plain(job.outcome_status, "green" if ok else "red")
                console.print(line(outcome, " ", plain(evaluator_id), said))
                return 0 if ok else 1
            if job is not None and job.state == "DRAINING":
                users = jobs_using(svc, job.target, evaluator_id) if job.drain_evaluator else []
                status.update(f"draining: {len(users)} running job(s) use {evaluator_id}")
            elif job is not None and job.state == "UPDATING":
                status.update(f"UpdateEvaluator called; {evaluator_id} is {job.remote_status}")
            time.sleep(0.5)
    console.print(f"[red]no outcome within {timeout:g} s[/red]")
    return 1
