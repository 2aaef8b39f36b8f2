"""The emulated AgentCore service: jobs, idempotency, quotas and counters behind one lock
(the counters, faults and control plane every emulator shares come from
``common.Service``; its HTTP side is ``server.AgentCoreService``)."""

from __future__ import annotations

import base64
import binascii
import json
import random
import string
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from ..common import Service
from .config import OPERATIONS, EmulatorConfig
from .errors import conflict, not_found, quota_exceeded, throttled, validation_error
from .evaluator_registry import EvaluatorRegistry
from .harness import Harnesses, Invocation, Lookup, StreamPlan, check_harness
from .jobs import (
    ACCOUNT_ID,
    ACTIVE_STATUSES,
    REPORTED_STATUSES,
    RUNNING_STATUSES,
    TERMINAL_STATUSES,
    Job,
    build_plan,
    make_arn,
)
from .quotas import RateLimits
from .sources import (
    background_sessions,
    check_output_config,
    named_mode,
    named_sessions,
    output_config,
    time_window,
)
from .sts import IssuedCredentials
from .wire import error_names

_ID_ALPHABET = string.ascii_letters + string.digits
DEFAULT_MAX_RESULTS = 100


class EmulatorState(Service):
    """All mutable emulator state. Every public method takes the lock exactly once."""

    operations = OPERATIONS
    #: A ``ThrottlingException`` injected through ``errors`` is a throttle too.
    throttle_errors = frozenset({"throttle", "ThrottlingException"})
    #: A call signed with credentials the emulator did not issue is refused before it is
    #: counted, as AWS refuses it before the service sees it.
    authenticate_first = True

    def __init__(
        self,
        config: EmulatorConfig,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._monotonic = monotonic
        # Credentials AWS issued stay valid through anything a test resets: a worker that
        # holds them keeps working (``reset`` only starts their counts again).
        self.credentials = IssuedCredentials(config.sts_credential_seconds, clock)
        super().__init__(
            time_scale=config.time_scale,
            faults=config.faults,
            seed=config.seed,
            clock=clock,
            sleep=sleep,
        )
        self.forget_jobs()

    @property
    def error_names(self) -> Collection[str]:
        """Fault ``errors`` may name any error shape of the served service models."""
        return error_names()

    def forget_jobs(self) -> None:
        cfg = self.config
        # Separate RNGs so the fault sequence of a seed does not depend on how many ids
        # were generated (and vice versa).
        self._id_rng = random.Random(cfg.seed)
        self._rates = RateLimits(cfg.mutate_tps, cfg.read_tps, self._monotonic, cfg.harness_tps)
        self._jobs: list[Job] = []  # every job ever created, creation order
        self._existing: dict[str, Job] = {}  # not deleted, by id
        self._by_token: dict[tuple[str, str], Job] = {}  # by (region, clientToken)
        self._ids: set[str] = set()  # ids stay reserved after deletion
        self.credentials.reset_counts()
        self._harnesses = Harnesses()
        self._registries: dict[str, EvaluatorRegistry] = {}
        self._registry(cfg.region)  # the configured region's builtins exist from the start

    def _registry(self, region: str) -> EvaluatorRegistry:
        """The evaluators and online configs of ``region`` (each region has its own)."""
        if region not in self._registries:
            self._registries[region] = EvaluatorRegistry(
                self.config,
                self._new_suffix,
                lambda: self.roll_update_failure("UpdateEvaluator"),
                region,
            )
        return self._registries[region]

    # --- control plane -------------------------------------------------------

    def job_counts(self) -> dict[str, int]:
        now = self.clock()
        by_status = Counter({s: 0 for s in REPORTED_STATUSES})
        by_status.update(job.status(now) for job in self._jobs)
        return dict(by_status)

    def job_views(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [job.control_view(now) for job in self._jobs]

    def extra_stats(self) -> dict[str, Any]:
        return {
            "harness": self._harnesses.stats(),
            "evaluators": self._evaluator_stats(self.clock()),
            "sts": self.credentials.stats(),
        }

    def _evaluator_stats(self, now: float) -> dict[str, Any]:
        registries = list(self._registries.values())
        custom = [e for r in registries for e in r.evaluators.values() if not e.builtin]
        by_status = Counter(e.status(now) for e in custom)
        return {
            "custom": len(custom),
            "by_status": dict(by_status),
            "update_calls": sum(len(e.updates) for e in custom),
            "online_configs": sum(len(r.configs) for r in registries),
        }

    def evaluators(self) -> list[dict[str, Any]]:
        """Every evaluator with the time of each update call and status change."""
        with self.lock:
            now = self.clock()
            return [v for r in self._registries.values() for v in r.control_views(now)]

    def sessions(self) -> list[dict[str, Any]]:
        """Every harness session with its invocations."""
        with self.lock:
            return self._harnesses.views()

    # --- request admission -----------------------------------------------------

    def check_rate(self, operation: str) -> None:
        with self.lock:
            if not self._rates.allow(operation):
                self.throttled += 1
                raise throttled(operation)

    # --- operations --------------------------------------------------------------

    def start(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        token: str | None = params.get("clientToken")
        request = {k: v for k, v in params.items() if k != "clientToken"}
        # Bad emulator tags and refused output configs are refused before the lock.
        build_plan(request, self.config)
        named_mode(request, self.config)
        check_output_config(request)
        with self.lock:
            now = self.clock()
            if token is not None and (region, token) in self._by_token:
                # "If this token matches a previous request, the service ignores the
                # request, but does not return an error": the earlier answer, whatever
                # this request's parameters, and no new job.
                return self._by_token[(region, token)].start_output
            active = self._check_room(request["batchEvaluationName"], region, now)
            job = self._new_job(request, token, region, now)
            self._jobs.append(job)
            self._existing[job.batch_evaluation_id] = job
            if token is not None:
                self._by_token[(region, token)] = job
            self.total_jobs += 1
            # Active jobs only ever appear here, so this is the true high-water mark.
            self.max_active = max(self.max_active, active + 1)
            return job.start_output

    def _check_room(self, name: str, region: str, now: float) -> int:
        """The region's active jobs, if a job named ``name`` may start there now."""
        existing = self._in_region(region)
        if any(job.name == name for job in existing):
            raise conflict(f"A batch evaluation named {name} already exists")
        if len(existing) >= self.config.max_jobs:
            raise quota_exceeded(
                f"Maximum number of batch evaluations ({self.config.max_jobs}) reached"
            )
        active = sum(1 for j in existing if j.status(now) in ACTIVE_STATUSES)
        if active >= self.config.max_active:
            raise quota_exceeded(
                f"Maximum number of active batch evaluations ({self.config.max_active}) reached"
            )
        return active

    def _new_job(self, request: dict[str, Any], token: str | None, region: str, now: float) -> Job:
        name: str = request["batchEvaluationName"]
        named, found = self._sessions(request, region, now)
        sessions = background_sessions(request, self.config, now) if found is None else len(found)
        job_id = self._new_id(name)
        arn = make_arn(region, job_id)
        start_output = {
            "batchEvaluationId": job_id,
            "batchEvaluationArn": arn,
            "batchEvaluationName": name,
            "evaluators": request.get("evaluators"),
            "insights": request.get("insights"),
            "status": "PENDING",
            "createdAt": now,
            "outputConfig": output_config(request, job_id),
            "tags": request.get("tags"),
            "kmsKeyArn": request.get("kmsKeyArn"),
            "description": request.get("description"),
        }
        return Job(
            seq=len(self._jobs),
            batch_evaluation_id=job_id,
            arn=arn,
            name=name,
            client_token=token,
            request=request,
            created_at=now,
            plan=build_plan(request, self.config, sessions),
            start_output=start_output,
            sessions_named=named,
            sessions_found=found,
            prompts=self._harnesses.prompts(found or []),
            region=region,
        )

    def _sessions(
        self, request: dict[str, Any], region: str, now: float
    ) -> tuple[list[str] | None, list[str] | None]:
        """The session ids a request names, and those of them its job finds (None, None:
        it names none, and evaluates the log groups' traffic)."""
        named = named_sessions(request)
        if named is None:
            return None, None
        look = Lookup(
            now=now,
            region=region,
            ingestion_real=self.config.real_seconds(self.config.ingestion_seconds),
            window=time_window(request),
            assume_traces=named_mode(request, self.config) == "traces",
        )
        return named, self._harnesses.found(named, look)

    def _new_suffix(self) -> str:
        return "".join(self._id_rng.choice(_ID_ALPHABET) for _ in range(10))

    def _new_id(self, name: str) -> str:
        while True:
            job_id = f"{name}-{self._new_suffix()}"
            if job_id not in self._ids:
                self._ids.add(job_id)
                return job_id

    def get(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.lock:
            job = self._find(params["batchEvaluationId"], region)
            return job.details(self.clock())

    def stop(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            job = self._find(params["batchEvaluationId"], region)
            status = job.status(now)
            if status not in RUNNING_STATUSES:
                raise conflict(f"Batch evaluation {job.batch_evaluation_id} is {status}")
            job.stop_requested_at = now
            return {
                "batchEvaluationId": job.batch_evaluation_id,
                "batchEvaluationArn": job.arn,
                "status": job.status(now),
                "description": job.request.get("description"),
            }

    def delete(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            job = self._find(params["batchEvaluationId"], region)
            status = job.status(now)
            if status not in TERMINAL_STATUSES:
                raise conflict(
                    f"Batch evaluation {job.batch_evaluation_id} is {status}; "
                    "only finished evaluations can be deleted"
                )
            # Deletion is instant here; the answer is the job's final status ("Final
            # status of the deleted job", DeleteBatchEvaluation's document).
            job.deleted_at = now
            del self._existing[job.batch_evaluation_id]
            return {
                "batchEvaluationId": job.batch_evaluation_id,
                "batchEvaluationArn": job.arn,
                "status": status,
            }

    def list(self, params: dict[str, Any], region: str) -> dict[str, Any]:
        max_results = params.get("maxResults", DEFAULT_MAX_RESULTS)
        before = _decode_token(params["nextToken"]) if params.get("nextToken") else None
        with self.lock:
            now = self.clock()
            newest_first = sorted(self._in_region(region), key=lambda j: j.seq, reverse=True)
            if before is not None:
                newest_first = [j for j in newest_first if j.seq < before]
            page = newest_first[:max_results]
            out: dict[str, Any] = {"batchEvaluations": [j.summary(now) for j in page]}
            if len(newest_first) > max_results:
                out["nextToken"] = _encode_token(page[-1].seq)
            return out

    # --- InvokeHarness -------------------------------------------------------------

    def invoke_harness(self, params: dict[str, Any], region: str) -> StreamPlan:
        """Start one invocation: the events to stream, and how the stream ends."""
        with self.lock:
            check_harness(params["harnessArn"], region, ACCOUNT_ID)
            fault = self.roll_stream_fault("InvokeHarness")
            return self._harnesses.begin(
                params,
                self.clock(),
                self.config.real_seconds(self.config.harness_seconds),
                self.config.time_scale,
                fault,
            )

    def finish_invocation(self, invocation: Invocation, outcome: str) -> None:
        with self.lock:
            self._harnesses.finish(invocation, outcome, self.clock())

    def _find(self, batch_evaluation_id: str, region: str) -> Job:
        job = self._existing.get(batch_evaluation_id)
        if job is None or job.region != region:
            raise not_found(batch_evaluation_id)
        return job

    def _in_region(self, region: str) -> tuple[Job, ...]:
        # A tuple: ``list`` is a method of this class.
        return tuple(job for job in self._existing.values() if job.region == region)

    def dispatch(self, operation: str, params: dict[str, Any], region: str) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
            "StartBatchEvaluation": self.start,
            "GetBatchEvaluation": self.get,
            "StopBatchEvaluation": self.stop,
            "DeleteBatchEvaluation": self.delete,
            "ListBatchEvaluations": self.list,
        }
        if operation in handlers:
            return handlers[operation](params, region)
        with self.lock:
            return self._control(operation, self._registry(region))(params, self.clock())

    @staticmethod
    def _control(
        operation: str, registry: EvaluatorRegistry
    ) -> Callable[[dict[str, Any], float], dict[str, Any]]:
        control: dict[str, Callable[[dict[str, Any], float], dict[str, Any]]] = {
            "CreateEvaluator": registry.create_evaluator,
            "GetEvaluator": registry.get_evaluator,
            "UpdateEvaluator": registry.update_evaluator,
            "DeleteEvaluator": registry.delete_evaluator,
            "ListEvaluators": registry.list_evaluators,
            "CreateOnlineEvaluationConfig": registry.create_config,
            "GetOnlineEvaluationConfig": registry.get_config,
            "ListOnlineEvaluationConfigs": registry.list_configs,
            "UpdateOnlineEvaluationConfig": registry.update_config,
            "DeleteOnlineEvaluationConfig": registry.delete_config,
        }
        return control[operation]


# Pages are keyed by creation sequence, not offset, so jobs created or deleted
# between two calls neither repeat nor skip entries.
def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before": seq}).encode()).decode()


def _decode_token(token: str) -> int:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        before = doc["before"]
        if isinstance(before, bool) or not isinstance(before, int):
            raise TypeError(before)
        return before
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        field = [("nextToken", "Invalid pagination token")]
        raise validation_error("Invalid nextToken", field) from exc
