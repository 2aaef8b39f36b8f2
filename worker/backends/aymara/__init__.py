"""Aymara eval runs: the client over ``aymara-ai-sdk`` and the error classification."""

from worker.backends.aymara.classification import classify
from worker.backends.aymara.client import PAGE_SIZE, AymaraClient, as_json

__all__ = ["PAGE_SIZE", "AymaraClient", "as_json", "classify"]
