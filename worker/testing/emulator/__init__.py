"""Emulator of the Bedrock AgentCore batch-evaluation API (rest-json over HTTP).

An unmodified boto3 `bedrock-agentcore` client pointed at `EmulatorServer.url` can
start, poll, stop, delete and list batch evaluations, with the service's real
status codes, error shapes, quotas and rate limits, plus injectable faults::

    with EmulatorServer(EmulatorConfig(time_scale=100)) as emu:
        client = boto3.client("bedrock-agentcore", endpoint_url=emu.url, ...)

Control plane: GET /_emulator/{health,stats,jobs,faults}, POST /_emulator/{faults,reset}.
"""

from .config import EmulatorConfig, FaultConfig
from .server import EmulatorServer, serve_forever

__all__ = ["EmulatorConfig", "EmulatorServer", "FaultConfig", "serve_forever"]
