"""What the Aymara and Agno emulators share: a JSON-over-HTTP server with the same
``/_emulator/*`` control plane as the AgentCore emulator, its fault configuration
(``FaultConfig``) and counters, and the ``emulator:*`` markers that steer a run."""

from .faults import Fault, FaultPlan, parse_faults
from .markers import markers_in
from .messages import Reply, Request, ServiceError
from .server import JsonApiServer, serve_forever
from .service import JsonService

__all__ = [
    "Fault",
    "FaultPlan",
    "JsonApiServer",
    "JsonService",
    "Reply",
    "Request",
    "ServiceError",
    "markers_in",
    "parse_faults",
    "serve_forever",
]
