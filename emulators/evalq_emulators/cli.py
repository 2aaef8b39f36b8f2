"""`python -m evalq_emulators`: run the emulator until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import sys

from .agentcore.config import EmulatorConfig, FaultConfig
from .agentcore.server import serve_forever


def _parser() -> argparse.ArgumentParser:
    d = EmulatorConfig()
    p = argparse.ArgumentParser(
        prog="python -m evalq_emulators",
        description="Emulate the Bedrock AgentCore APIs evalq uses over HTTP.",
    )
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port, help="0 picks a free port")
    p.add_argument(
        "--time-scale", type=float, default=d.time_scale, help="emulated seconds per real second"
    )
    p.add_argument("--region", default=d.region)
    p.add_argument("--max-active", type=int, default=d.max_active)
    p.add_argument("--max-jobs", type=int, default=d.max_jobs)
    p.add_argument("--mutate-tps", type=float, default=d.mutate_tps)
    p.add_argument("--read-tps", type=float, default=d.read_tps)
    p.add_argument("--session-seconds", type=float, default=d.session_seconds)
    p.add_argument("--pending-seconds", type=float, default=d.pending_seconds)
    p.add_argument("--stop-seconds", type=float, default=d.stop_seconds)
    p.add_argument("--default-sessions", type=int, default=d.default_sessions)
    p.add_argument("--create-seconds", type=float, default=d.create_seconds)
    p.add_argument("--update-seconds", type=float, default=d.update_seconds)
    p.add_argument("--harness-seconds", type=float, default=d.harness_seconds)
    p.add_argument("--ingestion-seconds", type=float, default=d.ingestion_seconds)
    p.add_argument("--harness-tps", type=float, default=d.harness_tps)
    p.add_argument("--fault-throttle", type=float, default=0.0, metavar="R")
    p.add_argument("--fault-server-error", type=float, default=0.0, metavar="R")
    p.add_argument("--fault-drop", type=float, default=0.0, metavar="R")
    p.add_argument("--fault-lost-response", type=float, default=0.0, metavar="R")
    p.add_argument("--fault-latency-rate", type=float, default=0.0, metavar="R")
    p.add_argument("--fault-latency-ms", type=int, default=0, metavar="MS")
    p.add_argument("--fault-stream-break", type=float, default=0.0, metavar="R")
    p.add_argument("--fault-update-failed", type=float, default=0.0, metavar="R")
    p.add_argument("--seed", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = _config(args)
    except ValueError as exc:  # FaultConfigError included: report like argparse does
        parser.error(str(exc))

    def ready(url: str) -> None:
        # One flushed line: parent processes wait for it before connecting.
        print(f"emulator listening on {url}", flush=True)

    serve_forever(config, ready)


def _config(args: argparse.Namespace) -> EmulatorConfig:
    faults = FaultConfig.from_dict(
        {
            "throttle": args.fault_throttle,
            "server_error": args.fault_server_error,
            "drop": args.fault_drop,
            "lost_response": args.fault_lost_response,
            "latency_rate": args.fault_latency_rate,
            "latency_ms": args.fault_latency_ms,
            "stream_break": args.fault_stream_break,
            "update_failed": args.fault_update_failed,
        }
    )
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        time_scale=args.time_scale,
        region=args.region,
        max_active=args.max_active,
        max_jobs=args.max_jobs,
        mutate_tps=args.mutate_tps,
        read_tps=args.read_tps,
        pending_seconds=args.pending_seconds,
        session_seconds=args.session_seconds,
        default_sessions=args.default_sessions,
        stop_seconds=args.stop_seconds,
        create_seconds=args.create_seconds,
        update_seconds=args.update_seconds,
        harness_seconds=args.harness_seconds,
        ingestion_seconds=args.ingestion_seconds,
        harness_tps=args.harness_tps,
        faults=faults,
        seed=args.seed,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
