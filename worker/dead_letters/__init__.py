"""Dead letters: what could not succeed, kept for ops to inspect and replay.

``store`` keeps them in Redis, ``guard`` turns messages that cannot become a task into
dead letters, ``replay`` sends them through intake again (and settles each replay), and
``messages`` reads raw Celery messages defensively.
"""
