"""Which target a request runs in."""

from __future__ import annotations

import pytest

from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request
from worker.settings import Settings
from worker.targets.config import TargetSpec
from worker.targets.routing import NoTarget, route

SETTINGS = Settings()
CHECKOUT = TargetSpec(
    name="checkout",
    region="us-west-2",
    role_arn="arn:aws:iam::111111111111:role/evalq",
    match={"log_group_prefixes": ["/aws/agents/checkout"]},
).resolve(SETTINGS)
SEARCH = TargetSpec(
    name="search", region="eu-west-1", match={"service_names": ["search-agent"]}
).resolve(SETTINGS)
ONLINE = TargetSpec(name="online", region="us-east-1", account_id="222222222222").resolve(SETTINGS)
TARGETS = [CHECKOUT, SEARCH, ONLINE]


def _request(**overrides) -> EvaluationRequest:
    return EvaluationRequest.model_validate(sample_request(**overrides))


def _logs(service: str, *groups: str) -> dict:
    request = sample_request()
    source = {"cloudWatchLogs": {"serviceNames": [service], "logGroupNames": list(groups)}}
    request["evaluation"]["dataSourceConfig"] = source
    return request


def _online(arn: str) -> dict:
    request = sample_request()
    request["evaluation"]["dataSourceConfig"] = {
        "onlineEvaluationConfigSource": {"onlineEvaluationConfigArn": arn}
    }
    return request


def test_a_named_target_wins_over_every_rule():
    routed = route(_request(target="search", **_logs("x", "/aws/agents/checkout-1")), TARGETS, None)
    assert routed.name == "search"


def test_rules_match_log_group_prefixes_service_names_and_online_config_accounts():
    by_group = EvaluationRequest.model_validate(_logs("other", "/aws/agents/checkout-7"))
    by_service = EvaluationRequest.model_validate(_logs("search-agent"))
    arn = "arn:aws:bedrock-agentcore:us-east-1:222222222222:online-evaluation-config/cfg-abcdefghij"
    by_account = EvaluationRequest.model_validate(_online(arn))
    assert route(by_group, TARGETS, None).name == "checkout"
    assert route(by_service, TARGETS, None).name == "search"
    assert route(by_account, TARGETS, None).name == "online"


def test_the_first_matching_target_in_file_order_takes_it():
    request = EvaluationRequest.model_validate(_logs("search-agent", "/aws/agents/checkout"))
    assert route(request, TARGETS, None).name == "checkout"


def test_no_match_goes_to_the_default_else_it_is_no_target_naming_what_was_tried():
    request = EvaluationRequest.model_validate(_logs("nobody", "/aws/other"))
    assert route(request, TARGETS, "search").name == "search"
    with pytest.raises(NoTarget) as caught:
        route(request, TARGETS, None)
    assert caught.value.reason == "no_target"
    error = str(caught.value)
    assert "['/aws/other']" in error
    assert "['nobody']" in error
    assert "checkout, search, online" in error


def test_an_unknown_named_target_is_no_target():
    with pytest.raises(NoTarget, match="'elsewhere' is not configured"):
        route(_request(target="elsewhere"), TARGETS, "search")


def test_an_online_config_in_another_region_does_not_match_the_account():
    arn = "arn:aws:bedrock-agentcore:eu-west-1:222222222222:online-evaluation-config/cfg-abcdefghij"
    with pytest.raises(NoTarget):
        route(EvaluationRequest.model_validate(_online(arn)), TARGETS, None)
