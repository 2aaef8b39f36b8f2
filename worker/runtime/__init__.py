"""The Celery runtime: the app (``app``), its tasks (``tasks``, ``dlq_tasks``), the
reliable Redis transport (``broker``), the guarded consumer (``consumer``), outcome
publishing (``publishing``) and the composition root that builds everything (``root``).
"""
