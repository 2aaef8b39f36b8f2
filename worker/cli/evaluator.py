"""``evalq evaluator``: look at (and roll out) AgentCore custom evaluators."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

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
        console.print(f"[red]{type(exc).__name__}[/red]: {exc}", markup=True, highlight=False)
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
            table.add_row(key, _status(value) if key == "status" else str(value))
    return table


def _status(status: str) -> str:
    colour = {"ACTIVE": "green", "UPDATING": "yellow", "CREATING": "yellow"}.get(status, "red")
    return f"[{colour}]{status}[/{colour}]"
