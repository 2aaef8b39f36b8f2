"""``evalq evaluator show`` as ops run it: a subprocess against the emulator over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

from evalq_emulators.agentcore import EmulatorServer
from evalq_emulators.processes import evalq_command

from .test_emulator_contract import wait_for
from .test_emulator_evaluators import JUDGE, make_control_client, online_config


def evalq(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "EVALQ_AGENTCORE_CONTROL_ENDPOINT_URL": url,
        "EVALQ_AWS_ACCESS_KEY_ID": "x",
        "EVALQ_AWS_SECRET_ACCESS_KEY": "x",
        "COLUMNS": "200",
    }
    return subprocess.run(
        evalq_command(*args), env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_show_a_locked_custom_evaluator(make_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = make_emulator()
    cp = make_control_client(emulator.url)
    evaluator_id = cp.create_evaluator(
        evaluatorName="grounded", evaluatorConfig=JUDGE, level="SESSION", description="grounding"
    )["evaluatorId"]
    wait_for(lambda: cp.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE")
    online_config(cp, "prod_watch", [evaluator_id])

    as_json = evalq(emulator.url, "evaluator", "show", evaluator_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["evaluatorId"] == evaluator_id
    assert body["status"] == "ACTIVE"
    assert body["lockedForModification"] is True
    assert body["evaluatorConfig"] == JUDGE
    assert "T" in body["createdAt"]  # ISO 8601

    table = evalq(emulator.url, "evaluator", "show", evaluator_id)
    assert table.returncode == 0, table.stderr
    for text in (
        evaluator_id,
        "grounded",
        "ACTIVE",
        "lockedForModification",
        "True",
        "judge-model-v1",
    ):
        assert text in table.stdout


def test_show_a_builtin_and_an_unknown_evaluator(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = make_emulator()
    builtin = evalq(emulator.url, "evaluator", "show", "Builtin.Helpfulness", "--json")
    assert builtin.returncode == 0, builtin.stderr
    assert json.loads(builtin.stdout)["evaluatorType"] == "Builtin"
    missing = evalq(emulator.url, "evaluator", "show", "nobody-abcdefghij")
    assert missing.returncode == 1
    assert "Evaluator nobody-abcdefghij not found" in missing.stdout
