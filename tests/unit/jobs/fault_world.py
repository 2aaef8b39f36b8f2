"""The fault matrix's world: the three emulators in-process behind evalq's real clients,
one fakeredis, and a driver that moves a job as beat and the workers would (the tick
claims its timer, each task it sends runs, the janitor sweeps when nothing else would
move it), on a manual clock that jumps to the job's next timer.

Built once per test process (``World.reset`` between cases: no boto3 client is built
twice); ``tests/unit/jobs/test_fault_matrix.py`` runs the cases of ``fault_matrix``.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, cast

import fakeredis
from aymara_ai import AymaraAI

from api_contracts.examples import (
    sample_agno_request,
    sample_aymara_request,
    sample_request,
    sample_scenario_request,
)
from evalq_emulators.agentcore import EmulatorConfig, EmulatorServer
from evalq_emulators.common import ServiceServer
from evalq_emulators.launch import build_service
from tests.unit.conftest import Clock, RecordingPublisher
from tests.unit.jobs.fault_matrix import Call, Fault
from worker.backends.agentcore import make_control_client
from worker.dead_letters import replay
from worker.dead_letters.store import DeadLetterStore
from worker.janitor import sweep as janitor
from worker.jobs import moves
from worker.jobs.admission import expire_backlog
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.invocations import invoke
from worker.jobs.polling import PollPolicy
from worker.jobs.record import Job
from worker.jobs.rollout_intake import accept_rollout
from worker.jobs.services import Services
from worker.jobs.start import after_busy_run, synchronous_step
from worker.jobs.states import JobState
from worker.jobs.store import JobStore
from worker.jobs.watch import watch
from worker.keys import Keys
from worker.producers.policy import Producers
from worker.runtime.app import synchronous_lease
from worker.runtime.intake import take
from worker.runtime.root import build_targets
from worker.settings import Settings

T0 = 1_800_000_000.0
AYMARA_KEY = "matrix-aymara-key-0123"
AGNO_KEY = "matrix-agno-key-4567"
#: Every client's read timeout (s): a call the emulator holds longer times out.
READ_TIMEOUT = 0.15
#: The emulator's delay of a call that times out (ms); a synchronous Agno run's own
#: timeout is at least 1 s (``start.synchronous_timeout``).
LATENCY_MS = {"RunEval": 1050}
DEFAULT_LATENCY_MS = 200
#: A remote job that runs until it is stopped (emulated seconds, 10,000 per second of the
#: world's clock).
FOREVER = 1_000_000_000
#: Deadline of the requests whose calls are made at their deadline (s).
SHORT_DEADLINE = 120
#: Deadline of every other request (s): past the retry budget's time (600 s), so a
#: retried call gives up first, and short enough that back-pressure ends in a few dozen
#: admissions (one per ``quota_backoff``, 30 s).
DEADLINE = 1800
#: Retention of every request (s): the driver follows each job to its remote delete.
RETENTION = 60
JUDGE: dict[str, Any] = {
    "llmAsAJudge": {
        "instructions": "Rate how well the answer uses {context}.",
        "ratingScale": {"numerical": [{"definition": "Good", "value": 1.0, "label": "good"}]},
        "modelConfig": {"bedrockEvaluatorModelConfig": {"modelId": "judge-model-v1"}},
    }
}


def matrix_settings(agentcore: str, aymara: str, agno: str) -> Settings:
    rates = ("start", "stop", "delete", "get", "list", "invoke", "aymara", "agno")
    timeouts = ("aws", "harness", "aymara", "agno")
    return Settings.model_validate(
        {
            "agentcore_endpoint_url": agentcore,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "aymara_base_url": aymara,
            "aymara_api_key": AYMARA_KEY,
            "agno_base_url": agno,
            "agno_security_key": AGNO_KEY,
            **{f"{name}_rate": 1000.0 for name in rates},
            **{f"{name}_read_timeout": READ_TIMEOUT for name in timeouts},
            "max_active_jobs": 2,
            "retry_max_attempts": 3,
            "retry_max_seconds": 600.0,
            "quota_backoff": 30.0,
            # A synchronous run's call waits at most this (s, real): a run that times
            # out costs a second, and its lookup comes 6 s later on the job's clock.
            "synchronous_run_timeout": 1.0,
            "scenario_item_retries": 2,
            "rollout_quota_max_waits": 3,
            "watch_by_list": False,
        }
    )


@dataclass
class Trace:
    """What driving a job did: the result of each task, in order."""

    results: list[str] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.results)


class NotEnded(AssertionError):
    """The job did not end within its budget of steps (or was left with nothing to move
    it): a path that does not end."""


@dataclass
class Tasks:
    """The tasks evalq sent, waiting for a worker: evals.advance (countdown -1: evals.run,
    on the synchronous queue), evals.watch, evals.invoke."""

    advance: list[tuple[str, float | None, float]] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)
    invoke: list[tuple[str, int, int, float]] = field(default_factory=list)


@dataclass
class World:
    services: Services
    tasks: Tasks
    clock: Clock
    agentcore: EmulatorServer
    aymara: ServiceServer
    agno: ServiceServer
    control_plane: Any
    aymara_sdk: AymaraAI

    # -- the emulators' control plane ------------------------------------------------
    def url(self, backend: str) -> str:
        if backend == "agentcore":
            return self.agentcore.url
        return self.aymara.url if backend == "aymara" else self.agno.url

    def stats(self, backend: str) -> dict[str, Any]:
        """``GET /_emulator/stats``, as ops and the integration tests read it."""
        with urllib.request.urlopen(f"{self.url(backend)}/_emulator/stats") as response:
            return dict(json.loads(response.read()))

    def _emulator(self, backend: str) -> Any:
        """The emulator's service, in this process (its control plane without HTTP, for
        what each case does many times)."""
        return self.agentcore.state if backend == "agentcore" else getattr(self, backend).service

    def faults(self, backend: str, doc: dict[str, Any]) -> None:
        """What ``POST /_emulator/faults`` does with ``doc``."""
        if backend == "agentcore":
            self.agentcore.state.set_faults(doc)
        else:
            self._emulator(backend).set_faults(doc)

    def counts(self, backend: str) -> dict[str, Any]:
        """The emulator's stats, read in process (for the loops that wait on them)."""
        return dict(self._emulator(backend).stats())

    def quiesce(self, backend: str) -> None:
        """Wait until the service served every call it holds (a call evalq gave up on
        acts later), as a step's settle margin lets it in production."""
        assert self._emulator(backend).wait_idle(10), "the emulator kept a call for 10 s"

    def reset(self) -> None:
        svc = self.services
        svc.redis.flushall()
        for backend in ("agentcore", "aymara", "agno"):
            self._emulator(backend).reset()
        self.clock.now = T0
        svc.rng.seed(1)
        assert isinstance(svc.publisher, RecordingPublisher)
        svc.publisher.published.clear()
        self.tasks.advance.clear()
        self.tasks.watch.clear()
        self.tasks.invoke.clear()

    def set_watch(self, on: bool) -> None:
        svc = self.services
        if svc.settings.watch_by_list != on:
            svc.settings = svc.settings.model_copy(update={"watch_by_list": on})

    # -- requests ---------------------------------------------------------------------
    def request(self, call: Call, request_id: str = "r1") -> dict[str, Any]:
        """The request whose job makes ``call`` (its deadline and duration put the call
        where the case needs it)."""
        short = call.at_deadline or call.state == "STOPPING"
        deadline = SHORT_DEADLINE if short else DEADLINE
        duration = FOREVER if short else 5
        common: dict[str, Any] = {"deadline_seconds": deadline, "retention_seconds": RETENTION}
        if call.backend == "aymara":
            eval_uuid, prompts = self._aymara_eval()
            request = sample_aymara_request(
                request_id, eval_uuid=eval_uuid, prompt_uuids=prompts, **common
            )
            request["evaluation"]["ai_description"] = f"emulator:duration={duration}"
            return request
        if call.backend == "agno":
            return sample_agno_request(request_id, **common)
        if call.state == "PREPARING":
            prompts = ("Where is order 7?",)
            return sample_scenario_request(
                request_id, prompts=prompts, ingestion_delay_seconds=0, **common
            )
        request = sample_request(request_id, **common)
        request["evaluation"]["tags"] = {
            "emulator:sessions": "2",
            "emulator:duration": str(duration),
        }
        return request

    def _aymara_eval(self) -> tuple[str, tuple[str, ...]]:
        """A new eval of one prompt: its uuid and its prompts' uuids."""
        sdk = self.aymara_sdk
        made = sdk.evals.create(ai_description="bot", eval_type="safety", name="e", num_prompts=1)
        prompts = sdk.evals.list_prompts(made.eval_uuid or "", limit=10).items
        return made.eval_uuid or "", tuple(p.prompt_uuid for p in prompts)

    def rollout(self, request_id: str = "roll-1") -> dict[str, Any]:
        made = self.control_plane.create_evaluator(
            evaluatorName="judge", evaluatorConfig=JUDGE, level="SESSION"
        )
        evaluator_id = str(made["evaluatorId"])
        self.clock.advance(1)  # created (1 emulated second)
        assert self.control_plane.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE"
        return {
            "schema_version": 1,
            "request_id": request_id,
            "producer": "quality",
            "evaluator_id": evaluator_id,
            "update": {"description": "v2"},
        }

    def submit(self, request: dict[str, Any]) -> str:
        """Send the request (or rollout) through intake, as a producer does; its job id."""
        intake = accept_rollout if "evaluator_id" in request else accept
        result = intake(self.services, request)
        assert result.request_id is not None, result
        return result.request_id

    def replay(self, request_id: str) -> str:
        """Replay the job's dead letter as ``evalq dlq replay`` does (evals.submit or
        evals.evaluator.update with its mark); the intake's outcome."""
        svc = self.services
        (letter,) = svc.dead_letters.find()
        svc.dead_letters.mark_replaying(letter.dead_letter_id, "1-tok")
        request, problem = replay.request_to_replay(letter, svc.store)
        assert problem == "", problem
        assert request is not None
        mark = replay.ReplayMark(letter.dead_letter_id, "1-tok")
        intake = accept_rollout if "evaluator_id" in request else accept
        return take(svc, intake, request, mark=mark).outcome

    # -- setting a case up ---------------------------------------------------------------
    def setup(self, call: Call) -> str:
        """Submit the request of ``call`` and bring its job to where the call is made
        (nothing faulted yet); its job id."""
        self.set_watch(call.watch)
        if call.state in ("DRAINING", "UPDATING"):
            request_id = self.submit(self.rollout())
        else:
            request_id = self.submit(self.request(call))
        if call.settle:  # a create whose answer is lost first
            create = {"aymara": "CreateEvalRun", "agno": "RunEval"}[call.backend]
            self.faults(call.backend, {"lost_response": 1.0, "operations": [create]})
            lost = lambda: self.counts(call.backend)["faults"]["lost_response"] > 0  # noqa: E731
            self.drive(request_id, 10, until=lost)
            self.faults(call.backend, {})
        if call.state == "STOPPING":
            self.drive(request_id, 60, until=self._in(request_id, "RUNNING"))
            self.clock.now = max(self.clock.now, self.job(request_id).deadline_at + 1)
        self.drive(request_id, 60, until=self._in(request_id, call.state))
        if call.at_deadline:
            self.clock.now = max(self.clock.now, self.job(request_id).deadline_at + 1)
        return request_id

    def _in(self, request_id: str, state: str) -> Callable[[], bool]:
        return lambda: self.job(request_id).state.value == state

    # -- driving ----------------------------------------------------------------------
    def job(self, request_id: str) -> Job:
        job = self.services.store.get(request_id)
        assert job is not None, f"{request_id} has no record"
        return job

    def ended(self, request_id: str) -> bool:
        """Dead, deleted, or published with nothing left to do (no remote job to delete,
        no timer, no bulk delete pending)."""
        svc, job = self.services, self.job(request_id)
        if job.state in (JobState.DEAD, JobState.DELETED):
            return True
        if job.state != JobState.PUBLISHED or svc.store.due_score(request_id) is not None:
            return False
        return svc.redis.zscore(svc.keys.target(job.target).deletions, request_id) is None

    def drive(
        self,
        request_id: str,
        budget: int,
        *,
        until: Callable[[], bool] | None = None,
        settle: str | None = None,
        trace: Trace | None = None,
    ) -> Trace:
        """Move the job as beat and the workers would until it ends (or ``until``), at
        most ``budget`` tasks; ``settle``: the backend whose calls may outlive evalq's
        timeout (waited for after each task)."""
        trace = trace or Trace()
        done = until or (lambda: self.ended(request_id))
        while not done():
            if trace.steps >= budget:
                job = self.job(request_id)
                raise NotEnded(
                    f"{request_id} still {job.state} after {trace.steps} tasks: "
                    f"{trace.results[-12:]}"
                )
            trace.results.append(self._run_task() or self._next_timer(request_id))
            if settle:
                self.quiesce(settle)
        return trace

    def _next_timer(self, request_id: str) -> str:
        """Jump to the job's timer and tick; with no timer, the janitor's sweep (the only
        thing left that could move it)."""
        svc = self.services
        due = svc.store.due_score(request_id)
        job = self.job(request_id)
        if due is None and job.state == JobState.QUEUED:
            # In the backlog: the next tick after the target's admission pause admits it
            # (or expires it at its deadline).
            paused = cast(
                str | None, svc.redis.get(svc.keys.target(job.target).admission_paused_until)
            )
            self.clock.now = max(self.clock.now + svc.settings.tick_interval, float(paused or 0.0))
            self._tick(job.target)
            return "tick"
        if due is None:
            waiting = cast(
                float | None, svc.redis.zscore(svc.keys.target(job.target).deletions, request_id)
            )
            if waiting is None:
                raise NotEnded(f"{request_id} in {job.state} has no timer and nothing to wait for")
            # Beat's next sweep: at most janitor_interval later.
            self.clock.now = max(self.clock.now + svc.settings.janitor_interval, waiting)
            janitor.sweep(svc)
            return "janitor"
        self.clock.now = max(self.clock.now, due)
        self._tick(job.target)
        return "tick"

    def _tick(self, target: str) -> None:
        """``admission.tick`` for the one target a case's job is in (the others are
        empty): hand out due timers, expire and admit its backlog, send its watch."""
        svc = self.services
        now = svc.clock()
        timers = svc.store.claim_due(
            now=now, horizon=svc.settings.tick_interval, lease=svc.settings.lease_seconds, limit=10
        )
        for timer in timers:
            svc.dispatch(timer.request_id, timer.lease_token, max(0.0, timer.due_at - now))
        expire_backlog(svc, target)
        moves.admit(svc, target)
        svc.dispatch_watch(target)

    def _run_task(self) -> str | None:
        """Run the first task the last steps sent (evals.watch, evals.invoke,
        evals.advance, evals.run), as an idle worker would; None if there is none."""
        svc = self.services
        dispatched, watched, invoked = self.tasks.advance, self.tasks.watch, self.tasks.invoke
        while watched:  # not a step of the job's own: run with the tick
            watch(svc, watched.pop(0))
        if invoked:
            request_id, index, attempt, countdown = invoked.pop(0)
            self.clock.now += countdown
            return "invoke:" + invoke(svc, request_id, index, attempt)
        if not dispatched:
            return None
        request_id, token, countdown = dispatched.pop(0)
        if countdown < 0:  # evals.run, on the synchronous queue
            lease = synchronous_lease(svc.settings)
            result = advance(svc, request_id, step_of=synchronous_step, lease=lease)
            if result == "busy":
                after_busy_run(svc, request_id)
            return "run:" + result.value
        self.clock.now += countdown
        return str(advance(svc, request_id, token).value)


