"""A job's calls to its remote service: its target's backend, at its target's shared
rates (a call that may not go now reschedules the job's timer; nothing sleeps)."""

from __future__ import annotations

from worker.backends.base import Backend, StartSpec
from worker.backends.ratelimit import Operation
from worker.backends.registry import Target
from worker.jobs.record import Job
from worker.jobs.services import Services
from worker.observability.metrics import RemoteCalls


def backend_of(svc: Services, job: Job) -> Backend:
    return svc.targets[job.target].backend


def start_spec(job: Job) -> StartSpec:
    """What the job's backend is told to start (or find) its remote run."""
    return StartSpec(job.request_id, job.request, job.remote_name, job.scenarios)


def remote_calls(svc: Services, target: Target) -> RemoteCalls:
    """Counts and times a target's calls that are not ``Backend`` operations (InvokeHarness,
    GetEvaluator, UpdateEvaluator) like the backend's own (``evalq_remote_calls_total``)."""
    return RemoteCalls(svc.redis, svc.keys, target.backend.name, target.name)


def rate_limited(svc: Services, job: Job, operation: Operation) -> bool:
    """Take one call of ``operation`` from the job's target; when it may not go now, the
    job's timer is set to when it may, and True is returned."""
    wait = svc.targets[job.target].rate_limits.acquire(operation)
    if wait > 0:
        svc.store.schedule(job.request_id, svc.clock() + wait)
    return wait > 0
