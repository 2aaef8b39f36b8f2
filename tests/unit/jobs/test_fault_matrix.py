"""The fault matrix, proved: every case of ``fault_matrix.CASES`` (backend, remote call,
the state it is made from, an error its service documents) is run against the
in-process emulators behind evalq's real clients, over fakeredis, and must end as the
table says, within bounded steps and remote calls, with one outcome per request and at
most one remote job per request, its dead letter's replay included. ``docs/failures.md``
is the same table, rendered."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import structlog

from tests.unit.jobs import fault_matrix
from tests.unit.jobs.fault_matrix import CALLS, CASES, MODEL_ERRORS, Case
from tests.unit.jobs.fault_world import World, open_world, run_case

DOC = Path(__file__).resolve().parents[3] / "docs" / "failures.md"
#: Most tasks (ticks, steps, synchronous runs, item calls, janitor sweeps) one drive of a
#: job may take. The longest ends are bounded by the request's deadline (1800 s):
#: back-pressure admits it once per quota_backoff (30 s), a throttled harness call backs
#: off to retry_max (60 s); a retried call gives up within retry_max_seconds (600 s).
MAX_TASKS = 250
#: Most remote calls one case may make: its setup, the drive, the replay's drive.
MAX_CALLS = 80


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    # Info logs of some 200 jobs only slow the matrix down; warnings and errors show.
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield from open_world()
    finally:
        structlog.configure(**config)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_failing_call_ends_as_the_table_says(world: World, case: Case) -> None:
    end, call = case.end, case.call
    seen = run_case(world, call, case.fault, MAX_TASKS)

    died = None if end.dead is None else (end.dead, end.died_in or call.state)
    assert seen.dead_letter == died
    assert seen.outcomes == end.outcomes()
    if end.dead is not None:
        # Back where it died, and with the fault gone, on to its end: no dead letter left.
        assert (seen.replayed, seen.dead_again) == ("requeued", 0)
    # Its remote job (if it made one) deleted; nothing left to do.
    assert seen.final_state == ("DELETED" if seen.remote_jobs else "PUBLISHED")
    # Bounded (each drive raises past MAX_TASKS), and never a second remote job for the
    # request, whatever the replay did.
    assert seen.calls <= MAX_CALLS
    assert seen.remote_jobs <= 1


def test_each_agentcore_call_meets_every_error_botocore_models_for_it() -> None:
    for service in ("bedrock-agentcore", "bedrock-agentcore-control"):
        model = boto3.client(service, region_name="us-east-1").meta.service_model
        for operation, errors in MODEL_ERRORS.items():
            if operation in model.operation_names:
                modeled = {e.name for e in model.operation_model(operation).error_shapes}
                assert set(errors) == modeled, operation
    for call, by_error in CALLS.items():
        if call.backend == "agentcore":
            assert list(by_error) == [*MODEL_ERRORS[call.operation], *fault_matrix.TRANSPORT]


def test_docs_failures_md_is_the_table() -> None:
    """Fails when the table changed without
    ``python -m tests.unit.jobs.fault_matrix --doc > docs/failures.md``."""
    assert DOC.read_text(encoding="utf-8") == fault_matrix.render(), (
        "docs/failures.md is out of date: run "
        "python -m tests.unit.jobs.fault_matrix --doc > docs/failures.md"
    )