@dataclass
class Observed:
    """How one case went: the job's way to its end, then its replay's (if it died)."""

    first: Trace
    #: The outcome statuses published once the fault was on (both drives), in order.
    outcomes: list[str] = field(default_factory=list)
    #: The dead letter's reason and the state the job died in (None: no dead letter).
    dead_letter: tuple[str, str] | None = None
    #: What intake said of the replay, the replayed job's way to its end, and the dead
    #: letters left (a replay that died again).
    replayed: str | None = None
    second: Trace | None = None
    dead_again: int = 0
    final_state: str = ""
    #: Remote jobs the service created for the request, and every call it served.
    remote_jobs: int = 0
    calls: int = 0


def run_case(world: World, call: Call, fault: Fault, budget: int) -> Observed:
    """Bring a job to where ``call`` is made, fault every such call, drive the job to its
    end; a dead letter is then replayed with the fault gone and driven to its end."""
    world.reset()
    svc = world.services
    backend = call.backend
    settle = backend if fault.once else None
    request_id = world.setup(call)
    publisher = svc.publisher
    assert isinstance(publisher, RecordingPublisher)
    published = len(publisher.published)
    doc = {**fault.doc, "operations": [call.operation]}
    if "latency_rate" in doc:
        doc["latency_ms"] = LATENCY_MS.get(call.operation, DEFAULT_LATENCY_MS)
    world.faults(backend, doc)
    observed = Observed(Trace())
    if fault.once:
        hit = lambda: world.counts(backend)["faults"]["latency"] > 0 or world.ended(request_id)  # noqa: E731
        world.drive(request_id, budget, until=hit, settle=settle, trace=observed.first)
        world.faults(backend, {})
    world.drive(request_id, budget, settle=settle, trace=observed.first)
    letters = svc.dead_letters.find()
    if letters:
        (letter,) = letters
        observed.dead_letter = (letter.reason.value, letter.job_state or "")
        world.faults(backend, {})
        observed.replayed = world.replay(request_id)
        observed.second = world.drive(request_id, budget)
        observed.dead_again = len(svc.dead_letters.find())
    world.quiesce(backend)
    stats = world.stats(backend)
    observed.outcomes = [o.status.value for o, _ in publisher.published[published:]]
    observed.final_state = world.job(request_id).state.value
    observed.remote_jobs = stats["jobs"]["total"]
    observed.calls = sum(stats["calls"].values())
    return observed


