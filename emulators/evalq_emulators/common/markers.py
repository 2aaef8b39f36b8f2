"""``emulator:*`` markers: how a test steers one run through text the service stores.

The AgentCore emulator reads ``emulator:*`` tags; Aymara and Agno runs have no tags, so
the markers ride in free text the service keeps (an Aymara run's ``name`` or
``ai_description``, an Agno run's ``name`` or ``input``), as ``emulator:KEY=VALUE``:

* ``emulator:duration=S``: the run takes ``S`` emulated seconds.
* ``emulator:outcome=failed`` (Aymara: the run ends ``failed``) or
  ``emulator:outcome=error`` (Agno: the eval fails with a 500 after its duration, and
  nothing is stored).
* ``emulator:delete=conflict`` (Aymara): deleting the run answers 409
  ``resource.conflict`` while it is scored (``created`` or ``processing``).
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"emulator:([a-z_]+)=([^\s,;]+)")


def markers_in(*texts: str | None) -> dict[str, str]:
    """The ``emulator:KEY=VALUE`` markers in ``texts`` (the first of a key wins)."""
    found: dict[str, str] = {}
    for text in texts:
        for key, value in _MARKER.findall(text or ""):
            found.setdefault(key, value)
    return found


def duration_marker(markers: dict[str, str]) -> float | None:
    """The ``duration`` marker in emulated seconds, if it is a number."""
    try:
        return max(0.0, float(markers["duration"]))
    except (KeyError, ValueError):
        return None
