"""The reliable fetch (worker/broker.py) on a real redis-server: a consumer killed at any
moment leaves its message in the queue or in kombu's unacked hash, from where the
visibility-timeout restore brings it back; an item that is no kombu envelope arrives as a
substitute carrying its raw bytes; and otherwise it delivers what kombu's BRPOP delivers,
in the same order."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport.redis import Transport as StockTransport

from worker.dead_letters.messages import OVERSIZED_HEADER, UNREADABLE_HEADER
from worker.runtime.broker import (
    ENVELOPE_BYTES,
    SCRIPT_KEEPS_BYTES,
    ReliableRedisTransport,
    max_item_bytes,
)
from worker.runtime.connections import broker_settings
from worker.settings import Settings

QUEUES = ["alpha", "beta", "gamma"]


@pytest.fixture
def url(clean_redis) -> str:
    return f"{clean_redis.url}/0"


@pytest.fixture
def broker(url) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(url)
    yield client
    client.close()


def _publish(url: str, queue: str, body: Any, **options: Any) -> None:
    with Connection(url) as conn:
        conn.Producer().publish(
            body, routing_key=queue, declare=[Queue(queue, Exchange(queue), queue)], **options
        )


@contextlib.contextmanager
def _consumer(
    url: str,
    queues: list[str],
    callback: Any,
    transport: Any = ReliableRedisTransport,
    **options: Any,
) -> Iterator[Connection]:
    """A connection consuming ``queues`` into ``callback(body, message)``."""
    declared = [Queue(q, Exchange(q), q) for q in queues]
    with (
        Connection(url, transport=transport, transport_options=options) as conn,
        conn.Consumer(declared, callbacks=[callback], accept=["json", "application/octet-stream"]),
    ):
        yield conn


def _consume(url: str, queues: list[str], count: int, transport: Any, **options: Any) -> list[Any]:
    """Messages (acked) in the order a consumer on ``queues`` got them."""
    got: list[Any] = []
    keep = lambda body, message: (got.append(message), message.ack())  # noqa: E731
    with _consumer(url, queues, keep, transport, **options) as conn:
        deadline = time.monotonic() + 20
        while len(got) < count and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.5)
    return got


def _drain_idle(conn: Connection, times: int) -> None:
    for _ in range(times):
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.3)


def _fetch_then_die(url: str, transport: Any, broker: redis.Redis, queue: str) -> None:
    """Start a fetch as the poller does, let Redis serve it, then drop the connection
    without reading the reply: what a worker SIGKILLed in that window leaves behind."""
    with Connection(url, transport=transport) as conn:
        channel = conn.channel()
        Queue(queue, Exchange(queue), queue)(channel).declare()
        channel.basic_consume(queue, no_ack=False, callback=lambda message: None, consumer_tag="c")
        conn.transport.cycle._register_BRPOP(channel)  # sends the fetch
        deadline = time.monotonic() + 5
        while broker.llen(queue) and time.monotonic() < deadline:
            time.sleep(0.01)
        channel.client.connection.disconnect()
        channel._in_poll = None


def test_stock_kombu_loses_a_message_popped_by_a_consumer_that_died(url, broker):
    """Why worker/broker.py exists. If kombu ever records the pop atomically, this fails,
    and the reliable channel can go."""
    _publish(url, "alpha", {"n": 1})
    _fetch_then_die(url, StockTransport, broker, "alpha")
    assert broker.llen("alpha") == 0
    assert broker.hlen("unacked") == 0  # the message is nowhere


def test_a_message_popped_by_a_consumer_that_died_is_restored(url, broker):
    _publish(url, "alpha", {"n": 1})
    _fetch_then_die(url, ReliableRedisTransport, broker, "alpha")
    assert broker.llen("alpha") == 0
    assert broker.hlen("unacked") == 1
    assert broker.zcard("unacked_index") == 1

    # Another worker's periodic restore, once the visibility timeout has passed.
    with Connection(url, transport=ReliableRedisTransport,
                    transport_options={"visibility_timeout": 0}) as conn:  # fmt: skip
        conn.channel().qos.restore_visible(num=10, interval=1)
    assert broker.hlen("unacked") == 0

    (message,) = _consume(url, ["alpha"], 1, ReliableRedisTransport)
    assert message.payload == {"n": 1}
    assert message.delivery_info["redelivered"] is True


def test_an_unacked_message_is_recorded_before_the_consumer_sees_it(url, broker):
    _publish(url, "alpha", {"n": 1})
    seen: list[tuple[bool, bool]] = []

    def look(body: Any, message: Any) -> None:
        recorded = broker.hexists("unacked", message.delivery_tag)
        indexed = broker.zscore("unacked_index", message.delivery_tag) is not None
        seen.append((recorded, indexed))
        message.ack()

    with _consumer(url, ["alpha"], look) as conn:
        conn.drain_events(timeout=5)
    assert seen == [(True, True)]
    assert broker.hlen("unacked") == 0
    assert broker.zcard("unacked_index") == 0


def _envelope(tag: str, drop: str = "", body: str | None = None, headers: bytes = b"{}") -> bytes:
    """A kombu envelope; ``headers`` is put in as raw JSON text (to break it)."""
    properties = {
        "body_encoding": "base64",
        "delivery_tag": tag,
        "delivery_info": {"exchange": "alpha", "routing_key": "alpha"},
    }
    properties.pop(drop, None)
    return (
        json.dumps(
            {
                "body": body or base64.b64encode(b'{"ok": 1}').decode(),
                "content-type": "application/json",
                "content-encoding": "utf-8",
                "headers": {},
                "properties": properties,
            }
        )
        .encode()
        .replace(b'"headers": {}', b'"headers": ' + headers)
    )


BAD_TAB = b'{"x": "a\tb"}'
UNUSABLE = [  # (id, item, why it is unusable)
    ("not JSON", b"garbage {", "not a JSON object"),
    ("control characters", b"garbage \x00\x01", "not a JSON object"),
    ("not UTF-8", b"\xff\xfe\xfd", "not a JSON object"),
    ("a JSON list", b'["a", 1]', "no properties"),
    ("a bare request", json.dumps({"request": {"request_id": "r"}}).encode(), "no properties"),
    ("no delivery tag", _envelope("t", drop="delivery_tag"), "no delivery_tag"),
    ("no delivery info", _envelope("t", drop="delivery_info"), "no delivery_info"),
    ("headers that are null", _envelope("t-null", headers=b"null"), "headers that are not"),
    # cjson reads these, Python's json or kombu do not: the substitute is made in Python.
    ("a body that is not base64", _envelope("t-b64", body="abc"), "cannot be decoded"),
    ("a control character", _envelope("t-ctrl", headers=b'{"x": "\x01"}'), "cannot be decoded"),
    ("a raw tab in a string", _envelope("t-tab", headers=BAD_TAB), "cannot be decoded"),
    ("a hexadecimal number", _envelope("t-hex", headers=b'{"n": 0x10}'), "cannot be decoded"),
    ("a lone surrogate tag", _envelope("t\ud800"), "a delivery_tag that Python reads otherwise"),
]


@pytest.mark.parametrize(
    ("item", "why"), [case[1:] for case in UNUSABLE], ids=[case[0] for case in UNUSABLE]
)
def test_an_item_that_is_no_envelope_arrives_as_a_substitute_with_its_raw_bytes(
    url, broker, item, why
):
    broker.lpush("alpha", item)
    _publish(url, "alpha", {"after": "it"})
    messages = _consume(url, ["alpha"], 2, ReliableRedisTransport)
    substitute, after = messages
    assert why in substitute.headers[UNREADABLE_HEADER]
    assert substitute.body == item
    assert after.payload == {"after": "it"}
    assert broker.hlen("unacked") == 0
    assert broker.llen("alpha") == 0


def test_an_unusable_item_is_kept_in_the_unacked_hash_until_acked(url, broker):
    broker.lpush("alpha", b"not an envelope")
    _fetch_then_die(url, ReliableRedisTransport, broker, "alpha")
    (record,) = broker.hvals("unacked")
    payload, _exchange, routing_key = json.loads(record)
    assert routing_key == "alpha"
    assert base64.b64decode(payload["body"]) == b"not an envelope"
    assert UNREADABLE_HEADER in payload["headers"]


def test_a_lone_surrogate_escape_in_a_header_does_not_make_a_message_unreadable(url, broker):
    # Celery's kwargsrepr header can carry one; Redis's cjson refuses it, Python's json not.
    _publish(url, "alpha", {"n": 1}, headers={"kwargsrepr": "lone \ud800 surrogate"})
    (message,) = _consume(url, ["alpha"], 1, ReliableRedisTransport)
    assert UNREADABLE_HEADER not in message.headers
    assert message.payload == {"n": 1}


def _mixed_traffic(url: str) -> list[Any]:
    sent = []
    for i in range(30):
        queue = QUEUES[i % 3] if i % 5 else "alpha"
        priority = [0, 9, 3, 6][i % 4]
        body = {"i": i, "queue": queue, "priority": priority}
        _publish(url, queue, body, priority=priority)
        sent.append(body)
    return sent


def test_it_delivers_what_stock_kombu_delivers_in_the_same_order(url, broker):
    sent = _mixed_traffic(url)
    stock = [m.payload for m in _consume(url, QUEUES, len(sent), StockTransport)]
    _mixed_traffic(url)
    reliable = [m.payload for m in _consume(url, QUEUES, len(sent), ReliableRedisTransport)]
    assert sorted(stock, key=lambda b: b["i"]) == sent
    assert reliable == stock
    assert broker.hlen("unacked") == 0


def test_an_idle_consumer_gets_messages_on_every_queue(url, broker):
    got: list[Any] = []
    keep = lambda body, message: (got.append(body), message.ack())  # noqa: E731
    with _consumer(url, QUEUES, keep, fetch_wait=0.2) as conn:
        for queue in [*QUEUES, *reversed(QUEUES)]:
            for _ in range(3):  # idle: a few empty fetches, each after a wait
                with pytest.raises(TimeoutError):
                    conn.drain_events(timeout=0.3)
            _publish(url, queue, {"to": queue})
            conn.drain_events(timeout=5)
    assert got == [{"to": q} for q in [*QUEUES, *reversed(QUEUES)]]


def test_a_global_key_prefix_applies_to_queues_and_the_unacked_hash(url, broker):
    options = {"global_keyprefix": "team:"}
    with Connection(url, transport_options=options) as conn:
        queue = Queue("alpha", Exchange("alpha"), "alpha")
        conn.Producer().publish({"n": 1}, routing_key="alpha", declare=[queue])
    assert broker.llen("team:alpha") == 1
    seen: list[bool] = []

    def look(body: Any, message: Any) -> None:
        seen.append(broker.hexists("team:unacked", message.delivery_tag))
        message.ack()

    with _consumer(url, ["alpha"], look, **options) as conn:
        conn.drain_events(timeout=5)
    assert seen == [True]
    assert broker.hlen("team:unacked") == 0
    assert broker.llen("team:alpha") == 0


def test_records_python_cannot_restore_as_they_are_come_back_as_substitutes(url, broker):
    """A worker died after the script recorded an item Python reads otherwise (cjson took
    it). The restore sweep must bring it back as a substitute, and go on to the next."""
    unreadable = _envelope("t-hex", headers=b'{"n": 0x10}')
    null_headers = _envelope("t-null", headers=b"null")
    broker.hset("unacked", "t-hex", b"[" + unreadable + b',"","alpha"]')
    broker.hset("unacked", "t-null", b"[" + null_headers + b', "", "alpha"]')
    broker.hset("unacked", "t-good", json.dumps([json.loads(_envelope("t-good")), "", "alpha"]))
    broker.zadd("unacked_index", {"t-hex": 1.0, "t-null": 2.0, "t-good": 3.0})

    options = {"visibility_timeout": 0}
    with Connection(url, transport=ReliableRedisTransport, transport_options=options) as conn:
        conn.channel().qos.restore_visible(num=10, interval=1)
    assert broker.hlen("unacked") == 0
    assert broker.llen("alpha") == 3

    messages = _consume(url, ["alpha"], 3, ReliableRedisTransport)
    by_tag = {m.delivery_tag: m for m in messages}
    assert by_tag["t-good"].payload == {"ok": 1}
    assert by_tag["t-hex"].body == unreadable
    assert by_tag["t-null"].body == null_headers
    for tag in ("t-hex", "t-null"):
        assert "not restorable" in by_tag[tag].headers[UNREADABLE_HEADER]


def test_a_full_redis_refusing_the_idle_wait_still_delivers(url, broker):
    """A full noeviction Redis refuses BLMOVE (it may push) but runs the fetch script.
    (kombu's ack is refused there too, so messages are acked once memory is back.)"""
    got: list[Any] = []
    keep = lambda body, message: got.append(message)  # noqa: E731
    used = int(broker.info("memory")["used_memory"])
    try:
        with _consumer(url, ["alpha"], keep) as conn:
            with pytest.raises(TimeoutError):
                conn.drain_events(timeout=0.3)  # idle: the next fetch waits first
            _publish(url, "alpha", {"n": 1})
            broker.config_set("maxmemory-policy", "noeviction")
            broker.config_set("maxmemory", used // 2)
            conn.drain_events(timeout=5)
            with pytest.raises(TimeoutError):  # the reply stream is still in step
                conn.drain_events(timeout=1.2)
            broker.config_set("maxmemory", 0)
            _publish(url, "alpha", {"n": 2})
            conn.drain_events(timeout=5)
            for message in got:
                message.ack()
    finally:
        broker.config_set("maxmemory", 0)
    assert [m.payload for m in got] == [{"n": 1}, {"n": 2}]
    assert broker.hlen("unacked") == 0


def test_a_no_ack_consumer_leaves_no_record(url, broker):
    """``celery inspect`` reads its replies with no_ack: nothing to restore later."""
    got: list[Any] = []
    queue = Queue("replies", Exchange("replies-x", "direct"), "rk")
    with Connection(url, transport=ReliableRedisTransport) as conn:
        conn.Producer().publish({"ok": 1}, exchange=queue.exchange, routing_key="rk",
                                declare=[queue])  # fmt: skip
        with conn.Consumer([queue], callbacks=[lambda body, m: got.append(body)], no_ack=True):
            conn.drain_events(timeout=5)
    assert got == [{"ok": 1}]
    assert broker.hlen("unacked") == 0
    assert broker.zcard("unacked_index") == 0


def test_a_broker_that_refuses_every_wait_raises_instead_of_spinning(url, broker, clean_redis):
    """An ACL without blocking commands: kombu's BRPOP would be refused; so is our sleep."""
    broker.execute_command("ACL", "SETUSER", "noblock", "on", ">pw", "~*", "&*", "+@all",
                           "-@blocking")  # fmt: skip
    try:
        limited = f"redis://noblock:pw@127.0.0.1:{clean_redis.port}/0"
        # Idle, then BLMOVE refused (sleep from now on), then the sleep refused too.
        with (
            _consumer(limited, ["alpha"], lambda body, message: message.ack()) as conn,
            pytest.raises(redis.ResponseError, match="'brpop'"),
        ):
            _drain_idle(conn, times=10)
    finally:
        broker.execute_command("ACL", "DELUSER", "noblock")


def test_closing_a_channel_of_a_released_connection_keeps_the_message_and_raises_no_bug(
    url, broker
):
    # Mid-failover, Celery's consumer releases its connection and kombu then closes the
    # channel, whose restore of unacked messages finds the transport's client gone. kombu's
    # AttributeError there killed the worker; a connection error is what kombu ignores.
    _publish(url, "q", {"n": 1})
    held: list[Any] = []
    conn = Connection(url, transport=ReliableRedisTransport)
    consumer = conn.Consumer([Queue("q", Exchange("q"), "q")],
                             callbacks=[lambda body, message: held.append(message)])  # fmt: skip
    consumer.consume()
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.5)
    assert len(held) == 1  # taken, not acked: in the unacked hash
    channel = conn.default_channel
    conn.transport.client = None  # what the release had done by then

    conn.maybe_close_channel(channel)  # raised AttributeError before

    assert broker.hlen("unacked") == 1  # still recorded, for the restore after the timeout


def _long_envelope(tag: str, body_bytes: int) -> bytes:
    """A well-formed envelope whose JSON body is ``body_bytes`` long."""
    body = json.dumps({"pad": "x" * (body_bytes - 11)}).encode()
    return _envelope(tag, body=base64.b64encode(body).decode())


def test_an_item_longer_than_a_message_within_the_limits_arrives_unread_as_a_substitute(
    url, broker
):
    """fetch.lua decoded every item whole: 80 MiB held Redis for seconds and took the
    worker from 72 to 334 MB. A longer item than the limits allow is now only measured."""
    item = _long_envelope("t-long", 2 * 2**20)
    edge = _long_envelope("t-edge", 3000)
    longest = len(edge)  # as long as an item may be: read as it is
    broker.lpush("alpha", item)
    broker.lpush("alpha", edge)
    _publish(url, "alpha", {"after": "it"})
    substitute, at_the_limit, after = _consume(url, ["alpha"], 3, ReliableRedisTransport,
                                               max_item_bytes=longest)  # fmt: skip
    assert UNREADABLE_HEADER not in at_the_limit.headers
    assert at_the_limit.delivery_tag == "t-edge"
    assert substitute.headers[OVERSIZED_HEADER] == str(len(item))
    why = substitute.headers[UNREADABLE_HEADER]
    assert f"an item of {len(item)} bytes, longer than the {longest}" in why
    assert f"the first {SCRIPT_KEEPS_BYTES} of {len(item)} bytes kept" in why
    assert substitute.body == item[:SCRIPT_KEEPS_BYTES]
    assert substitute.delivery_tag != "t-long"  # its own tag was never read
    assert after.payload == {"after": "it"}
    assert broker.hlen("unacked") == 0
    assert broker.llen("alpha") == 0


def test_an_oversized_item_is_recorded_as_its_small_substitute(url, broker):
    broker.lpush("alpha", _long_envelope("t-long", 2 * 2**20))
    with Connection(url, transport=ReliableRedisTransport,
                    transport_options={"max_item_bytes": 64 * 1024}) as conn:  # fmt: skip
        channel = conn.channel()
        Queue("alpha", Exchange("alpha"), "alpha")(channel).declare()
        channel.basic_consume("alpha", no_ack=False, callback=lambda m: None, consumer_tag="c")
        conn.transport.cycle._register_BRPOP(channel)
        deadline = time.monotonic() + 5
        while broker.llen("alpha") and time.monotonic() < deadline:
            time.sleep(0.01)
        channel.client.connection.disconnect()
        channel._in_poll = None
    (record,) = broker.hvals("unacked")
    assert len(record) < 2 * SCRIPT_KEEPS_BYTES
    assert OVERSIZED_HEADER.encode() in record


def test_the_worker_settings_bound_the_items_the_fetch_decodes():
    settings = Settings(max_payload_bytes=300_000, max_header_bytes=20_000)
    options = broker_settings(settings)["broker_transport_options"]
    # The longest item a message within both limits can be: body base64, headers, envelope.
    assert options["max_item_bytes"] == 400_000 + 20_000 + ENVELOPE_BYTES
    assert max_item_bytes(settings) == options["max_item_bytes"]
