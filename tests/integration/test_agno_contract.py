"""The Agno emulator against the real AgentOS: the real server is the oracle.

Every call goes to both: the real ``agno.os.AgentOS`` (SQLite, its agents on the fake
OpenAI-compatible model) and ``evalq emulator --service agno``, with the same agents,
teams, database id and key. Their answers must have the same status code and the same
body shape: the same keys at every level, the same JSON types (any number is a number;
``null`` matches anything, since the values differ: ids, times, scores). Where the two
cannot agree, docs/backends.md says why.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from evalq_emulators.backend_fixtures import (
    AGNO_DB_ID,
    AGNO_OPTIONS,
    AGNO_TEST_KEY,
    AgentOSServer,
    start_json_emulator,
)
from evalq_emulators.pytest_plugin import Emulator
from worker.backends.agno import AgnoClient, RunRef
from worker.errors import PermanentError, RemoteJobNotFound

pytestmark = pytest.mark.integration

TABLE = "agno_eval_runs"
#: A connection per call: uvicorn closes the one that served a 500, and keeps others 5 s.
LIMITS = httpx.Limits(max_keepalive_connections=0)
MISSING = object()


def shape_mismatches(real: Any, emulated: Any, path: str = "$") -> list[str]:
    """Where ``emulated`` differs from ``real`` in keys or JSON types."""
    if real is None or emulated is None:
        return []
    if isinstance(real, bool) or isinstance(emulated, bool):
        same = type(real) is type(emulated)
        return [] if same else [f"{path}: {type(real).__name__} != {type(emulated).__name__}"]
    if isinstance(real, int | float) and isinstance(emulated, int | float):
        return []
    if isinstance(real, dict) and isinstance(emulated, dict):
        problems = (
            [f"{path}: keys {sorted(set(real) ^ set(emulated))}"]
            if set(real) != set(emulated)
            else []
        )
        for key in set(real) & set(emulated):
            problems += shape_mismatches(real[key], emulated[key], f"{path}.{key}")
        return problems
    if isinstance(real, list) and isinstance(emulated, list):
        # Runs of a list are paired by eval type (each type has its own eval_data); the
        # two sides hold different runs, in different orders.
        problems = []
        for index, item in enumerate(emulated):
            if isinstance(item, dict) and "eval_type" in item:
                peers = [
                    r
                    for r in real
                    if isinstance(r, dict) and r.get("eval_type") == item["eval_type"]
                ]
                peer = peers[0] if peers else None
            else:
                peer = real[index] if index < len(real) else None
            problems += shape_mismatches(peer, item, f"{path}[{index}]")
        return problems
    same = type(real) is type(emulated)
    return [] if same else [f"{path}: {type(real).__name__} != {type(emulated).__name__}"]


@dataclass
class Answer:
    status: int
    body: Any


@dataclass
class Pair:
    """The real AgentOS and the emulator, called alike."""

    real: httpx.Client
    emulated: httpx.Client

    def call(
        self, method: str, path: str, body: Any = MISSING, *, key: Any = AGNO_TEST_KEY,
        raw: bytes | None = None,
    ) -> tuple[Answer, Answer]:  # fmt: skip
        """Send the call to both; require the same status and body shape."""
        answers = []
        for client in (self.real, self.emulated):
            headers = {} if key is None else {"Authorization": f"Bearer {key}"}
            options: dict[str, Any] = {"headers": headers}
            if raw is not None:
                options["content"] = raw
                headers["Content-Type"] = "application/json"
            elif body is not MISSING:
                options["json"] = body
            response = client.request(method, path, **options)
            answers.append(
                Answer(response.status_code, response.json() if response.content else None)
            )
        real, emulated = answers
        assert real.status == emulated.status, (method, path, real.body, emulated.body)
        mismatches = shape_mismatches(real.body, emulated.body)
        assert not mismatches, (method, path, mismatches, real.body, emulated.body)
        return real, emulated


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    started = start_json_emulator("agno", tmp_path_factory.mktemp("agno"), *AGNO_OPTIONS)
    yield started
    started.process.stop()


@pytest.fixture(scope="module")
def pair(agentos_server: AgentOSServer, emulator: Emulator) -> Iterator[Pair]:
    with (
        httpx.Client(base_url=agentos_server.url, timeout=120, limits=LIMITS) as real,
        httpx.Client(base_url=emulator.url, timeout=120, limits=LIMITS) as emulated,
    ):
        yield Pair(real, emulated)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


VALID_RUNS = {
    "accuracy-agent": {"eval_type": "accuracy", "input": "What is 2 + 2?",
                       "expected_output": "4", "agent_id": "demo-agent"},
    "accuracy-team": {"eval_type": "accuracy", "input": "What is 2 + 2?",
                      "expected_output": "4", "team_id": "support-team", "num_iterations": 2},
    "judge-binary": {"eval_type": "agent_as_judge", "input": "hi", "criteria": "polite",
                     "agent_id": "demo-agent"},
    "judge-numeric": {"eval_type": "agent_as_judge", "input": "hi", "criteria": "polite",
                      "scoring_strategy": "numeric", "threshold": 8, "team_id": "support-team"},
    "performance": {"eval_type": "performance", "input": "hi", "agent_id": "demo-agent",
                    "num_iterations": 2, "warmup_runs": 1},
    "reliability-agent": {"eval_type": "reliability", "input": "multiply 2 by 3",
                          "expected_tool_calls": ["multiply"], "agent_id": "demo-agent"},
    "reliability-team": {"eval_type": "reliability", "input": "multiply 2 by 3",
                         "expected_tool_calls": ["multiply"], "team_id": "support-team",
                         "allow_additional_tool_calls": True},
}  # fmt: skip


@pytest.mark.parametrize("case", VALID_RUNS)
def test_valid_runs_answer_and_store_alike(pair: Pair, case: str) -> None:
    body = {**VALID_RUNS[case], "name": unique(f"evalq_{case}")}
    real, emulated = pair.call("POST", "/eval-runs", body)
    assert real.status == 200
    assert (real.body["eval_type"], real.body["name"]) == (body["eval_type"], body["name"])
    assert emulated.body["name"] == body["name"]
    # The stored records, read back from each side.
    stored_real = pair.real.get(f"/eval-runs/{real.body['id']}", headers=_auth())
    stored_emulated = pair.emulated.get(f"/eval-runs/{emulated.body['id']}", headers=_auth())
    assert stored_real.status_code == stored_emulated.status_code == 200
    assert not shape_mismatches(stored_real.json(), stored_emulated.json())
    assert stored_emulated.json()["name"] == body["name"]


def _auth(key: str = AGNO_TEST_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


REFUSED = {
    "both agent and team": ({"agent_id": "demo-agent", "team_id": "support-team"}, 400),
    "neither": ({"agent_id": None}, 400),
    "unknown agent": ({"agent_id": "ghost"}, 404),
    "unknown team": ({"agent_id": None, "team_id": "ghost"}, 404),
    "unknown agent and team": ({"agent_id": "ghost", "team_id": "ghost-team"}, 400),
    "missing expected_output": ({"expected_output": None}, 400),
    "empty expected_output": ({"expected_output": ""}, 400),
    "missing criteria": ({"eval_type": "agent_as_judge"}, 400),
    "missing expected_tool_calls": ({"eval_type": "reliability"}, 400),
    "bad members": ({"eval_type": "bogus", "input": "", "num_iterations": 0}, 422),
    "threshold out of range": ({"threshold": 11, "warmup_runs": 11}, 422),
    "wrong types": ({"expected_tool_calls": "multiply", "num_iterations": "many"}, 422),
    "missing input": ({"input": None}, 422),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused_runs_are_refused_alike(pair: Pair, case: str) -> None:
    change, status = REFUSED[case]
    body = {"eval_type": "accuracy", "input": "What is 2 + 2?", "expected_output": "4",
            "agent_id": "demo-agent", **change}  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    real, _ = pair.call("POST", "/eval-runs", body)
    assert real.status == status, real.body


@pytest.mark.parametrize(
    ("raw", "body"),
    [(b"not json", MISSING), (None, MISSING), (None, ["a", "list"]), (None, {})],
)
def test_bodies_that_are_not_an_eval_are_refused_alike(
    pair: Pair, raw: bytes | None, body: Any
) -> None:
    real, _ = pair.call("POST", "/eval-runs", body, raw=raw)
    assert real.status == 422


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?db_id=nope", 404),
        ("?table=" + TABLE, 400),
        (f"?db_id={AGNO_DB_ID}&table=nope", 404),
        (f"?db_id={AGNO_DB_ID}", 200),
        (f"?db_id={AGNO_DB_ID}&table={TABLE}", 200),
    ],
)
def test_database_and_table_are_checked_alike(pair: Pair, query: str, status: int) -> None:
    pair.call("POST", "/eval-runs", {**VALID_RUNS["performance"], "name": unique("evalq_db")})
    real, _ = pair.call("POST", "/eval-runs" + query, VALID_RUNS["performance"])
    assert real.status == status
    listed, _ = pair.call("GET", "/eval-runs" + query)
    assert listed.status == status


def test_lists_page_and_filter_alike(pair: Pair) -> None:
    for _ in range(3):
        pair.call(
            "POST", "/eval-runs", {**VALID_RUNS["accuracy-agent"], "name": unique("evalq_page")}
        )
    first, emulated_first = pair.call("GET", "/eval-runs?limit=2&page=1")
    assert len(first.body["data"]) == len(emulated_first.body["data"]) == 2
    assert first.body["meta"]["total_pages"] >= 2
    assert emulated_first.body["meta"]["total_pages"] >= 2
    pair.call("GET", "/eval-runs?limit=2&page=2")
    beyond, emulated_beyond = pair.call("GET", "/eval-runs?limit=2&page=9999")
    assert beyond.body["data"] == emulated_beyond.body["data"] == []
    assert beyond.body["meta"]["total_count"] == emulated_beyond.body["meta"]["total_count"]
    for query in (
        "?agent_id=demo-agent&sort_by=created_at&sort_order=asc",
        "?eval_types=accuracy,performance&limit=5",
        "?type=team",
        "?team_id=support-team",
        "?model_id=gpt-4o-mini",
        "?sort_by=name&sort_order=desc",
    ):
        pair.call("GET", "/eval-runs" + query)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?eval_types=accuracy,bad", 422),
        ("?type=robot", 422),
        ("?limit=0", 422),
        ("?limit=many", 422),
        ("?sort_order=up", 422),
        ("?page=0", 500),
    ],
)
def test_bad_list_queries_are_refused_alike(pair: Pair, query: str, status: int) -> None:
    real, _ = pair.call("GET", "/eval-runs" + query)
    assert real.status == status


def test_get_rename_and_bulk_delete_alike(pair: Pair) -> None:
    body = {**VALID_RUNS["reliability-agent"], "name": unique("evalq_life")}
    real, emulated = pair.call("POST", "/eval-runs", body)
    ids = (real.body["id"], emulated.body["id"])

    def on_both(method: str, path: str, payload: Any = MISSING) -> tuple[Answer, Answer]:
        answers = []
        for client, run_id in zip((pair.real, pair.emulated), ids, strict=True):
            options = {} if payload is MISSING else {"json": payload}
            response = client.request(method, path.format(id=run_id), headers=_auth(), **options)
            answers.append(
                Answer(response.status_code, response.json() if response.content else None)
            )
        assert answers[0].status == answers[1].status, answers
        assert not shape_mismatches(answers[0].body, answers[1].body)
        return answers[0], answers[1]

    renamed, emulated_renamed = on_both("PATCH", "/eval-runs/{id}", {"name": "evalq_renamed"})
    assert renamed.status == 200
    assert renamed.body["name"] == emulated_renamed.body["name"] == "evalq_renamed"
    assert on_both("PATCH", "/eval-runs/{id}", {"name": ""})[0].status == 422
    assert on_both("PATCH", "/eval-runs/{id}", {})[0].status == 422
    assert on_both("GET", "/eval-runs/{id}")[0].status == 200
    deleted, _ = on_both("DELETE", "/eval-runs", None)  # no body
    assert deleted.status == 422
    ghosts = ["ghost-1", str(uuid.uuid4())]
    gone = [pair.real, pair.emulated]
    for client, run_id in zip(gone, ids, strict=True):
        response = client.request("DELETE", "/eval-runs", json={"eval_run_ids": [run_id, *ghosts]},
                                  headers=_auth())  # fmt: skip
        assert (response.status_code, response.content) == (204, b"")
    assert on_both("GET", "/eval-runs/{id}")[0].status == 404
    assert on_both("PATCH", "/eval-runs/{id}", {"name": "again"})[0].status == 404


def test_unknown_runs_and_empty_deletes_alike(pair: Pair) -> None:
    assert pair.call("GET", "/eval-runs/ghost")[0].status == 404
    assert pair.call("PATCH", "/eval-runs/ghost", {"name": "x"})[0].status == 404
    assert pair.call("DELETE", "/eval-runs", {"eval_run_ids": []})[0].status == 422
    assert pair.call("DELETE", "/eval-runs", {"eval_run_ids": ["ghost"]})[0].status == 204
    assert pair.call("GET", "/no-such-route")[0].status == 404


@pytest.mark.parametrize("key", [None, "wrong-key"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/eval-runs", MISSING),
        ("POST", "/eval-runs", VALID_RUNS["accuracy-agent"]),
        ("POST", "/eval-runs", {"eval_type": "bogus"}),
        ("GET", "/eval-runs/ghost", MISSING),
        ("DELETE", "/eval-runs", {"eval_run_ids": ["ghost"]}),
        ("GET", "/no-such-route", MISSING),
    ],
)
def test_a_missing_or_wrong_key_is_refused_alike(
    pair: Pair, key: str | None, method: str, path: str, body: Any
) -> None:
    real, _ = pair.call(method, path, body, key=key)
    assert real.status == 401


def test_evalqs_client_works_against_the_real_agentos(agentos_server: AgentOSServer) -> None:
    """The production client, unchanged, against the oracle: run, read, rename, list,
    bulk-delete, and a wrong key."""
    from api_contracts import AgnoEvaluation, EvaluationRequest
    from api_contracts.examples import sample_agno_request

    request = EvaluationRequest.model_validate(
        sample_agno_request(evaluation={**VALID_RUNS["accuracy-agent"], "db_id": AGNO_DB_ID})
    )
    evaluation = request.evaluation_of(AgnoEvaluation)
    name = unique("evalq_client")
    client = AgnoClient(agentos_server.url, AGNO_TEST_KEY)
    try:
        run = client.run_eval(evaluation, timeout=120, name=name)
        ref = RunRef(run["id"], AGNO_DB_ID)
        assert client.get_run(ref)["name"] == name
        assert client.rename_run(ref, name + "_x")["name"] == name + "_x"
        listed = client.list_runs(db_id=AGNO_DB_ID, filters={"agent_id": "demo-agent"})
        assert run["id"] in {r["id"] for r in listed}
        assert client.delete_runs([ref, RunRef("ghost", AGNO_DB_ID)]) == 1
        with pytest.raises(RemoteJobNotFound):
            client.get_run(ref)
    finally:
        client.close()
    wrong = AgnoClient(agentos_server.url, "not-the-key")
    with pytest.raises(PermanentError) as caught:
        wrong.list_runs()
    assert caught.value.reason == "unauthorized"
    assert "not-the-key" not in str(caught.value)
    wrong.close()
