"""The exported JSON Schemas: generated from the models, committed, and in step."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api_contracts.schema import SCHEMA_DIR, all_schemas, main, render, write_schemas

NAMES = [
    "evaluation-request",
    "evaluation-outcome",
    "dead-letter",
    "evaluator-update-request",
    "evaluator-update-outcome",
    "cancel-request",
]
REPO = Path(__file__).resolve().parents[3]


def test_committed_schema_files_match_the_models() -> None:
    """Fails when a model changed without ``python -m api_contracts.schema``."""
    for name, schema in all_schemas().items():
        path = SCHEMA_DIR / f"{name}.v1.json"
        assert path.is_file(), f"missing {path}; run python -m api_contracts.schema"
        assert json.loads(path.read_text(encoding="utf-8")) == schema, (
            f"{path} is out of date; run python -m api_contracts.schema"
        )
        assert path.read_text(encoding="utf-8") == render(schema)
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(
        f"{n}.v1.json" for n in NAMES
    )


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("evaluation-request", "EvaluationRequest"),
        ("evaluation-outcome", "EvaluationOutcome"),
        ("dead-letter", "DeadLetter"),
        ("evaluator-update-request", "EvaluatorUpdateRequest"),
        ("evaluator-update-outcome", "EvaluatorUpdateOutcome"),
        ("cancel-request", "CancelRequest"),
    ],
)
def test_schemas_have_ids_and_titles(name: str, title: str) -> None:
    schema = all_schemas()[name]
    assert schema["$id"] == f"https://evalq.internal/schemas/v1/{name}.json"
    assert schema["title"] == title
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"]["const"] == 1


def test_write_schemas_writes_pretty_sorted_files(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.v1.json" for n in NAMES)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.startswith('{\n  "')
        assert text.endswith("}\n")
        loaded = json.loads(text)
        assert json.dumps(loaded, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text


def test_check_reports_drift_and_regeneration_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--check", "--directory", str(tmp_path)]) == 1
    assert main(["--directory", str(tmp_path)]) == 0
    assert main(["--check", "--directory", str(tmp_path)]) == 0
    drifted = tmp_path / "dead-letter.v1.json"
    drifted.write_text(drifted.read_text().replace('"attempts"', '"tries"'))
    capsys.readouterr()
    assert main(["--check", "--directory", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(drifted) in err
    assert "evaluation-request" not in err


def test_module_check_passes_on_the_committed_files() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api_contracts.schema", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _request_schema() -> dict[str, Any]:
    return all_schemas()["evaluation-request"]


def test_request_schema_states_the_limits() -> None:
    schema = _request_schema()
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"request_id", "producer", "evaluation"}
    assert props["request_id"]["maxLength"] == 128
    assert props["producer"]["pattern"] == "^[a-z0-9][a-z0-9._-]*$"
    assert props["backend"] == {**props["backend"], "$ref": "#/$defs/Backend"}
    assert schema["$defs"]["Backend"]["enum"] == ["agentcore", "aymara", "agno"]
    assert props["reply_to"]["maxItems"] == 10
    assert props["reply_to"]["uniqueItems"] is True
    correlation = props["correlation"]
    assert correlation["maxProperties"] == 32
    assert correlation["propertyNames"]["pattern"] == "^[A-Za-z0-9._:-]+$"
    assert correlation["additionalProperties"]["maxLength"] == 256
    assert "patternProperties" not in correlation
    assert (props["priority"]["minimum"], props["priority"]["maximum"]) == (0, 9)
    deadline = props["deadline_seconds"]["anyOf"][0]
    assert (deadline["minimum"], deadline["maximum"]) == (1, 30 * 24 * 3600)


def test_request_schema_has_no_client_token_and_optional_name() -> None:
    evaluation = _request_schema()["$defs"]["AgentCoreEvaluation"]
    assert "clientToken" not in evaluation["properties"]
    assert "batchEvaluationName" in evaluation["properties"]
    assert evaluation["required"] == ["dataSourceConfig"]
    assert evaluation["additionalProperties"] is False


def test_outcome_schema_lists_the_final_statuses() -> None:
    schema = all_schemas()["evaluation-outcome"]
    assert schema["$defs"]["OutcomeStatus"]["enum"] == [
        "COMPLETED",
        "COMPLETED_WITH_ERRORS",
        "FAILED",
        "STOPPED",
        "EXPIRED",
        "CANCELLED",
    ]
    assert schema["properties"]["accepted_at"]["format"] == "date-time"


def test_dead_letter_schema_lists_the_reason_codes() -> None:
    schema = all_schemas()["dead-letter"]
    assert "idempotency_conflict" in schema["$defs"]["ReasonCode"]["enum"]
    request_types = {branch.get("type") for branch in schema["properties"]["request"]["anyOf"]}
    assert request_types == {"object", "string", "null"}


@functools.cache
def _request_validator() -> Any:
    """The request schema's validator, the schema checked first (made once: generating
    the schemas is most of each case's time)."""
    import jsonschema

    schema = _request_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _schema_accepts(instance: Any) -> bool:
    return bool(_request_validator().is_valid(instance))


def _model_accepts(instance: Any) -> bool:
    from pydantic import ValidationError

    from api_contracts import EvaluationRequest

    try:
        EvaluationRequest.model_validate(instance)
    except ValidationError:
        return False
    return True


def _backend_cases() -> list[Any]:
    from api_contracts.examples import sample_agno_request, sample_aymara_request, sample_request

    agentcore, aymara, agno = sample_request(), sample_aymara_request(), sample_agno_request()
    no_backend = {k: v for k, v in agentcore.items() if k != "backend"}
    cases: list[Any] = [agentcore, aymara, agno, no_backend]
    # Each backend's evaluation under every other backend name.
    for request in (agentcore, aymara, agno):
        for backend in ("agentcore", "aymara", "agno"):
            cases.append({**request, "backend": backend})
    cases.append({**no_backend, "evaluation": aymara["evaluation"]})
    evaluation = agno["evaluation"]
    for change in (
        {"team_id": "t"},
        {"agent_id": None, "team_id": "t"},
        {"expected_output": ""},
        {"eval_type": "agent_as_judge"},
        {"eval_type": "agent_as_judge", "criteria": "c"},
        {"eval_type": "reliability"},
        {"eval_type": "reliability", "expected_tool_calls": []},
        {"eval_type": "performance", "expected_output": None},
        {"table": "t"},
        {"table": "t", "db_id": "d"},
    ):
        changed = {k: v for k, v in {**evaluation, **change}.items() if v is not None}
        cases.append({**agno, "evaluation": changed})
    return cases


@pytest.mark.parametrize("instance", _backend_cases())
def test_the_schema_and_the_model_agree_on_each_backend(instance: Any) -> None:
    assert _schema_accepts(instance) == _model_accepts(instance)


def test_the_schema_ties_evaluation_to_backend() -> None:
    schema = _request_schema()
    refs = {
        rule["if"]["properties"]["backend"]["const"]: rule["then"]["properties"]["evaluation"]
        for rule in schema["allOf"]
    }
    assert refs == {
        "agentcore": {"$ref": "#/$defs/AgentCoreEvaluation"},
        "aymara": {"$ref": "#/$defs/AymaraEvaluation"},
        "agno": {"$ref": "#/$defs/AgnoEvaluation"},
    }
