"""A target's assumed role: its credentials come from STS (the emulator's AssumeRole) and
are refreshed by botocore before they expire, with no restart and no failed call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import botocore.credentials
import pytest

from evalq_emulators.agentcore import EmulatorConfig, EmulatorServer
from worker.backends.agentcore.client import make_client
from worker.settings import Settings
from worker.targets.config import TargetSpec

#: botocore refreshes credentials that expire within 15 minutes: these enter that window
#: two seconds after they are issued.
LIFETIME = 15 * 60 + 2


@pytest.fixture
def account(clock) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(read_tps=1000.0, sts_credential_seconds=LIFETIME)
    with EmulatorServer(config, clock=clock, sleep=clock.sleep) as server:
        yield server


@pytest.fixture
def botocore_now(clock, monkeypatch) -> Callable[[], datetime]:
    """botocore's clock (when its credentials need a refresh) on the test's."""

    def now() -> datetime:
        return datetime.fromtimestamp(clock(), tz=UTC)

    monkeypatch.setattr(botocore.credentials, "_local_now", now)
    return now


def _client_of_a_role(account: EmulatorServer) -> Any:
    """A boto3 client of a target whose role is assumed through the emulator's STS."""
    settings = Settings(aws_access_key_id="base", aws_secret_access_key="base")  # type: ignore[arg-type]
    target = TargetSpec(
        name="other-account",
        region="us-east-1",
        endpoint_url=account.url,
        sts_endpoint_url=account.url,
        role_arn="arn:aws:iam::111111111111:role/evalq",
        external_id="evalq-test",
    ).resolve(settings)
    return make_client(settings, target)


def test_a_targets_role_is_assumed_and_refreshed_before_it_expires(account, clock, botocore_now):
    client = _client_of_a_role(account)
    # The credentials' own clock, bound when botocore made them.
    client._request_signer._credentials._time_fetcher = botocore_now

    calls = 0
    for _ in range(20):  # 4 s on the clock
        client.list_batch_evaluations(maxResults=1)  # raises if a key was refused
        calls += 1
        clock.advance(0.2)

    sts = account.state.stats()["sts"]
    temporary = {key: n for key, n in sts["calls_by_key"].items() if key.startswith("ASIA")}
    assert sts["assume_role_calls"] >= 2
    assert len(temporary) >= 2  # the calls moved on to the refreshed credentials
    assert sum(temporary.values()) == calls  # every call was signed by an assumed role
    assert "base" not in sts["calls_by_key"]


def test_assumed_credentials_stay_valid_through_an_emulator_reset(account):
    # As on AWS, a reset of the emulated account does not revoke issued credentials.
    client = _client_of_a_role(account)
    client.list_batch_evaluations(maxResults=1)

    account.state.reset()

    client.list_batch_evaluations(maxResults=1)  # ExpiredTokenException if forgotten
    sts = account.state.stats()["sts"]
    assert sts["assume_role_calls"] == 0  # counters start again; the key was kept
    assert sum(n for key, n in sts["calls_by_key"].items() if key.startswith("ASIA")) == 1
