"""Contract tests of the emulator's control plane: an unmodified boto3
``bedrock-agentcore-control`` client over HTTP (evaluators, online evaluation configs).

Assertions are about what boto3 observes and what ``/_emulator/*`` reports; lifecycles
run at a high time scale and waits poll instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from evalq_emulators.agentcore import EmulatorServer
from evalq_emulators.pytest_plugin import SAMPLE_JUDGE

from .test_emulator_contract import (
    control,
    error_code,
    http_status,
    make_client,
    wait_for,
)

ROLE = "arn:aws:iam::123456789012:role/evaluations"
JUDGE = SAMPLE_JUDGE  # the emulator plugin's sample judge
NEW_JUDGE: dict[str, Any] = {
    "llmAsAJudge": {
        **JUDGE["llmAsAJudge"],
        "modelConfig": {"bedrockEvaluatorModelConfig": {"modelId": "judge-model-v2"}},
    }
}
SOURCE = {"cloudWatchLogs": {"serviceNames": ["agent.svc"], "logGroupNames": ["/aws/agent"]}}
TOKEN_A = "evalq-" + "a" * 40
TOKEN_B = "evalq-" + "b" * 40


def make_control_client(url: str, **config: Any) -> Any:
    return boto3.client(
        "bedrock-agentcore-control",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    # At 1000x an update of the default 10 emulated s is over in 10 ms, before a test can
    # look at it; 500 emulated s keep it UPDATING for 0.5 real s.
    return make_emulator(update_seconds=500.0)


@pytest.fixture
def cp(emulator: EmulatorServer) -> Any:
    return make_control_client(emulator.url)


def create(cp: Any, name: str = "judge", **kw: Any) -> str:
    kw.setdefault("evaluatorConfig", JUDGE)
    kw.setdefault("level", "SESSION")
    out = cp.create_evaluator(evaluatorName=name, **kw)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    evaluator_id = str(out["evaluatorId"])
    wait_for(lambda: cp.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE")
    return evaluator_id


def status(cp: Any, evaluator_id: str) -> str:
    return str(cp.get_evaluator(evaluatorId=evaluator_id)["status"])


def online_config(cp: Any, name: str, evaluator_ids: list[str], enabled: bool = True) -> str:
    out = cp.create_online_evaluation_config(
        onlineEvaluationConfigName=name,
        rule={"samplingConfig": {"samplingPercentage": 10.0}},
        dataSourceConfig=SOURCE,
        evaluators=[{"evaluatorId": e} for e in evaluator_ids],
        evaluationExecutionRoleArn=ROLE,
        enableOnCreate=enabled,
    )
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["executionStatus"] == ("ENABLED" if enabled else "DISABLED")
    config_id = str(out["onlineEvaluationConfigId"])
    wait_for(
        lambda: (
            cp.get_online_evaluation_config(onlineEvaluationConfigId=config_id)["status"]
            == "ACTIVE"
        )
    )
    return config_id


def set_execution(cp: Any, config_id: str, execution: str) -> None:
    out = cp.update_online_evaluation_config(
        onlineEvaluationConfigId=config_id, executionStatus=execution
    )
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["executionStatus"] == execution
    wait_for(
        lambda: (
            cp.get_online_evaluation_config(onlineEvaluationConfigId=config_id)["status"]
            == "ACTIVE"
        )
    )


def evaluator_view(url: str, evaluator_id: str) -> dict[str, Any]:
    (view,) = [e for e in control(url, "evaluators") if e["evaluatorId"] == evaluator_id]
    return dict(view)


# --- create and get ---------------------------------------------------------------------


def test_create_then_get_every_field(emulator: EmulatorServer, cp: Any) -> None:
    out = cp.create_evaluator(
        evaluatorName="grounded",
        description="Is the answer grounded?",
        evaluatorConfig=JUDGE,
        level="TRACE",
        tags={"team": "evals"},
    )
    assert out["status"] == "CREATING"
    assert out["evaluatorId"].startswith("grounded-")
    assert out["evaluatorArn"] == (
        f"arn:aws:bedrock-agentcore:us-east-1:123456789012:evaluator/{out['evaluatorId']}"
    )
    assert isinstance(out["createdAt"], datetime)
    wait_for(lambda: status(cp, out["evaluatorId"]) == "ACTIVE")
    got = cp.get_evaluator(evaluatorId=out["evaluatorId"])
    assert got["evaluatorName"] == "grounded"
    assert got["description"] == "Is the answer grounded?"
    assert got["evaluatorConfig"] == JUDGE
    assert got["level"] == "TRACE"
    assert got["evaluatorType"] == "Custom"
    assert got["lockedForModification"] is False
    assert got["updatedAt"] >= got["createdAt"]


def test_duplicate_name_is_conflict(cp: Any) -> None:
    create(cp, "twice")
    with pytest.raises(cp.exceptions.ConflictException) as exc:
        cp.create_evaluator(evaluatorName="twice", evaluatorConfig=JUDGE, level="SESSION")
    assert http_status(exc.value) == 409


def test_create_rejects_what_the_model_rejects(emulator: EmulatorServer) -> None:
    # botocore checks unions itself; the service checks them (and patterns) again.
    cp = make_control_client(emulator.url, parameter_validation=False)
    both = {**JUDGE, "codeBased": {"lambdaConfig": {"lambdaArn": "x"}}}
    with pytest.raises(cp.exceptions.ValidationException) as exc:
        cp.create_evaluator(evaluatorName="bad", evaluatorConfig=both, level="SESSION")
    assert "evaluatorConfig" in str(exc.value)
    with pytest.raises(cp.exceptions.ValidationException):
        cp.create_evaluator(evaluatorName="1bad", evaluatorConfig=JUDGE, level="SESSION")


def test_builtin_evaluators_exist(cp: Any) -> None:
    got = cp.get_evaluator(evaluatorId="Builtin.Helpfulness")
    assert got["evaluatorType"] == "Builtin"
    assert got["status"] == "ACTIVE"
    assert got["evaluatorArn"] == "arn:aws:bedrock-agentcore:::evaluator/Builtin.Helpfulness"


def test_unknown_evaluator_is_not_found_with_a_message(cp: Any) -> None:
    for call in (
        lambda: cp.get_evaluator(evaluatorId="nobody-abcdefghij"),
        lambda: cp.update_evaluator(evaluatorId="nobody-abcdefghij", description="x"),
    ):
        with pytest.raises(cp.exceptions.ResourceNotFoundException) as exc:
            call()
        assert http_status(exc.value) == 404
        assert "nobody-abcdefghij" in exc.value.response["Error"]["Message"]


# --- update -----------------------------------------------------------------------------


def test_update_goes_updating_then_active_over_emulated_time(
    emulator: EmulatorServer, cp: Any
) -> None:
    evaluator_id = create(cp)
    out = cp.update_evaluator(
        evaluatorId=evaluator_id, evaluatorConfig=NEW_JUDGE, clientToken=TOKEN_A
    )
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["status"] == "UPDATING"
    assert out["evaluatorId"] == evaluator_id
    during = cp.get_evaluator(evaluatorId=evaluator_id)
    assert during["status"] == "UPDATING"
    assert during["evaluatorConfig"] == NEW_JUDGE  # the requested fields show at once
    wait_for(lambda: status(cp, evaluator_id) == "ACTIVE")
    after = cp.get_evaluator(evaluatorId=evaluator_id)
    assert after["evaluatorConfig"] == NEW_JUDGE
    assert after["updatedAt"] > during["updatedAt"]
    view = evaluator_view(emulator.url, evaluator_id)
    (call,) = view["update_calls"]
    assert call["clientToken"] == TOKEN_A
    assert call["outcome"] == "ACTIVE"
    assert call["ends_at"] - call["called_at"] == pytest.approx(500 / 1000.0, abs=1e-6)
    assert [h["status"] for h in view["history"]] == ["CREATING", "ACTIVE", "UPDATING", "ACTIVE"]
    assert view["history"][2]["call"] == "UpdateEvaluator"
    assert view["history"][2]["at"] == call["called_at"]
    assert view["history"][3]["at"] == call["ends_at"]


def test_update_is_idempotent_by_client_token(emulator: EmulatorServer, cp: Any) -> None:
    evaluator_id = create(cp)
    first = cp.update_evaluator(evaluatorId=evaluator_id, description="v2", clientToken=TOKEN_A)
    again = cp.update_evaluator(evaluatorId=evaluator_id, description="v2", clientToken=TOKEN_A)
    assert again["updatedAt"] == first["updatedAt"]
    assert again["status"] == "UPDATING"
    wait_for(lambda: status(cp, evaluator_id) == "ACTIVE")
    # Even after it finished, the replay answers as the first call did and changes nothing.
    late = cp.update_evaluator(evaluatorId=evaluator_id, description="v2", clientToken=TOKEN_A)
    assert late["updatedAt"] == first["updatedAt"]
    assert len(evaluator_view(emulator.url, evaluator_id)["update_calls"]) == 1
    # Other parameters with the same token: "the service ignores the request, but doesn't
    # return an error" (UpdateEvaluator's document): the earlier answer, nothing changes.
    other = cp.update_evaluator(evaluatorId=evaluator_id, description="v3", clientToken=TOKEN_A)
    assert other["updatedAt"] == first["updatedAt"]
    assert cp.get_evaluator(evaluatorId=evaluator_id)["description"] == "v2"
    stats = control(emulator.url, "stats")
    assert stats["calls"]["UpdateEvaluator"] == 4
    assert stats["evaluators"]["update_calls"] == 1


def test_update_while_updating_is_conflict(cp: Any) -> None:
    evaluator_id = create(cp)
    cp.update_evaluator(evaluatorId=evaluator_id, description="v2", clientToken=TOKEN_A)
    with pytest.raises(cp.exceptions.ConflictException) as exc:
        cp.update_evaluator(evaluatorId=evaluator_id, description="v3", clientToken=TOKEN_B)
    assert http_status(exc.value) == 409
    assert "UPDATING" in exc.value.response["Error"]["Message"]


def test_update_while_creating_is_conflict(make_emulator: Callable[..., EmulatorServer]) -> None:
    cp = make_control_client(make_emulator(create_seconds=1_000_000.0).url)
    out = cp.create_evaluator(evaluatorName="slow", evaluatorConfig=JUDGE, level="SESSION")
    with pytest.raises(cp.exceptions.ConflictException) as exc:
        cp.update_evaluator(evaluatorId=out["evaluatorId"], description="x")
    assert "CREATING" in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize("evaluator_id", ["Builtin.Helpfulness", "Builtin.GoalSuccessRate"])
def test_builtin_cannot_be_updated(cp: Any, evaluator_id: str) -> None:
    with pytest.raises(cp.exceptions.ValidationException) as exc:
        cp.update_evaluator(evaluatorId=evaluator_id, description="mine now")
    assert http_status(exc.value) == 400
    assert "cannot be updated" in exc.value.response["Error"]["Message"]
    assert cp.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE"


def test_update_failed_by_tag_keeps_the_old_fields(emulator: EmulatorServer, cp: Any) -> None:
    evaluator_id = create(cp, tags={"emulator:update-outcome": "UPDATE_FAILED"})
    cp.update_evaluator(evaluatorId=evaluator_id, evaluatorConfig=NEW_JUDGE)
    wait_for(lambda: status(cp, evaluator_id) == "UPDATE_FAILED")
    assert cp.get_evaluator(evaluatorId=evaluator_id)["evaluatorConfig"] == JUDGE
    assert evaluator_view(emulator.url, evaluator_id)["history"][-1]["status"] == "UPDATE_FAILED"
    # A failed update leaves the evaluator updatable again.
    cp.update_evaluator(evaluatorId=evaluator_id, description="retry")
    assert status(cp, evaluator_id) == "UPDATING"


def test_update_failed_fault(emulator: EmulatorServer, cp: Any) -> None:
    evaluator_id = create(cp)
    control(emulator.url, "faults", {"update_failed": 1.0})
    assert cp.update_evaluator(evaluatorId=evaluator_id, description="x")["status"] == "UPDATING"
    wait_for(lambda: status(cp, evaluator_id) == "UPDATE_FAILED")
    assert control(emulator.url, "stats")["faults"]["update_failed"] == 1


def test_update_duration_tag(emulator: EmulatorServer, cp: Any) -> None:
    evaluator_id = create(cp, tags={"emulator:update-duration": "30"})
    cp.update_evaluator(evaluatorId=evaluator_id, description="x")
    (call,) = evaluator_view(emulator.url, evaluator_id)["update_calls"]
    assert call["ends_at"] - call["called_at"] == pytest.approx(30 / 1000.0, abs=1e-6)


def test_create_failed_by_tag_cannot_be_updated(emulator: EmulatorServer, cp: Any) -> None:
    out = cp.create_evaluator(evaluatorName="broken", evaluatorConfig=JUDGE, level="SESSION",
                              tags={"emulator:create-outcome": "CREATE_FAILED"})  # fmt: skip
    evaluator_id = out["evaluatorId"]
    wait_for(lambda: status(cp, evaluator_id) == "CREATE_FAILED")
    with pytest.raises(cp.exceptions.ConflictException) as exc:
        cp.update_evaluator(evaluatorId=evaluator_id, description="x")
    assert "CREATE_FAILED" in exc.value.response["Error"]["Message"]
    history = evaluator_view(emulator.url, evaluator_id)["history"]
    assert [e["status"] for e in history] == ["CREATING", "CREATE_FAILED"]


def test_delete_goes_deleting_then_not_found(emulator: EmulatorServer, cp: Any) -> None:
    evaluator_id = create(cp, tags={"emulator:delete-duration": "500"})
    out = cp.delete_evaluator(evaluatorId=evaluator_id)
    assert (out["ResponseMetadata"]["HTTPStatusCode"], out["status"]) == (202, "DELETING")
    assert status(cp, evaluator_id) == "DELETING"
    with pytest.raises(cp.exceptions.ConflictException):
        cp.update_evaluator(evaluatorId=evaluator_id, description="x")
    with pytest.raises(cp.exceptions.ConflictException):
        cp.delete_evaluator(evaluatorId=evaluator_id)
    wait_for(lambda: evaluator_id not in {e["evaluatorId"] for e in
                                          cp.list_evaluators()["evaluators"]})  # fmt: skip
    with pytest.raises(cp.exceptions.ResourceNotFoundException):
        cp.get_evaluator(evaluatorId=evaluator_id)


def test_a_builtin_or_locked_evaluator_cannot_be_deleted(cp: Any) -> None:
    with pytest.raises(cp.exceptions.ValidationException) as exc:
        cp.delete_evaluator(evaluatorId="Builtin.Helpfulness")
    assert "cannot be deleted" in exc.value.response["Error"]["Message"]
    locked_id = create(cp, "held")
    online_config(cp, "holder", [locked_id])
    with pytest.raises(cp.exceptions.ConflictException):
        cp.delete_evaluator(evaluatorId=locked_id)
    assert status(cp, locked_id) == "ACTIVE"


# --- the lock of enabled online evaluation configs --------------------------------------


def test_enabled_online_config_locks_its_evaluators(emulator: EmulatorServer, cp: Any) -> None:
    locked_id, free_id = create(cp, "locked"), create(cp, "free")
    config_id = online_config(cp, "watch_prod", [locked_id, "Builtin.Helpfulness"])
    assert cp.get_evaluator(evaluatorId=locked_id)["lockedForModification"] is True
    assert cp.get_evaluator(evaluatorId=free_id)["lockedForModification"] is False
    listed = {e["evaluatorId"]: e for e in cp.list_evaluators()["evaluators"]}
    assert listed[locked_id]["lockedForModification"] is True
    assert listed[free_id]["lockedForModification"] is False
    with pytest.raises(cp.exceptions.ConflictException) as exc:
        cp.update_evaluator(evaluatorId=locked_id, description="x", clientToken=TOKEN_A)
    assert http_status(exc.value) == 409
    message = exc.value.response["Error"]["Message"]
    assert "locked for modification" in message
    assert config_id in message
    assert evaluator_view(emulator.url, locked_id)["lockedBy"] == [config_id]
    assert evaluator_view(emulator.url, locked_id)["update_calls"] == []
    # The other evaluator is not locked.
    assert cp.update_evaluator(evaluatorId=free_id, description="x")["status"] == "UPDATING"


def test_disabling_unlocks_and_enabling_locks_again(cp: Any) -> None:
    evaluator_id = create(cp)
    config_id = online_config(cp, "watch", [evaluator_id])
    set_execution(cp, config_id, "DISABLED")
    assert cp.get_evaluator(evaluatorId=evaluator_id)["lockedForModification"] is False
    cp.update_evaluator(evaluatorId=evaluator_id, description="while paused")
    wait_for(lambda: status(cp, evaluator_id) == "ACTIVE")
    set_execution(cp, config_id, "ENABLED")
    assert cp.get_evaluator(evaluatorId=evaluator_id)["lockedForModification"] is True
    with pytest.raises(cp.exceptions.ConflictException):
        cp.update_evaluator(evaluatorId=evaluator_id, description="again")


def test_disabled_on_create_does_not_lock(cp: Any) -> None:
    evaluator_id = create(cp)
    online_config(cp, "paused", [evaluator_id], enabled=False)
    assert cp.get_evaluator(evaluatorId=evaluator_id)["lockedForModification"] is False


def test_deleting_the_config_unlocks(cp: Any) -> None:
    evaluator_id = create(cp)
    config_id = online_config(cp, "gone", [evaluator_id])
    out = cp.delete_online_evaluation_config(onlineEvaluationConfigId=config_id)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["status"] == "DELETING"
    assert cp.get_evaluator(evaluatorId=evaluator_id)["lockedForModification"] is False
    with pytest.raises(cp.exceptions.ResourceNotFoundException):
        cp.get_online_evaluation_config(onlineEvaluationConfigId=config_id)
    with pytest.raises(cp.exceptions.ResourceNotFoundException):
        cp.delete_online_evaluation_config(onlineEvaluationConfigId=config_id)


def test_online_config_rules(make_emulator: Callable[..., EmulatorServer]) -> None:
    cp = make_control_client(make_emulator(create_seconds=1_000_000.0).url)
    with pytest.raises(cp.exceptions.ValidationException) as exc:
        cp.create_online_evaluation_config(
            onlineEvaluationConfigName="unknown_ref",
            rule={"samplingConfig": {"samplingPercentage": 10.0}},
            dataSourceConfig=SOURCE,
            evaluators=[{"evaluatorId": "nobody-abcdefghij"}],
            evaluationExecutionRoleArn=ROLE,
            enableOnCreate=True,
        )
    assert "nobody-abcdefghij" in exc.value.response["Error"]["Message"]
    out = cp.create_online_evaluation_config(
        onlineEvaluationConfigName="creating",
        rule={"samplingConfig": {"samplingPercentage": 10.0}},
        dataSourceConfig=SOURCE,
        evaluators=[{"evaluatorId": "Builtin.Helpfulness"}],
        evaluationExecutionRoleArn=ROLE,
        enableOnCreate=True,
    )
    assert out["status"] == "CREATING"
    got = cp.get_online_evaluation_config(onlineEvaluationConfigId=out["onlineEvaluationConfigId"])
    assert got["onlineEvaluationConfigName"] == "creating"
    assert got["evaluators"] == [{"evaluatorId": "Builtin.Helpfulness"}]
    assert got["executionStatus"] == "ENABLED"
    # Updates are refused until the configuration is ACTIVE.
    with pytest.raises(cp.exceptions.ConflictException):
        cp.update_online_evaluation_config(
            onlineEvaluationConfigId=out["onlineEvaluationConfigId"], executionStatus="DISABLED"
        )


# --- list ---------------------------------------------------------------------------------


def test_list_evaluators_pages_builtins_and_custom(cp: Any) -> None:
    created = [create(cp, f"judge_{i}") for i in range(3)]
    seen: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = cp.list_evaluators(maxResults=5, **({"nextToken": token} if token else {}))
        assert len(page["evaluators"]) <= 5
        seen += page["evaluators"]
        token = page.get("nextToken")
        if token is None:
            break
    ids = [e["evaluatorId"] for e in seen]
    assert len(ids) == len(set(ids))
    assert set(created) <= set(ids)
    assert "Builtin.Correctness" in ids
    model = cp.meta.service_model.shape_for("EvaluatorSummary")
    for summary in seen:
        assert set(model.required_members) <= set(summary)
        assert set(summary) <= set(model.members)
        assert summary["evaluatorType"] == (
            "Custom" if summary["evaluatorId"] in created else "Builtin"
        )
    with pytest.raises(cp.exceptions.ValidationException):
        cp.list_evaluators(nextToken="garbage")


# --- faults and counters --------------------------------------------------------------------


def test_faults_reach_the_control_plane(emulator: EmulatorServer, cp: Any) -> None:
    evaluator_id = create(cp)
    control(
        emulator.url,
        "faults",
        {"errors": {"ThrottlingException": 1.0}, "operations": ["UpdateEvaluator"]},
    )
    with pytest.raises(cp.exceptions.ThrottlingException) as exc:
        cp.update_evaluator(evaluatorId=evaluator_id, description="x")
    assert http_status(exc.value) == 429
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "ThrottlingException"
    )
    assert cp.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE"
    control(emulator.url, "faults", {"server_error": 1.0, "operations": ["GetEvaluator"]})
    with pytest.raises(cp.exceptions.InternalServerException):
        cp.get_evaluator(evaluatorId=evaluator_id)
    control(emulator.url, "faults", {})
    assert evaluator_view(emulator.url, evaluator_id)["update_calls"] == []


def test_control_plane_rate_limit(make_emulator: Callable[..., EmulatorServer]) -> None:
    cp = make_control_client(make_emulator(mutate_tps=2.0).url)
    outcomes = []
    for i in range(5):
        try:
            cp.create_evaluator(evaluatorName=f"rated_{i}", evaluatorConfig=JUDGE, level="TRACE")
            outcomes.append("ok")
        except botocore.exceptions.ClientError as exc:
            outcomes.append(error_code(exc))
    assert outcomes.count("ok") == 2
    assert outcomes.count("ThrottlingException") == 3


def test_stats_count_the_control_plane(emulator: EmulatorServer, cp: Any) -> None:
    evaluator_id = create(cp)
    config_id = online_config(cp, "counted", [evaluator_id], enabled=False)
    cp.update_evaluator(evaluatorId=evaluator_id, description="x")
    cp.delete_online_evaluation_config(onlineEvaluationConfigId=config_id)
    stats = control(emulator.url, "stats")
    calls = stats["calls"]
    assert calls["CreateEvaluator"] == 1
    assert calls["UpdateEvaluator"] == 1
    assert calls["CreateOnlineEvaluationConfig"] == 1
    assert calls["DeleteOnlineEvaluationConfig"] == 1
    assert calls["GetEvaluator"] >= 1
    assert stats["evaluators"]["custom"] == 1
    assert stats["evaluators"]["update_calls"] == 1
    assert stats["evaluators"]["online_configs"] == 0
    control(emulator.url, "reset", method="POST")
    assert control(emulator.url, "stats")["evaluators"]["custom"] == 0
    with pytest.raises(cp.exceptions.ResourceNotFoundException):
        cp.get_evaluator(evaluatorId=evaluator_id)


def test_data_plane_client_still_sees_its_own_errors(emulator: EmulatorServer) -> None:
    # Both services share the port: a data-plane error is the data-plane model's shape.
    client = make_client(emulator.url)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_batch_evaluation(batchEvaluationId="nobody-abcdefghij")


def test_list_online_evaluation_configs(cp: Any) -> None:
    evaluator_id = create(cp)
    ids = [online_config(cp, f"cfg_{i}", [evaluator_id], enabled=i == 0) for i in range(3)]
    page = cp.list_online_evaluation_configs(maxResults=2)
    rest = cp.list_online_evaluation_configs(nextToken=page["nextToken"])
    listed = page["onlineEvaluationConfigs"] + rest["onlineEvaluationConfigs"]
    assert [c["onlineEvaluationConfigId"] for c in listed] == ids
    assert [c["executionStatus"] for c in listed] == ["ENABLED", "DISABLED", "DISABLED"]
    assert "nextToken" not in rest