def _no_wait(seconds: float) -> None:
    """What the emulators wait out takes no time on the world's clock: a call that
    outlives evalq's timeout (a latency fault, in real time) must not move the clock under
    the driver."""


def open_world() -> Iterator[World]:
    with ExitStack() as stack:
        # The emulators on the world's clock, at 10,000 emulated seconds per second of it.
        clock = Clock(T0)
        on_clock: dict[str, Any] = {"clock": clock, "sleep": _no_wait}
        config = EmulatorConfig(time_scale=10_000.0, mutate_tps=10_000.0, read_tps=10_000.0,
                                seed=7)  # fmt: skip
        agentcore = stack.enter_context(EmulatorServer(config, **on_clock))
        aymara = stack.enter_context(
            ServiceServer(
                build_service("aymara", time_scale=10_000.0, api_key=AYMARA_KEY, **on_clock)
            )
        )
        agno = stack.enter_context(
            ServiceServer(
                build_service("agno", time_scale=10_000.0, security_key=AGNO_KEY, **on_clock)
            )
        )
        settings = matrix_settings(agentcore.url, aymara.url, agno.url)
        redis = fakeredis.FakeRedis(decode_responses=True)
        keys = Keys("evalq")
        tasks = Tasks()
        services = _services(settings, redis, keys, clock, tasks)
        sdk = AymaraAI(api_key=AYMARA_KEY, base_url=aymara.url, max_retries=0)
        stack.callback(sdk.close)
        control_plane = make_control_client(settings)
        yield World(services, tasks, clock, agentcore, aymara, agno, control_plane, sdk)


def _services(settings: Settings, redis: Any, keys: Keys, clock: Clock, tasks: Tasks) -> Services:
    return Services(
        settings=settings,
        keys=keys,
        redis=redis,
        store=JobStore(redis, keys),
        dead_letters=DeadLetterStore(redis, keys, max_entries=100, max_age=10**9),
        targets=build_targets(settings, redis, keys),
        producers=Producers(settings),
        publisher=RecordingPublisher(),
        dispatch=lambda rid, token, countdown: tasks.advance.append((rid, token, countdown)),
        dispatch_watch=tasks.watch.append,
        dispatch_sync=lambda rid: tasks.advance.append((rid, None, -1.0)),
        dispatch_invoke=lambda rid, i, a, countdown: tasks.invoke.append((rid, i, a, countdown)),
        poll_policy=PollPolicy.from_settings(settings),
        clock=clock,
        rng=random.Random(1),
    )
