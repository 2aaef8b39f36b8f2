"""Emulator of the Bedrock AgentCore APIs evalq uses (rest-json over HTTP, one port).

Unmodified boto3 clients pointed at `EmulatorServer.url` can start, poll, stop, delete
and list batch evaluations and invoke harnesses (`bedrock-agentcore`, InvokeHarness over
the real event-stream framing), and create, read, update and list evaluators and online
evaluation configs (`bedrock-agentcore-control`), with the services' real status codes,
error shapes, quotas and rate limits, plus injectable faults::

    with EmulatorServer(EmulatorConfig(time_scale=100)) as emu:
        client = boto3.client("bedrock-agentcore", endpoint_url=emu.url, ...)

Control plane of the emulator itself: GET /_emulator/{health,stats,jobs,sessions,
evaluators,faults}, POST /_emulator/{faults,reset}. ``AgentCoreService`` is the service
on the HTTP server and fault stack every emulator shares (``common``).
"""

from .config import EmulatorConfig, FaultConfig
from .server import AgentCoreService, EmulatorServer

__all__ = ["AgentCoreService", "EmulatorConfig", "EmulatorServer", "FaultConfig"]
