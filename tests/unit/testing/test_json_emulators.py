"""The Aymara and Agno emulators in-process: emulated time (on an injected clock, no
waiting), faults, the control plane, and the request models against agno's own."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from api_contracts import AgnoEvaluation, EvaluationRequest
from api_contracts.examples import sample_agno_request
from evalq_emulators.agno import AgnoService
from evalq_emulators.agno.models import EvalRunInput
from evalq_emulators.aymara import AymaraService, AymaraTiming
from evalq_emulators.common import FaultConfigError, Request, ServiceServer
from evalq_emulators.common.server import serve_call
from worker.backends.agno import AgnoClient, RunRef
from worker.errors import RetryableError, Throttled


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def call(service: Any, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """One API call through the emulator's own request path, without a socket."""
    raw = b"" if body is None else json.dumps(body).encode()
    path, _, query = path.partition("?")
    lowered = {k.lower(): v for k, v in headers.items()}
    return serve_call(service, Request(method, path, parse_qs(query), lowered, raw))


def test_an_aymara_run_follows_emulated_time() -> None:
    clock = Clock()
    timing = AymaraTiming(pending_seconds=20, seconds_per_response=10)
    service = AymaraService(api_key="k", time_scale=10, clock=clock, timing=timing)
    new_eval = {"ai_description": "d", "eval_type": "safety", "num_prompts": 4}
    created = call(service, "POST", "/v2/evals", new_eval, **{"x-api-key": "k"})
    prompts = created.body["num_prompts"]
    eval_uuid = created.body["eval_uuid"]
    listed = call(service, "GET", f"/v2/evals/{eval_uuid}/prompts", **{"x-api-key": "k"})
    responses = [{"prompt_uuid": p["prompt_uuid"], "content": "no"} for p in listed.body["items"]]
    run = call(service, "POST", "/v2/eval-runs", {"eval_uuid": eval_uuid, "responses": responses},
               **{"x-api-key": "k"}).body  # fmt: skip
    assert prompts == 4
    assert run["status"] == "created"
    seen = []
    # 20 emulated seconds pending, then 10 per response, at 10x: 2 s, then 1 s each.
    for real_seconds in (1.9, 2.1, 4.1, 5.9, 6.1):
        clock.now = 1_800_000_000.0 + real_seconds
        got = call(service, "GET", f"/v2/eval-runs/{run['eval_run_uuid']}", **{"x-api-key": "k"})
        seen.append((got.body["status"], got.body["num_responses_scored"]))
    assert seen == [("created", 0), ("processing", 0), ("processing", 2), ("processing", 3),
                    ("finished", 4)]  # fmt: skip


def test_agno_durations_grow_with_iterations_and_shrink_with_time_scale() -> None:
    service = AgnoService(time_scale=10)
    one = EvalRunInput(eval_type="performance", input="x", agent_id="demo-agent")
    more = EvalRunInput(eval_type="performance", input="x", agent_id="demo-agent",
                        num_iterations=5, warmup_runs=2)  # fmt: skip
    marked = EvalRunInput(eval_type="performance", input="x emulator:duration=600",
                          agent_id="demo-agent")  # fmt: skip
    assert service.emulated_duration(more) > service.emulated_duration(one)
    assert service.emulated_duration(marked) == 600
    assert service.real_seconds(600) == 60
    assert AgnoService(time_scale=100).real_seconds(600) == 6


def test_the_emulators_request_model_is_agentoss() -> None:
    from agno.os.routers.evals.schemas import EvalRunInput as Theirs

    def strip(schema: Any) -> Any:
        if isinstance(schema, dict):
            return {k: strip(v) for k, v in schema.items() if k not in ("description", "title")}
        if isinstance(schema, list):
            return [strip(v) for v in schema]
        return schema

    ours, theirs = EvalRunInput.model_json_schema(), Theirs.model_json_schema()
    assert strip(ours["properties"]) == strip(theirs["properties"])
    assert ours["required"] == theirs["required"]
    assert strip(ours["$defs"]["EvalType"])["enum"] == strip(theirs["$defs"]["EvalType"])["enum"]


def test_fault_documents_name_this_services_operations() -> None:
    service = AgnoService()
    assert service.set_faults({"throttle": 0.5, "operations": ["RunEval"]}).operations == [
        "RunEval"
    ]
    with pytest.raises(FaultConfigError, match="unknown operations"):
        service.set_faults({"operations": ["StartBatchEvaluation"]})
    with pytest.raises(FaultConfigError, match="unknown error types: ValidationException"):
        service.set_faults({"errors": {"ValidationException": 1.0}})
    with pytest.raises(FaultConfigError):
        service.set_faults({"throttle": 2})


