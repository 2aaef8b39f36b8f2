"""``evalq``: the command line for running, feeding and inspecting the service."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from worker.cli import dlq, emulator_cmd, evaluator, janitor_cmd, jobs_cmd, schedules_cmd
from worker.cli.text import line, plain
from worker.cli.views import job_view
from worker.runtime.connections import prefetch_multiplier
from worker.runtime.root import services
from worker.settings import get_settings

#: evalq's Celery app, as Celery's command line names it.
CELERY_APP = "worker.runtime.app:app"

app = typer.Typer(
    help="evalq: batch evaluations of AI agents on Amazon Bedrock AgentCore.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
app.add_typer(dlq.app, name="dlq")
app.add_typer(evaluator.app, name="evaluator")
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(schedules_cmd.app, name="schedules")
app.command(name="janitor")(janitor_cmd.janitor)
# Its options are evalq-emulator's, which parses them (and --help).
app.command(
    name="emulator",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(emulator_cmd.emulator)


def _exec_celery(argv: list[str]) -> NoReturn:
    """Become Celery's own command line on evalq's app (same process id, signals and
    environment): the worker and the pool it forks then hold no command-line libraries
    (typer, rich: 5 MB less for the worker's processes together)."""
    # The arguments are evalq's own, from its options and settings: no shell involved.
    os.execv(sys.executable, [sys.executable, "-m", "celery", "-A", CELERY_APP, *argv])  # noqa: S606


def _celery() -> Any:
    from worker.runtime.app import app as celery_app  # imported late: the app is not cheap

    return celery_app


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c")] = None,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "prefork",
    name: Annotated[str | None, typer.Option(help="worker node name")] = None,
    loglevel: Annotated[str | None, typer.Option()] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            help="comma-separated queues (default: requests, control, timers, synchronous)"
        ),
    ] = None,
) -> None:
    """Run a Celery worker consuming the request, control, timers and synchronous-run
    queues (a worker of its own for synchronous runs: ``--queues evals.synchronous``)."""
    settings = get_settings()
    chosen = queues.split(",") if queues else settings.worker_queues
    argv = [
        "worker",
        "--queues",
        ",".join(chosen),
        "--prefetch-multiplier",
        str(prefetch_multiplier(settings, chosen)),
        "--concurrency",
        str(concurrency or settings.worker_concurrency),
        "--pool",
        pool,
        "--hostname",
        name or "evalq@%h",
        "--loglevel",
        loglevel or settings.log_level,
        "--without-gossip",
        "--without-mingle",
    ]
    _exec_celery(argv)


@app.command()
def beat(
    schedule: Annotated[Path | None, typer.Option(help="beat's schedule state file")] = None,
    loglevel: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Run Celery beat (exactly one per deployment): the ticker and the janitor."""
    settings = get_settings()
    path = schedule or Path(tempfile.gettempdir()) / f"evalq-beat-{settings.key_prefix}"
    _celery().start(["beat", "--schedule", str(path), "--loglevel", loglevel or settings.log_level])


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def health(ctx: typer.Context) -> None:
    """Exit 0 if this node and what it needs are healthy (probes; --help for options)."""
    from worker.observability.health import main as check

    raise typer.Exit(check(list(ctx.args)))


@app.command()
def exporter(
    port: Annotated[int, typer.Option()] = 9808,
    host: Annotated[str, typer.Option()] = "0.0.0.0",  # noqa: S104 (scraped from outside)
) -> None:
    """Serve /metrics (Prometheus): the cluster-wide truth read from Redis."""
    from worker.runtime.exporter import serve

    serve(get_settings(), host=host, port=port)


@app.command()
def submit(
    file: Annotated[
        str, typer.Argument(help="JSON file with one request, a list, or JSON lines; - for stdin")
    ],
    validate: Annotated[bool, typer.Option(help="check requests before sending")] = True,
) -> None:
    """Send evaluation requests to evals.requests, as a producer service would."""
    from pydantic import ValidationError

    from api_contracts import EvaluationRequest, describe_validation_error
    from worker.runtime.app import send_to_intake

    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    requests = _parse_requests(text)
    failed = 0
    for raw in requests:
        if validate:
            try:
                EvaluationRequest.model_validate(raw)
            except ValidationError as exc:
                failed += 1
                console.print(
                    line(
                        ("invalid", "red"),
                        " ",
                        plain(raw.get("request_id", "?")),
                        ": ",
                        plain(describe_validation_error(exc)),
                    )
                )
                continue
        send_to_intake(raw)
        console.print(line("sent ", plain(raw.get("request_id", "?"))))
    if failed:
        raise typer.Exit(1)


def _parse_requests(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if text.startswith("["):
        return list(json.loads(text))
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@app.command()
def status(
    request_id: str,
    producer: Annotated[
        str | None, typer.Option(help="the producer whose request_id it is (ids are per producer)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show one job (by its job id, or a producer's request_id): state, remote status,
    progress."""
    job = services().store.find(request_id, producer)
    if job is None:
        console.print(plain(f"no job with request_id {request_id!r}", "red"))
        raise typer.Exit(1)
    view = job_view(job)
    if as_json:
        print(json.dumps(view, indent=2, sort_keys=True))
        return
    table = Table(show_header=False)
    for key, value in view.items():
        table.add_row(key, plain("" if value is None else value))
    console.print(table)


@app.command()
def schema(
    name: Annotated[str | None, typer.Argument(help="one schema, e.g. evaluation-request")] = None,
) -> None:
    """Print the JSON Schemas of the public contract."""
    from api_contracts.schema import all_schemas

    schemas = all_schemas()
    if name is not None:
        matches = {k: v for k, v in schemas.items() if name.lower() in k.lower()}
        if not matches:
            console.print(f"[red]no schema named {name!r}; have: {', '.join(schemas)}[/red]")
            raise typer.Exit(1)
        schemas = matches
    print(json.dumps(schemas if len(schemas) > 1 else next(iter(schemas.values())), indent=2))


@app.command()
def example(
    count: Annotated[int, typer.Option(help="how many requests")] = 8,
) -> None:
    """Print sample AgentCore requests as JSON lines (for `evalq submit -`), steered for
    the emulator."""
    from worker.cli.demo import agentcore_samples

    for request in agentcore_samples(count):
        print(json.dumps(request, sort_keys=True))


@app.command()
def demo(
    requests: Annotated[int, typer.Option(help="how many sample requests")] = 8,
    time_scale: Annotated[float, typer.Option(help="emulator seconds per real second")] = 20.0,
    workdir: Annotated[Path | None, typer.Option(help="where logs go")] = None,
) -> None:
    """Run everything locally: private Redis, emulator, worker, beat, sample requests."""
    from worker.cli.demo import run_demo

    raise typer.Exit(run_demo(requests=requests, time_scale=time_scale, workdir=workdir))
