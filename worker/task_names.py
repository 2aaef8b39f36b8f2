"""Celery task names. ``evals.submit`` and ``evals.evaluator.update`` are public contract
v1 (producers send them by name); the others are evalq's own, sent by evalq and by ops'
automation."""

#: Intake: ``send_task(SUBMIT, kwargs={"request": {...}}, queue="evals.requests")``.
SUBMIT = "evals.submit"
#: Evaluator rollouts: ``send_task(EVALUATOR_UPDATE, kwargs={"request": {...}},
#: queue="evals.requests")`` (docs/evaluators.md).
EVALUATOR_UPDATE = "evals.evaluator.update"
#: Cancel a request: ``send_task(CANCEL, kwargs={"request": {...}}, queue="evals.requests")``.
CANCEL = "evals.cancel"
#: Take one job's next step.
ADVANCE = "evals.advance"
#: Run a synchronous service's create (Agno's whole eval), on the synchronous queue.
RUN = "evals.run"
#: One InvokeHarness call of one scenario item, on the synchronous queue.
INVOKE = "evals.invoke"
#: Hand due timers to workers and admit from the backlog (beat, every tick interval).
TICK = "evals.tick"
#: Watch one target's running jobs with a listing (sent by every tick).
WATCH = "evals.watch"
#: Submit the slots of evalq's own schedules that came due (beat, every schedules
#: interval, when ``EVALQ_SCHEDULES_FILE`` is set; docs/schedules.md).
SCHEDULES = "evals.schedules"
#: One janitor sweep (beat, every janitor interval).
JANITOR = "evals.janitor"
#: Replay or purge dead letters (``evalq dlq`` does the same from a shell).
DLQ_REPLAY = "evals.dlq.replay"
DLQ_PURGE = "evals.dlq.purge"
#: Does nothing: a health check, and the no-op baseline of the intake benchmark.
PING = "evals.ping"

#: What producers may send (on the requests queue; ``evals.ping`` does nothing). Everything
#: else is evalq's own and runs only from the queues producers cannot write
#: (docs/security.md).
PUBLIC = frozenset({SUBMIT, EVALUATOR_UPDATE, CANCEL, PING})
#: What evalq and ops send on the control queue: its own steps, the janitor, dead-letter
#: operations, and replays (a replay is an intake call that ops sent).
CONTROL = frozenset({SUBMIT, EVALUATOR_UPDATE, CANCEL, ADVANCE, TICK, WATCH, JANITOR,
                     SCHEDULES,
                     DLQ_REPLAY, DLQ_PURGE, PING})  # fmt: skip
#: The clockwork, on the timers queue: beat's tick and schedules, and the listings the
#: ticks send. (The control queue still runs them: beats and workers of the previous
#: version send them there during a rolling upgrade.)
TIMERS = frozenset({TICK, WATCH, SCHEDULES, PING})
#: Long remote calls, on the synchronous queue.
SYNCHRONOUS = frozenset({RUN, INVOKE})
