"""``evalq-emulator`` (``python -m evalq_emulators``, and ``evalq emulator`` runs it): serve
one emulated service until SIGTERM/SIGINT.

    evalq-emulator [--service agentcore|aymara|agno] --port N --time-scale X [options]

Once the socket listens it prints one flushed line, ``emulator listening on URL``, which
the processes that start it wait for.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .agentcore.config import EmulatorConfig
from .common import FaultConfig, serve_forever
from .launch import SERVICES, build_service

#: ``--fault-X`` options: the fault document key each sets, and its type.
_FAULT_OPTIONS: dict[str, tuple[type, str]] = {
    "throttle": (float, "answer throttling errors (429)"),
    "server_error": (float, "answer internal server errors (500)"),
    "drop": (float, "close the connection without an answer"),
    "lost_response": (float, "serve the call, then drop the answer"),
    "latency_rate": (float, "delay calls by --fault-latency-ms"),
    "latency_ms": (int, "the delay of --fault-latency-rate"),
    "stream_break": (float, "agentcore: cut InvokeHarness streams midway"),
    "update_failed": (float, "agentcore: evaluator updates that end UPDATE_FAILED"),
}

#: AgentCore's quotas, rates and durations (``EmulatorConfig`` fields) and their help.
_AGENTCORE_OPTIONS: dict[str, str] = {
    "region": "the region of unsigned calls (a signed call is served in the region it is "
    "signed for)",
    "max_active": "active batch evaluations per account and region",
    "max_jobs": "batch evaluations that may exist per account and region",
    "mutate_tps": "start/stop/delete calls per second",
    "read_tps": "get/list calls per second",
    "pending_seconds": "emulated seconds a job stays PENDING",
    "session_seconds": "emulated seconds per session",
    "stop_seconds": "emulated seconds a job stays STOPPING",
    "default_sessions": "sessions of a job whose request names none",
    "create_seconds": "emulated seconds an evaluator or online config stays CREATING",
    "update_seconds": "emulated seconds an evaluator stays UPDATING",
    "harness_seconds": "emulated seconds of one InvokeHarness stream",
    "ingestion_seconds": "emulated seconds before harness traces can be evaluated",
    "harness_tps": "InvokeHarness calls per second",
    "named_sessions": "traces (a named session the harness never ran is the producer's "
    "ingested trace) or harness (only the harness's sessions count)",
}


def parser(prog: str = "evalq-emulator") -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    p = argparse.ArgumentParser(
        prog=prog,
        description="Serve a remote service's API locally: the AgentCore APIs evalq uses "
        "(for boto3 with endpoint_url), Aymara eval runs (for aymara-ai-sdk) or Agno "
        "AgentOS eval runs, with the control plane /_emulator/{stats,jobs,faults,reset}.",
    )
    services = ", ".join(SERVICES)
    p.add_argument("--service", default=SERVICES[0], metavar="|".join(SERVICES),
                   help=f"the service to emulate: {services} (default: %(default)s)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8700, help="0 picks a free port")
    p.add_argument("--time-scale", type=float, default=1.0,
                   help="emulated seconds per real second")  # fmt: skip
    p.add_argument("--seed", type=int, default=None, help="seed of the fault dice and ids")

    faults = p.add_argument_group(
        "faults", "rates (0..1) rolled per call, as POST /_emulator/faults takes them"
    )
    faults.add_argument("--faults", metavar="JSON", default=None,
                        help="a whole fault document (errors, stream_errors, operations, ...); "
                        "--fault-* options override its members")  # fmt: skip
    for key, (kind, text) in _FAULT_OPTIONS.items():
        metavar = "MS" if kind is int else "R"
        faults.add_argument(f"--fault-{key.replace('_', '-')}", type=kind, default=None,
                            metavar=metavar, help=text)  # fmt: skip

    agentcore = p.add_argument_group("agentcore")
    for key, text in _AGENTCORE_OPTIONS.items():
        default = getattr(defaults, key)
        agentcore.add_argument(f"--{key.replace('_', '-')}", type=type(default),
                               default=default, help=f"{text} (default: %(default)s)")  # fmt: skip

    aymara = p.add_argument_group("aymara")
    aymara.add_argument("--api-key", default=None, help="the x-api-key it accepts (unset: any)")
    aymara.add_argument("--workspaces", default=None,
                        help="comma-separated workspaces that exist (unset: any)")  # fmt: skip
    aymara.add_argument("--no-organization", action="store_true",
                        help="the key's organization is missing (every call: 404)")  # fmt: skip

    agno = p.add_argument_group("agno")
    agno.add_argument("--security-key", default=None,
                      help="the Bearer key it requires (unset: none)")  # fmt: skip
    agno.add_argument("--agents", default="demo-agent", help="comma-separated agent ids")
    agno.add_argument("--teams", default="", help="comma-separated team ids")
    agno.add_argument("--db-id", default=None, help="the database id")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "evalq-emulator") -> None:
    p = parser(prog)
    args = p.parse_args(argv)
    if args.service not in SERVICES:
        p.error(f"unknown service {args.service!r}: {', '.join(SERVICES)}")
    try:
        service = build_service(args.service, **_options(args))
    except ValueError as exc:  # FaultConfigError included: report like argparse does
        p.error(str(exc))

    def ready(url: str) -> None:
        # One flushed line: parent processes wait for it before connecting.
        print(f"emulator listening on {url}", flush=True)

    # Every /accounts/<id>/ prefix is an account of its own, with the same settings
    # (docs/capacity.md: many targets against one emulator process).
    options = _options(args)
    serve_forever(service, args.host, args.port, ready,
                  make_account=lambda: build_service(args.service, **options))  # fmt: skip


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "time_scale": args.time_scale,
        "faults": _faults(args),
        "seed": args.seed,
        "agentcore": {key: getattr(args, key) for key in _AGENTCORE_OPTIONS},
        "api_key": args.api_key,
        "workspaces": None if args.workspaces is None else _names(args.workspaces),
        "organization": not args.no_organization,
        "security_key": args.security_key,
        "agents": _names(args.agents),
        "teams": _names(args.teams),
        "db_id": args.db_id,
    }


def _faults(args: argparse.Namespace) -> FaultConfig:
    """``--faults`` with each ``--fault-*`` given on top (``FaultConfigError`` if wrong)."""
    try:
        doc = {} if args.faults is None else json.loads(args.faults)
    except ValueError as exc:
        raise ValueError(f"--faults is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("--faults must be a JSON object")
    doc.update({key: value for key in _FAULT_OPTIONS
                if (value := getattr(args, f"fault_{key}")) is not None})  # fmt: skip
    return FaultConfig.from_dict(doc)


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


if __name__ == "__main__":
    main(sys.argv[1:])
