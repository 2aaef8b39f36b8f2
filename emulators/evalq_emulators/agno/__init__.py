"""Emulator of the Agno AgentOS eval-run API (``/eval-runs``), for evalq's httpx client.

    service = AgnoService(security_key="k", agents=("demo-agent",), time_scale=50)
    with ServiceServer(service) as emu:
        httpx.post(emu.url + "/eval-runs", json={...}, headers={"Authorization": "Bearer k"})

``POST /eval-runs`` is synchronous, as in AgentOS: it answers after the eval's emulated
duration and stores the run then. ``evalq emulator --service agno`` serves it.
"""

from .service import DEFAULT_DB_ID, DEFAULT_TABLE, AgnoService, AgnoTiming

__all__ = ["DEFAULT_DB_ID", "DEFAULT_TABLE", "AgnoService", "AgnoTiming"]
