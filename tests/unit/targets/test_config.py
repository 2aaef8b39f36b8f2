"""The targets file: shapes accepted and refused, defaults from the settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from worker.settings import Settings
from worker.targets.config import load_targets

FILE = """
targets:
  - name: checkout-prod            # the issue's example, as given
    region: us-west-2
    endpoint_url: http://127.0.0.1:9001
    role_arn: arn:aws:iam::111111111111:role/evalq
    max_active_jobs: 5
    match:
      log_group_prefixes: [/aws/agents/checkout]
      service_names: [checkout-agent]
  - name: search-eu
    region: eu-west-1
    max_active_jobs: 3
    start_rate: 1.5
    job_name_prefix: evalqeu_
default_target: checkout-prod
"""


def _load(tmp_path, text: str, name: str = "targets.yaml", **settings):
    path = tmp_path / name
    path.write_text(text)
    return load_targets(Settings(targets_file=str(path), **settings))


def test_the_issues_example_loads_with_every_quota_decided(tmp_path):
    targets = _load(tmp_path, FILE, max_active_jobs=4, get_rate=30)
    checkout, search = targets.targets
    assert targets.default_target == "checkout-prod"
    assert (checkout.name, checkout.region, checkout.account_id) == (
        "checkout-prod", "us-west-2", "111111111111",
    )  # fmt: skip
    assert (checkout.max_active_jobs, checkout.get_rate, checkout.job_name_prefix) == (
        5, 30, "evalq_",
    )  # fmt: skip
    assert (search.max_active_jobs, search.start_rate, search.job_name_prefix) == (
        3, 1.5, "evalqeu_",
    )  # fmt: skip
    assert search.account_id is None
    assert checkout.match.service_names == ["checkout-agent"]


def test_json_is_read_as_well(tmp_path):
    text = json.dumps({"targets": [{"name": "a", "region": "us-east-1"}]})
    assert [t.name for t in _load(tmp_path, text, "targets.json").targets] == ["a"]


def test_without_a_file_there_is_one_target_made_of_the_settings():
    settings = Settings(aws_region="eu-central-1", agentcore_endpoint_url="http://x", start_rate=2)
    targets = load_targets(settings)
    (only,) = targets.targets
    assert (only.name, only.region, only.endpoint_url, only.start_rate) == (
        "default", "eu-central-1", "http://x", 2,
    )  # fmt: skip
    assert targets.default_target == "default"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("targets: []", "at least 1"),
        ("targets: [{name: Bad_Name, region: us-east-1}]", "name"),
        ("targets: [{name: a, region: mars}]", "region"),
        ("targets: [{name: a, region: us-east-1}, {name: a, region: us-east-2}]", "unique"),
        ("targets: [{name: a, region: us-east-1}]\ndefault_target: b", "not a listed target"),
        ("targets: [{name: a, region: us-east-1, max_active_jobs: 0}]", "max_active_jobs"),
        ("targets: [{name: a, region: us-east-1, role_arn: nope}]", "role_arn"),
        ("targets: [{name: a, region: us-east-1, colour: red}]", "colour"),
        ("targets: [{name: a, region: us-east-1, match: {regions: [x]}}]", "regions"),
    ],
)
def test_a_bad_file_is_refused_naming_the_problem(tmp_path, text, problem):
    with pytest.raises(ValidationError, match=problem):
        _load(tmp_path, text)


def test_invocation_rates_and_bounds_are_per_target_with_the_settings_as_defaults(tmp_path):
    text = FILE.replace("    start_rate: 1.5\n", "    start_rate: 1.5\n    invoke_rate: 2\n"
                        "    max_invocations: 8\n")  # fmt: skip
    checkout, search = _load(tmp_path, text, invoke_rate=5, max_invocations=3).targets
    assert (checkout.invoke_rate, checkout.max_invocations) == (5, 3)
    assert (search.invoke_rate, search.max_invocations) == (2, 8)
    with pytest.raises(ValidationError, match="max_invocations"):
        _load(tmp_path, FILE.replace("    start_rate: 1.5\n", "    max_invocations: 0\n"))
