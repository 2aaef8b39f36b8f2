"""The reliable transport's pure parts (its fetch runs against a real redis-server in
tests/integration/test_reliable_fetch.py: fakeredis's Lua has no ``redis.sha1hex``)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from worker.runtime.broker import (
    UNREADABLE_HEADER,
    problem_with,
    require_blmove,
    restorable,
    unreadable_envelope,
)


class FakeInfo:
    def __init__(self, reply: Any) -> None:
        self.reply = reply

    def info(self, section: str) -> Any:
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.mark.parametrize("version", ["6.2.0", "7.0.15", "7.2.4", "10.0.1"])
def test_servers_with_blmove_pass(version):
    require_blmove(FakeInfo({"redis_version": version}))


@pytest.mark.parametrize("version", ["5.0.14", "6.0.20"])
def test_an_older_server_is_refused_with_what_to_do(version):
    with pytest.raises(RuntimeError, match="EVALQ_BROKER_RELIABLE_FETCH=false"):
        require_blmove(FakeInfo({"redis_version": version}))


@pytest.mark.parametrize("reply", [PermissionError("INFO renamed"), {}, {"redis_version": "x"}])
def test_a_server_that_does_not_say_is_given_the_benefit_of_the_doubt(reply):
    require_blmove(FakeInfo(reply))


def test_a_substitute_envelope_carries_the_raw_item_and_why():
    item = b"\xff not an envelope \x00"
    envelope = unreadable_envelope(item, "evals.requests", "no properties", "tag-1")
    assert base64.b64decode(envelope["body"]) == item
    assert envelope["headers"] == {UNREADABLE_HEADER: "no properties"}
    assert envelope["properties"]["delivery_tag"] == "tag-1"
    assert envelope["properties"]["delivery_info"] == {
        "exchange": "",
        "routing_key": "evals.requests",
    }


def _good(tag: str = "t1") -> dict[str, Any]:
    return {
        "body": "e30=",
        "headers": {"task": "x"},
        "properties": {"delivery_tag": tag, "delivery_info": {"exchange": "", "routing_key": "q"}},
    }


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (_good(), None),
        ({**_good(), "headers": None}, "headers that are not an object"),
        ({**_good(), "headers": []}, "headers that are not an object"),
        ({"body": "e30="}, "no properties"),
        (_good(tag="t\ud800"), "a delivery_tag that Python reads otherwise than Redis"),
        ({**_good(), "properties": {"delivery_tag": "t1"}}, "no delivery_info"),
        (["a", "list"], "not a JSON object"),
    ],
)
def test_what_kombu_could_not_deliver_and_restore_is_named(payload, problem):
    found = problem_with(payload, "t1")
    assert found == problem or (problem is not None and found.startswith(problem))


def test_a_record_that_is_no_record_at_all_still_restores_without_raising():
    message, exchange, routing_key = restorable(b"\xff garbage", "t1")
    assert base64.b64decode(message["body"]) == b"\xff garbage"
    assert (exchange, routing_key) == ("", "")


def test_a_restorable_record_is_taken_as_it_is():
    record = json.dumps([_good(), "ex", "q"]).encode()
    assert restorable(record, "t1") == (_good(), "ex", "q")


@pytest.mark.parametrize(
    "item",
    [
        json.dumps(_good()).replace('"headers": {"task": "x"}', '"n": 0x10').encode(),
        json.dumps({**_good(), "headers": None}).encode(),
        b'{"broken": ',
        # kombu's loads turns these into objects, and fails on bad values.
        json.dumps({**_good(), "headers": {"d": {"__type__": "decimal", "__value__": "x"}}}),
        json.dumps({**_good(), "headers": {"u": {"__type__": "uuid", "__value__": 5}}}),
    ],
)
def test_an_unrestorable_record_comes_back_as_a_substitute_of_its_item(item):
    item = item.encode() if isinstance(item, str) else item
    record = b"[" + item + b', "ex", "rk.1"]'
    message, exchange, routing_key = restorable(record, "t1")
    assert (exchange, routing_key) == ("ex", "rk.1")  # routed as the original was
    assert message["properties"]["delivery_info"] == {"exchange": "ex", "routing_key": "rk.1"}
    assert base64.b64decode(message["body"]) == item
    assert message["properties"]["delivery_tag"] == "t1"
    assert "not restorable" in message["headers"][UNREADABLE_HEADER]
