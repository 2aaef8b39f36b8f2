"""Agno AgentOS eval runs: the httpx client and the error classification."""

from worker.backends.agno.classification import classify, classify_response
from worker.backends.agno.client import PAGE_SIZE, AgnoClient, RunRef

__all__ = ["PAGE_SIZE", "AgnoClient", "RunRef", "classify", "classify_response"]
