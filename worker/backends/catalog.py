"""Which module serves each backend, and the one place that builds a target's backend.

Client libraries cost a process megabytes (boto3 ~15 MB), so a backend's module is
imported when a target first needs it, or, for the worker, once before it forks its pool
(``import_backends``: the pages are then shared by every pool process).
"""

from __future__ import annotations

import importlib
from typing import Any

from api_contracts import Backend as BackendName
from worker.backends.base import Backend
from worker.settings import Settings
from worker.targets.config import TargetConfig, load_targets

#: The module of each backend, and its class there.
BACKEND_CLASSES = {
    BackendName.AGENTCORE: ("worker.backends.agentcore.batch", "AgentCoreBackend"),
    BackendName.AYMARA: ("worker.backends.aymara.runs", "AymaraBackend"),
    BackendName.AGNO: ("worker.backends.agno.runs", "AgnoBackend"),
}


#: What a backend parses once per process, done before the worker forks (shared pages).
PRELOADS = {BackendName.AGENTCORE: ("worker.backends.agentcore.client", "preload")}


def import_backends(settings: Settings) -> None:
    """Import the modules (and client libraries) of every configured target's backend,
    and parse what their clients will need (``PRELOADS``), without building a target's
    client."""
    for backend in {t.backend for t in load_targets(settings).targets}:
        importlib.import_module(BACKEND_CLASSES[backend][0])
        if backend in PRELOADS:
            module, name = PRELOADS[backend]
            getattr(importlib.import_module(module), name)()


def build_backend(settings: Settings, target: TargetConfig) -> Backend:
    """The backend of ``target``: its service's client, its name prefix, its timeouts."""
    module, name = BACKEND_CLASSES[target.backend]
    backend_class: Any = getattr(importlib.import_module(module), name)
    built: Backend = backend_class.for_target(settings, target)
    return built