def test_each_error_a_service_documents_can_be_injected_in_its_own_envelope() -> None:
    aymara = AymaraService(api_key="k")
    key = {"x-api-key": "k"}
    aymara.set_faults({"errors": {"404:organization": 1.0}, "operations": ["GetEvalRun"]})
    missing = call(aymara, "GET", "/v2/eval-runs/score_run.x", **key)
    aymara.set_faults({"errors": {"404": 1.0}, "operations": ["CreateEvalRun"]})
    no_eval = call(aymara, "POST", "/v2/eval-runs", {}, **key)
    aymara.set_faults({"errors": {"409": 1.0}})
    conflict = call(aymara, "DELETE", "/v2/eval-runs/score_run.x", **key)
    assert (missing.status, missing.body["error"]["details"]) == (404, {"resource": "organization"})
    assert no_eval.body["error"]["details"] == {"resource": "eval"}
    assert (conflict.status, conflict.body["error"]["code"]) == (409, "resource.conflict")
    agno = AgnoService()
    agno.set_faults({"errors": {"422": 1.0}, "operations": ["GetEvalRun"]})
    invalid = call(agno, "GET", "/eval-runs/x")
    assert (invalid.status, invalid.body["detail"][0]["msg"]) == (422, "Injected")
    assert aymara.stats()["faults"]["errors"] == 3
    assert aymara.stats()["in_flight"] == agno.stats()["in_flight"] == 0
    with pytest.raises(FaultConfigError, match="unknown error types: 404:organization"):
        agno.set_faults({"errors": {"404:organization": 1.0}})


@pytest.fixture
def agno() -> Any:
    service = AgnoService(security_key="sk-test-1", agents=("demo-agent",), time_scale=1e6)
    with ServiceServer(service) as server:
        client = AgnoClient(server.url, "sk-test-1")
        yield service, server, client
        client.close()


def evaluation(**members: Any) -> AgnoEvaluation:
    request = sample_agno_request()
    request["evaluation"].update(members)
    return EvaluationRequest.model_validate(request).evaluation_of(AgnoEvaluation)


def test_evalqs_client_pages_renames_and_bulk_deletes_on_the_emulator(agno: Any) -> None:
    service, _, client = agno
    made = [client.run_eval(evaluation(), timeout=10, name=f"evalq_{i}")["id"] for i in range(105)]
    assert {run["id"] for run in client.list_runs()} == set(made)
    assert client.rename_run(RunRef(made[0]), "evalq_new")["name"] == "evalq_new"
    assert client.delete_runs([RunRef(i) for i in made[:100]] + [RunRef("ghost")]) == 1
    assert len(client.list_runs()) == 5
    stats = service.stats()
    assert stats["jobs"] == {"total": 105, "by_status": {"running": 0, "stored": 5, "error": 0,
                                                         "deleted": 100}}  # fmt: skip
    assert stats["calls"]["RunEval"] == 105
    assert stats["max_active"] == 1


def test_agno_faults_and_markers(agno: Any) -> None:
    service, server, client = agno
    service.set_faults({"lost_response": 1.0, "operations": ["RunEval"]})
    with pytest.raises(RetryableError):
        client.run_eval(evaluation(), timeout=10, name="evalq_lost")
    service.set_faults({"throttle": 1.0, "operations": ["ListEvalRuns"]})
    with pytest.raises(Throttled) as throttled:
        client.list_runs()
    assert throttled.value.retry_after == 1.0
    service.set_faults({"drop": 1.0})
    with pytest.raises(RetryableError):
        client.get_run(RunRef("any"))
    service.set_faults({})
    # The lost answer's run was stored all the same.
    assert [run["name"] for run in client.list_runs()] == ["evalq_lost"]
    with pytest.raises(RetryableError, match="Failed to run accuracy evaluation"):
        client.run_eval(evaluation(name="evalq_x emulator:outcome=error"), timeout=10)
    jobs = service.jobs()
    assert [job["status"] for job in jobs] == ["stored", "error"]
    assert all(job["finished_at"] >= job["started_at"] for job in jobs)
    stats = service.stats()
    assert (stats["faults"]["lost_response"], stats["faults"]["drop"], stats["throttled"]) == (
        1,
        1,
        1,
    )
    assert httpx.post(server.url + "/_emulator/reset").json() == {"ok": True}
    assert service.stats()["jobs"]["total"] == 0


