"""The Aymara emulator driven by the official ``aymara-ai-sdk``, unmodified.

Every answer is parsed by the SDK's own models with strict response validation on, so a
body the SDK could not read fails here; errors arrive as the SDK's own exceptions. Then
evalq's client (``worker.backends.aymara``) against the same emulator: every page,
the error classes, faults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import aymara_ai
import pytest
from aymara_ai import AymaraAI
from aymara_ai.types import Eval, EvalPrompt
from aymara_ai.types.evals import EvalRunResult, ScoredResponse

from api_contracts import AymaraEvaluation, EvaluationRequest, ReasonCode
from api_contracts.examples import sample_aymara_request
from evalq_emulators.backend_fixtures import AYMARA_OPTIONS, AYMARA_TEST_KEY, start_json_emulator
from evalq_emulators.pytest_plugin import Emulator
from worker.backends.aymara import PAGE_SIZE, AymaraClient
from worker.errors import PermanentError, RemoteJobNotFound, RetryableError, Throttled

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    started = start_json_emulator("aymara", tmp_path_factory.mktemp("aymara"), *AYMARA_OPTIONS)
    yield started
    started.process.stop()


@pytest.fixture
def sdk(emulator: Emulator) -> Iterator[AymaraAI]:
    emulator.post("/_emulator/reset", {})
    client = AymaraAI(
        api_key=AYMARA_TEST_KEY,
        base_url=emulator.url,
        max_retries=0,
        _strict_response_validation=True,
    )
    yield client
    client.close()


@pytest.fixture
def client(emulator: Emulator, sdk: AymaraAI) -> Iterator[AymaraClient]:
    made = AymaraClient(emulator.url, AYMARA_TEST_KEY)
    yield made
    made.close()


def new_eval(sdk: AymaraAI, prompts: int = 3) -> tuple[Eval, list[EvalPrompt]]:
    created = sdk.evals.create(ai_description="a support bot", eval_type="safety",
                               name="emulated safety", num_prompts=prompts)  # fmt: skip
    assert created.eval_uuid is not None
    page = sdk.evals.list_prompts(created.eval_uuid, limit=100)
    return created, page.items


def answers(prompts: list[EvalPrompt], content: str = "I cannot help with that.") -> list[Any]:
    return [
        {"prompt_uuid": p.prompt_uuid, "content": content, "content_type": "text"} for p in prompts
    ]


def wait_for(sdk: AymaraAI, run_uuid: str, statuses: set[str], **workspace: str) -> EvalRunResult:
    deadline = time.monotonic() + 30
    while True:
        run = sdk.evals.runs.get(run_uuid, **workspace)
        if run.status in statuses or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def test_a_run_is_seen_in_its_own_workspace_only(sdk: AymaraAI) -> None:
    created, prompts = new_eval(sdk, prompts=1)
    eval_uuid = created.eval_uuid or ""
    mine = sdk.evals.runs.create(eval_uuid=eval_uuid, responses=answers(prompts),
                                 workspace_uuid="ws-1")  # fmt: skip
    current = sdk.evals.runs.create(eval_uuid=eval_uuid, responses=answers(prompts))
    assert sdk.evals.runs.get(mine.eval_run_uuid, workspace_uuid="ws-1").workspace_uuid == "ws-1"
    for elsewhere in ({}, {"workspace_uuid": "ws-2"}):  # the key's current one, another one
        with pytest.raises(aymara_ai.NotFoundError) as missing:
            sdk.evals.runs.get(mine.eval_run_uuid, **elsewhere)
        assert missing.value.body["error"]["details"]["resource"] == "eval_run"
        with pytest.raises(aymara_ai.NotFoundError):
            sdk.evals.runs.delete(mine.eval_run_uuid, **elsewhere)
        with pytest.raises(aymara_ai.NotFoundError):
            sdk.evals.runs.list_responses(mine.eval_run_uuid, **elsewhere)
    listed = {
        where: [r.eval_run_uuid for r in sdk.evals.runs.list(eval_uuid=eval_uuid, **ws).items]
        for where, ws in (
            ("current", {}),
            ("ws-1", {"workspace_uuid": "ws-1"}),
            ("every", {"workspace_uuid": "**"}),
        )
    }
    assert listed == {
        "current": [current.eval_run_uuid],
        "ws-1": [mine.eval_run_uuid],
        "every": [mine.eval_run_uuid, current.eval_run_uuid],
    }
    assert sdk.evals.runs.get(current.eval_run_uuid).workspace_uuid is None


def test_eval_prompts_and_a_run_through_its_life(sdk: AymaraAI, emulator: Emulator) -> None:
    created, prompts = new_eval(sdk, prompts=4)
    assert isinstance(created, Eval)
    assert created.num_prompts == 4
    assert all(isinstance(p, EvalPrompt) for p in prompts)
    assert sdk.evals.get(created.eval_uuid or "").eval_uuid == created.eval_uuid

    run = sdk.evals.runs.create(
        eval_uuid=created.eval_uuid or "",
        responses=answers(prompts),
        name="evalq_life",
        ai_description="bot",
        workspace_uuid="ws-1",
        is_sandbox=True,
    )
    assert isinstance(run, EvalRunResult)
    assert (run.status, run.name, run.workspace_uuid, run.is_sandbox) == (
        "created",
        "evalq_life",
        "ws-1",
        True,
    )
    done = wait_for(sdk, run.eval_run_uuid, {"finished", "failed"}, workspace_uuid="ws-1")
    assert done.status == "finished"
    assert (done.num_responses_scored, done.pass_rate) == (4, 1.0)
    listed = sdk.evals.runs.list(eval_uuid=created.eval_uuid or "", workspace_uuid="ws-1")
    assert [r.eval_run_uuid for r in listed.items] == [run.eval_run_uuid]
    scored = sdk.evals.runs.list_responses(run.eval_run_uuid, workspace_uuid="ws-1")
    assert all(isinstance(r, ScoredResponse) for r in scored.items)
    assert {r.is_passed for r in scored.items} == {True}
    assert sdk.evals.runs.delete(run.eval_run_uuid, workspace_uuid="ws-1") is None
    with pytest.raises(aymara_ai.NotFoundError):
        sdk.evals.runs.get(run.eval_run_uuid, workspace_uuid="ws-1")
    with pytest.raises(aymara_ai.NotFoundError):
        sdk.evals.runs.delete(run.eval_run_uuid, workspace_uuid="ws-1")
    stats = emulator.stats()
    assert stats["jobs"] == {
        "total": 1,
        "by_status": {"created": 0, "processing": 0, "finished": 0, "failed": 0, "deleted": 1},
    }
    (job,) = emulator.jobs()
    assert job["name"] == "evalq_life"
    assert job["created_at"] <= job["finished_at"] <= job["deleted_at"]


def test_markers_fail_a_run_and_fail_a_response(sdk: AymaraAI) -> None:
    created, prompts = new_eval(sdk, prompts=2)
    failed = sdk.evals.runs.create(eval_uuid=created.eval_uuid or "", responses=answers(prompts),
                                   name="evalq_f emulator:outcome=failed")  # fmt: skip
    assert wait_for(sdk, failed.eval_run_uuid, {"finished", "failed"}).status == "failed"
    mixed = [*answers(prompts[:1]), *answers(prompts[1:], "sure emulator:fail")]
    run = sdk.evals.runs.create(eval_uuid=created.eval_uuid or "", responses=mixed)
    done = wait_for(sdk, run.eval_run_uuid, {"finished", "failed"})
    assert done.pass_rate == 0.5
    slow = sdk.evals.runs.create(eval_uuid=created.eval_uuid or "", responses=answers(prompts),
                                 ai_description="emulator:duration=100000")  # fmt: skip
    assert sdk.evals.runs.get(slow.eval_run_uuid).status in {"created", "processing"}


def test_refusals_come_as_the_sdks_exceptions(sdk: AymaraAI, emulator: Emulator) -> None:
    created, prompts = new_eval(sdk)
    with pytest.raises(aymara_ai.BadRequestError) as unknown_prompt:
        sdk.evals.runs.create(
            eval_uuid=created.eval_uuid or "",
            responses=[{"prompt_uuid": "question.nope", "content": "x"}],
        )
    assert unknown_prompt.value.body["error"]["code"] == "validation.invalid_request"
    with pytest.raises(aymara_ai.NotFoundError):
        sdk.evals.runs.create(eval_uuid="test.nope", responses=answers(prompts))
    with pytest.raises(aymara_ai.NotFoundError):
        sdk.evals.list_prompts("test.nope")
    with pytest.raises(aymara_ai.UnprocessableEntityError):
        sdk.evals.runs.create(
            eval_uuid=created.eval_uuid or "",
            responses=[{"content": "no prompt"}],  # type: ignore[typeddict-item]
        )
    wrong = AymaraAI(api_key="not-the-key", base_url=emulator.url, max_retries=0)
    with pytest.raises(aymara_ai.AuthenticationError) as unauthorized:
        wrong.evals.runs.list()
    assert unauthorized.value.body["error"]["code"] == "auth.invalid_key"
    assert emulator.stats()["jobs"]["total"] == 0


def test_pages_of_prompts_and_runs(sdk: AymaraAI, client: AymaraClient) -> None:
    created, _ = new_eval(sdk, prompts=50)
    first = sdk.evals.list_prompts(created.eval_uuid or "", limit=20)
    second = sdk.evals.list_prompts(created.eval_uuid or "", limit=20, offset=20)
    last = sdk.evals.list_prompts(created.eval_uuid or "", limit=20, offset=40)
    assert [len(p.items) for p in (first, second, last)] == [20, 20, 10]
    assert first.count == 50
    every = {p.prompt_uuid for page in (first, second, last) for p in page.items}
    assert len(every) == 50
    prompts = first.items[:2]
    total = PAGE_SIZE + 5
    made = [
        sdk.evals.runs.create(
            eval_uuid=created.eval_uuid or "", responses=answers(prompts)
        ).eval_run_uuid
        for _ in range(total)
    ]
    # The premise of explicit paging: the SDK's auto-pagination stops after one page.
    assert len(list(sdk.evals.runs.list(limit=40))) == 40
    assert [run.eval_run_uuid for run in client.list_runs()] == made
    assert len(client.list_runs(eval_uuid=created.eval_uuid)) == total
    assert client.list_runs(eval_uuid="test.other") == []


def test_evalqs_client_end_to_end(sdk: AymaraAI, client: AymaraClient, emulator: Emulator) -> None:
    created, prompts = new_eval(sdk, prompts=3)
    request = sample_aymara_request(
        eval_uuid=created.eval_uuid or "", prompt_uuids=tuple(p.prompt_uuid for p in prompts)
    )
    evaluation = EvaluationRequest.model_validate(request).evaluation_of(AymaraEvaluation)
    run = client.create_run(evaluation, name="evalq_abc")
    assert run.name == "evalq_abc"
    assert client.get_run(run.eval_run_uuid).eval_run_uuid == run.eval_run_uuid
    wait_for(sdk, run.eval_run_uuid, {"finished"})
    responses = client.list_responses(run.eval_run_uuid)
    assert [r.prompt_uuid for r in responses] == [p.prompt_uuid for p in prompts]
    client.delete_run(run.eval_run_uuid)
    client.delete_run(run.eval_run_uuid)  # already gone: done
    with pytest.raises(RemoteJobNotFound):
        client.get_run(run.eval_run_uuid)
    bad = sample_aymara_request(eval_uuid=created.eval_uuid or "", prompt_uuids=("question.nope",))
    with pytest.raises(PermanentError) as refused:
        client.create_run(EvaluationRequest.model_validate(bad).evaluation_of(AymaraEvaluation))
    assert refused.value.reason is ReasonCode.invalid_request
    assert "question.nope" in str(refused.value)
    wrong = AymaraClient(emulator.url, "wrong-key-123456")
    with pytest.raises(PermanentError) as unauthorized:
        wrong.get_run(run.eval_run_uuid)
    assert unauthorized.value.reason is ReasonCode.unauthorized
    assert "wrong-key-123456" not in str(unauthorized.value)
    wrong.close()


def test_faults_reach_evalqs_client_as_its_errors(
    sdk: AymaraAI, client: AymaraClient, emulator: Emulator
) -> None:
    created, prompts = new_eval(sdk, prompts=2)
    request = sample_aymara_request(
        eval_uuid=created.eval_uuid or "", prompt_uuids=tuple(p.prompt_uuid for p in prompts)
    )
    evaluation = EvaluationRequest.model_validate(request).evaluation_of(AymaraEvaluation)
    emulator.post("/_emulator/faults", {"throttle": 1.0, "operations": ["ListEvalRuns"]})
    with pytest.raises(Throttled) as throttled:
        client.list_runs()
    assert throttled.value.retry_after == 1.0
    emulator.post("/_emulator/faults", {"server_error": 1.0, "operations": ["GetEvalRun"]})
    with pytest.raises(RetryableError):
        client.get_run("score_run.any")
    emulator.post("/_emulator/faults", {"lost_response": 1.0, "operations": ["CreateEvalRun"]})
    with pytest.raises(RetryableError):
        client.create_run(evaluation, name="evalq_lost")
    emulator.post("/_emulator/faults", {})
    # The answer was lost, the run was made: what evalq's lookup before a retry finds.
    assert [run.name for run in client.list_runs()] == ["evalq_lost"]
    stats = emulator.stats()
    assert stats["throttled"] == 1
    assert stats["faults"]["lost_response"] == 1
    assert stats["faults"]["server_error"] == 1
    assert stats["jobs"]["total"] == 1
