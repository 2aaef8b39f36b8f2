"""The Celery runtime: the app (``app``), its tasks (``tasks``, ``dlq_tasks``; the intake
tasks' one wrapper and replay settling in ``intake``), the reliable Redis transport
(``broker``), the guarded consumer (``consumer``), outcome publishing (``publishing``,
``outcome_publisher``), the messages steps send (``dispatch``), Redis clients
(``redis_clients``, ``replicas``), the exporter (``exporter``) and the composition root
that builds everything (``root``).
"""