def test_aymara_answers_404_about_a_missing_organization_or_workspace() -> None:
    import aymara_ai

    with ServiceServer(AymaraService(api_key="k", workspaces=["ws-1"])) as server:
        sdk = aymara_ai.AymaraAI(api_key="k", base_url=server.url, max_retries=0)
        made = sdk.evals.create(ai_description="d", eval_type="safety", num_prompts=1,
                                workspace_uuid="ws-1")  # fmt: skip
        assert sdk.evals.runs.list(workspace_uuid="*").items == []
        with pytest.raises(aymara_ai.NotFoundError) as workspace:
            sdk.evals.runs.list(eval_uuid=made.eval_uuid or "", workspace_uuid="ws-2")
        with pytest.raises(aymara_ai.NotFoundError) as run:
            sdk.evals.runs.get("score_run.none", workspace_uuid="ws-1")
        account = {"organization": False}
        assert httpx.post(server.url + "/_emulator/account", json=account).json() == {
            "organization": False, "workspaces": ["ws-1"],
        }  # fmt: skip
        with pytest.raises(aymara_ai.NotFoundError) as organization:
            sdk.evals.runs.list()
    said = [e.value.body["error"] for e in (workspace, run, organization)]
    assert [e["code"] for e in said] == ["resource.not_found"] * 3
    assert [e["details"]["resource"] for e in said] == ["workspace", "eval_run", "organization"]
    assert said[0]["message"] == "Workspace ws-2 not found"


def test_the_emulator_command_refuses_an_unknown_service() -> None:
    from typer.testing import CliRunner

    from worker.cli.main import app

    result = CliRunner().invoke(app, ["emulator", "--service", "vertex", "--port", "0"])
    assert result.exit_code == 2
    assert "unknown service" in result.output


def test_one_emulator_serves_many_accounts_each_with_its_own_state() -> None:
    import boto3

    from evalq_emulators.agentcore import AgentCoreService, EmulatorConfig
    from evalq_emulators.common import ServiceServer

    def account() -> AgentCoreService:
        return AgentCoreService(EmulatorConfig(time_scale=1.0, max_active=1))

    with ServiceServer(account(), make_account=account) as server:

        def client(path: str) -> Any:
            return boto3.client("bedrock-agentcore", region_name="us-east-1",
                                endpoint_url=server.url + path, aws_access_key_id="t",
                                aws_secret_access_key="t")  # fmt: skip

        source = {"cloudWatchLogs": {"serviceNames": ["s"], "logGroupNames": ["/g"]}}
        params = {"evaluators": [{"evaluatorId": "Builtin.Helpfulness"}],
                  "dataSourceConfig": source}  # fmt: skip
        for name in ("a1", "a2"):
            client(f"/accounts/{name}").start_batch_evaluation(
                batchEvaluationName="same_name", clientToken="t" * 40, **params
            )  # the same name and token: accounts do not see each other
        listed = client("/accounts/a1").list_batch_evaluations()["batchEvaluations"]
        assert len(listed) == 1
        assert client("").list_batch_evaluations()["batchEvaluations"] == []
        with pytest.raises(Exception, match="ServiceQuotaExceeded"):  # a1's one slot is full
            client("/accounts/a1").start_batch_evaluation(
                batchEvaluationName="other", clientToken="u" * 40, **params
            )
        stats = httpx.get(server.url + "/accounts/a2/_emulator/stats").json()
        assert stats["jobs"]["total"] == 1


def _built(*argv: str) -> Any:
    from evalq_emulators.cli import _options, parser
    from evalq_emulators.launch import build_service

    args = parser().parse_args(list(argv))
    return build_service(args.service, **_options(args))


def test_the_aymara_command_line_sets_the_account() -> None:
    service = _built("--service", "aymara", "--workspaces", "ws-1,ws-2", "--no-organization")
    assert (service.workspaces, service.organization) == ({"ws-1", "ws-2"}, False)
    missing = call(service, "GET", "/v2/eval-runs", **{"x-api-key": "k"})
    assert (missing.status, missing.body["error"]["details"]) == (404, {"resource": "organization"})
    assert _built("--service", "aymara").organization is True


def test_the_agentcore_command_line_sets_region_and_named_sessions() -> None:
    config = _built("--region", "eu-west-1", "--named-sessions", "harness").config
    assert (config.region, config.named_sessions) == ("eu-west-1", "harness")
    assert _built().config.named_sessions == "traces"
    with pytest.raises(ValueError, match="named_sessions must be one of traces, harness"):
        _built("--named-sessions", "all")
