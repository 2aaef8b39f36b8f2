"""The job domain: one job per request, moved along one state machine (``states``).

``intake`` registers requests, ``admission`` fills the account's slots and hands due
timers out, ``advance`` runs a job's next step (``steps``), ``polling`` times the polls,
``outcomes`` builds the outcome message, and ``store`` keeps it all in Redis through the
Lua scripts in ``scripts/``.
"""
