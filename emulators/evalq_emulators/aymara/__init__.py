"""Emulator of the Aymara eval API (``/v2/evals``, ``/v2/eval-runs``) for ``aymara-ai-sdk``.

    service = AymaraService(api_key="k", time_scale=50)
    with ServiceServer(service) as emu:
        client = AymaraAI(api_key="k", base_url=emu.url)

Runs score over emulated time; ``emulator:duration=S`` and ``emulator:outcome=failed`` in
a run's ``name`` or ``ai_description`` steer one run (``common.markers``), and a response
whose content holds ``emulator:fail`` is scored as failed. ``evalq emulator --service
aymara`` serves it.
"""

from .runs import FAIL_MARKER
from .service import AymaraService, AymaraTiming

__all__ = ["FAIL_MARKER", "AymaraService", "AymaraTiming"]
