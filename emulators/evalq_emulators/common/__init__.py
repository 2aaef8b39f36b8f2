"""What every emulator shares (AgentCore, Aymara, Agno): one HTTP server with the
``/_emulator/*`` control plane, one fault configuration (``FaultConfig``) and plan,
the counters of :class:`Service`, and the ``emulator:*`` markers that steer a run."""

from .faults import Fault, FaultConfig, FaultConfigError, FaultPlan, StreamFault, parse_faults
from .markers import markers_in
from .messages import Reply, Request, ServiceError, Stream
from .server import ServiceServer, serve_call, serve_forever
from .service import Service

__all__ = [
    "Fault",
    "FaultConfig",
    "FaultConfigError",
    "FaultPlan",
    "Reply",
    "Request",
    "Service",
    "ServiceError",
    "ServiceServer",
    "Stream",
    "StreamFault",
    "markers_in",
    "parse_faults",
    "serve_call",
    "serve_forever",
]
