"""Reliable fetch for kombu's Redis transport: a message is never only in a worker's memory.

kombu pops a message with ``BRPOP`` and records it as unacknowledged with a second
command, so a worker killed between the two loses the message (kombu#305, celery#7950;
the chaos suite caught it). Worse, an item on the list that is not a kombu JSON envelope
makes the stock transport raise inside the event loop: the worker dies, the item is gone,
and the next worker dies on the next such item. And it decodes every item whole, inside
Redis (cjson) and then in the worker, however long: an 80 MiB item held Redis for seconds
and took the worker's memory from 72 to 334 MB.

``ReliableChannel`` replaces the pop with one Lua script (``scripts/fetch.lua``) that pops the
message *and* records it in kombu's own unacked hash and index, atomically. A worker
killed at any moment leaves the message in its queue or in the unacked hash, from where
kombu's visibility-timeout restore (run by every live worker) puts it back. An item that
is no usable envelope is recorded and delivered as a substitute: its raw bytes as the
body (base64) and an ``UNREADABLE_HEADER`` saying why, so the consumer can dead-letter it.
So is an item longer than any message within the size limits can be
(:func:`max_item_bytes`): the script checks its length before anything decodes it, keeps
its start, and adds an ``OVERSIZED_HEADER`` with its size (a ``payload_too_large``).
Python's json is stricter than Redis's cjson, so what the script let through is checked
again here (``problem_with``) and, if need be, replaced by a substitute under the same tag;
a record that a dead worker left unreplaced is turned into one when it is restored.

A message's ``delivery_info`` on Redis is whatever its sender wrote, so a producer that
may only push to ``evals.requests`` could name ``evals.control`` there: kombu's restore
would then put it on the control queue, and Celery would report it as delivered from
there. Here a message is recorded, restored and delivered as coming from the queue it
was popped from, whatever it says (docs/roles.md).

Lua cannot block. After a fetch found nothing, the next fetch is preceded, in the same
write, by ``BLMOVE q q RIGHT RIGHT wait`` on the queue that delivered last: it moves the
tail of ``q`` back onto the tail of ``q``, which changes nothing but blocks until ``q``
has a message or ``wait`` seconds (at most kombu's ``brpop_timeout``) have passed. A
message on the watched queue is fetched at once; one on another queue, or on a priority
list of the watched one, within ``wait``. Unlike ``BRPOP``, a push wakes every idle
worker watching that queue (each then runs one fetch that finds nothing or the message).
A Redis that refuses ``BLMOVE`` (a full ``noeviction`` one does, not the fetch) makes idle
fetches sleep on ``SLEEP_KEY`` instead for a while. Needs Redis >= 6.2 (``BLMOVE``).

Not covered: queues consumed with ``no_ack`` are fetched without a record (the consumer
chose at-most-once), and ``basic_get`` (a polling ``Queue.get``) keeps kombu's plain RPOP.
"""

from __future__ import annotations

import base64
import re
import time
from queue import Empty
from typing import Any

import redis
import structlog
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from worker.dead_letters.messages import OVERSIZED_HEADER, UNREADABLE_HEADER
from worker.lua import read_script
from worker.settings import Settings

log = structlog.stdlib.get_logger("evalq.broker")

#: Most raw bytes of an unusable item the script keeps (base64 in Lua costs ~0.4 ms/KiB of
#: Redis time); Python keeps all of them when it makes the substitute itself (the script
#: let through no item longer than ``max_item_bytes``).
SCRIPT_KEEPS_BYTES = 16 * 1024
#: Room in an item for kombu's envelope around the body and headers: its keys, content
#: type and encoding, and properties (delivery tag and info, priority, reply_to, ...).
ENVELOPE_BYTES = 4 * 1024
#: A list nothing is pushed to: a blocking pop on it is a plain sleep. Used in place of the
#: BLMOVE wait while Redis refuses that (a full ``noeviction`` server does, BRPOP not).
SLEEP_KEY = "_kombu.evalq.sleep"
#: How long a refused wait makes idle fetches sleep instead (seconds).
WAIT_REFUSED_SECONDS = 60.0

#: One fetch: the script is sent with every call (``EVAL``), since ``EVALSHA`` could meet
#: NOSCRIPT while two replies are pipelined.
FETCH_SCRIPT = read_script("worker.runtime", "fetch")


class ReliableQoS(kombu_redis.QoS):
    """kombu's QoS, minus the write the script already made, and with a restore that
    never fails on a record Python cannot read."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.take_recorded(delivery_tag):
            virtual.QoS.append(self, message, delivery_tag)  # bookkeeping only
        else:  # a substitute made here, or a message from basic_get's plain RPOP
            super().append(message, delivery_tag)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        # kombu's restore_by_tag, with restorable() in place of a bare loads().
        def restore_transaction(pipe: Any) -> None:
            record = pipe.hget(self.unacked_key, tag)
            pipe.multi()
            self._remove_from_indices(tag, pipe)
            if record:
                message, exchange, routing_key = restorable(record, bytes_to_str(tag))
                self.channel._do_restore_message(message, exchange, routing_key, pipe, leftmost)

        with self.channel.conn_or_acquire(client) as client:
            client.transaction(restore_transaction, self.unacked_key)


class ReliableChannel(kombu_redis.Channel):
    """kombu's Redis channel with an atomic pop-and-record instead of ``BRPOP``."""

    QoS = ReliableQoS

    #: Longest a message on a queue not being watched waits while the channel is idle
    #: (transport option ``fetch_wait``, seconds).
    fetch_wait = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.ack_emulation:
            raise ValueError("reliable fetch records into the unacked hash: keep ack_emulation")
        options = self.connection.client.transport_options
        self.fetch_wait = float(options.get("fetch_wait", self.fetch_wait))
        if not self.fetch_wait > 0:
            raise ValueError(f"fetch_wait must be positive, not {self.fetch_wait}")
        #: Longest item the fetch decodes (transport option ``max_item_bytes``; default:
        #: that of evalq's default limits); a longer one is delivered unread, as a substitute.
        default = max_item_bytes(Settings.model_construct())
        self.max_item_bytes = int(options.get("max_item_bytes", default))
        #: The last fetch found nothing, so the next one waits first.
        self._idle = False
        #: A wait was sent before the pending fetch, so its reply comes first.
        self._waiting = False
        #: The queue an idle fetch waits on: the one that delivered last.
        self._watched: str | None = None
        #: Until then, idle fetches sleep instead of waiting with BLMOVE (it was refused).
        self._wait_refused_until = 0.0
        #: The tag of the message being delivered, which the script already recorded.
        self._recorded_tag: str | None = None
        #: Queues consumed with no_ack (reply queues of `celery inspect`): nothing to record.
        self._no_ack_queues: set[str] = set()
        self._server_checked = False

    def take_recorded(self, delivery_tag: str) -> bool:
        """True (once) if the script recorded the message with this tag itself."""
        recorded, self._recorded_tag = self._recorded_tag == delivery_tag, None
        return recorded

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            # Celery's consumer, when the broker connection is lost (a failover), releases
            # the connection, and kombu then closes its channel, whose restore of unacked
            # messages would build a new pool from a connection already let go: kombu's
            # AttributeError there kills the worker. A connection error is what kombu
            # ignores there and Celery reconnects after; the messages stay in the unacked
            # hash, which every worker restores after the visibility timeout.
            raise redis.ConnectionError("the broker connection was already released")
        return super()._connparams(asynchronous=asynchronous)

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        no_ack = kwargs.get("no_ack", args[0] if args else False)
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        return super().basic_consume(queue, *args, **kwargs)

    # -- what the poller calls --------------------------------------------------------
    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if not self._server_checked:
            require_blmove(self.client)
            self._server_checked = True
        commands = [self._fetch_command(queues)]
        self._waiting = self._idle
        if self._waiting:
            commands.insert(0, self._wait_command(queues))
        connection = self.client.connection
        self._in_poll = connection
        # kombu's poller drops a connection whose reply is overdue from this time on.
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        connection.send_packed_command(connection.pack_commands(commands))

    def _brpop_read(self, **options: Any) -> bool:
        connection = self.client.connection
        try:
            try:
                wait_error = self._read_wait_reply(connection, **options)
                reply = self.client.parse_response(connection, "EVAL", **options)
            except self.connection_errors:
                # Disconnect so the next poll reconnects (as kombu's BRPOP read does).
                connection.disconnect()
                raise
            except self.ResponseError:
                raise  # both replies are read: refused as a BRPOP would have been
            except BaseException:
                connection.disconnect()  # a reply may be left unread: start afresh
                raise
            if wait_error is not None:
                raise wait_error
            self._idle = not reply
            if not reply:
                raise Empty()
            key, item, tag = (bytes_to_str(reply[0]), reply[1], bytes_to_str(reply[2]))
            queue = key[len(self.global_keyprefix or "") :].rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self._watched = queue
            envelope = self._envelope(item, queue, tag)
            # Delivered as from the queue it was popped from (the module docstring says why):
            # the consumer's guard decides by it which tasks may run.
            info = envelope["payload"]["properties"]["delivery_info"]
            info["exchange"], info["routing_key"] = "", queue
            self._recorded_tag = tag if envelope["recorded"] else None
            self.connection._deliver(envelope["payload"], queue)
            return True
        finally:
            self._recorded_tag = None
            self._in_poll = None  # type: ignore[assignment]
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)
            if flush_reauth is not None:
                flush_reauth()

    def _poll_error(self, type: str, **options: Any) -> None:
        if type != "BRPOP":
            super()._poll_error(type, **options)
            return
        # One or two replies may be pending: reconnect rather than guess. A message the
        # fetch took is in the unacked hash, and comes back through restore.
        self._waiting = False
        self._in_poll = None  # type: ignore[assignment]
        self.client.connection.disconnect()

    # -- helpers ----------------------------------------------------------------------
    def _key(self, list_key: str) -> str:
        return f"{self.global_keyprefix or ''}{list_key}"

    def _fetch_command(self, queues: list[str]) -> list[Any]:
        """EVAL of the fetch script over ``queues`` in kombu's BRPOP order (all queues at
        the highest priority first)."""
        lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        keys = [self._key(k) for k in (*lists, self.unacked_key, self.unacked_index_key)]
        names = [queue for _ in self.priority_steps for queue in queues]
        record = ["0" if queue in self._no_ack_queues else "1" for queue in names]
        return ["EVAL", FETCH_SCRIPT, len(keys), *keys, time.time(), UNREADABLE_HEADER,
                SCRIPT_KEEPS_BYTES, OVERSIZED_HEADER, self.max_item_bytes, *names,
                *record]  # fmt: skip

    def _wait_command(self, queues: list[str]) -> list[Any]:
        wait = min(self.fetch_wait, self.brpop_timeout or self.fetch_wait)
        if time.monotonic() < self._wait_refused_until:
            return ["BRPOP", self._key(SLEEP_KEY), wait]
        last = self._watched
        watched = self._key(last if last is not None and last in queues else queues[0])
        return ["BLMOVE", watched, watched, "RIGHT", "RIGHT", wait]

    def _read_wait_reply(self, connection: Any, **options: Any) -> Exception | None:
        """Read the wait's reply, if a wait was sent. Returns the error to raise once the
        fetch's reply is read too: none for a refused BLMOVE, which a full ``noeviction``
        Redis refuses but not the fetch (idle fetches then sleep instead for a while);
        the error itself if even that sleep is refused (a BRPOP would have been)."""
        if not self._waiting:
            return None
        self._waiting = False
        try:
            self.client.parse_response(connection, "BLMOVE", **options)
        except self.ResponseError as exc:
            refused: Exception = exc
            if time.monotonic() < self._wait_refused_until:
                return refused  # the sleep was refused too
            log.warning("broker refused the idle wait; sleeping instead", error=str(exc))
            self._wait_refused_until = time.monotonic() + WAIT_REFUSED_SECONDS
        return None

    def _envelope(self, item: bytes, queue: str, tag: str) -> dict[str, Any]:
        """``{"payload": envelope to deliver, "recorded": whether the script's record of
        it stands}``. What the script let through but Python cannot deliver or restore is
        replaced by a substitute under the same tag; kombu's append then overwrites the
        record with it."""
        try:
            payload = loads(bytes_to_str(item))
            problem = problem_with(payload, tag)
            if problem is None:
                # What kombu's Message does next, which fails on base64 that is not.
                if payload.get("body"):
                    self.decode_body(payload["body"], payload["properties"].get("body_encoding"))
                return {"payload": payload, "recorded": True}
        except Exception as exc:
            problem = f"cannot be decoded: {exc}"
        return {"payload": unreadable_envelope(item, queue, problem, tag), "recorded": False}


class ReliableRedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`ReliableChannel`. Use it as Celery's
    ``broker_transport`` with a ``redis://`` or ``rediss://`` broker URL."""

    Channel = ReliableChannel


class ReliableSentinelChannel(ReliableChannel, kombu_redis.SentinelChannel):
    """The reliable fetch on kombu's Sentinel channel: kombu's ``SentinelChannel`` only
    changes how the connection pool finds the primary (it asks the sentinels, again on
    every reconnection), so the fetch, the records and the restore are the same."""


class ReliableSentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with :class:`ReliableSentinelChannel`, for
    ``sentinel://`` URLs with the ``master_name`` transport option."""

    Channel = ReliableSentinelChannel


def max_item_bytes(settings: Settings) -> int:
    """The longest item on a queue's list that can hold a message within the limits: its
    body (at most ``max_payload_bytes``) base64-encoded, as kombu's envelope holds it, its
    headers at their cap, and the envelope around them. The fetch decodes nothing longer;
    the consumer's guard checks what it lets through exactly."""
    base64_body = 4 * -(-settings.max_payload_bytes // 3)
    return base64_body + settings.max_header_bytes + ENVELOPE_BYTES


def problem_with(payload: Any, tag: str) -> str | None:
    """Why kombu could not deliver and restore ``payload`` under ``tag`` (None if it can)."""
    if not isinstance(payload, dict):
        return "not a JSON object"
    if not isinstance(payload.get("headers", {}), dict):
        return "headers that are not an object"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "no properties"
    if properties.get("delivery_tag") != tag:
        return "a delivery_tag that Python reads otherwise than Redis"
    info = properties.get("delivery_info")
    if not (
        isinstance(info, dict)
        and isinstance(info.get("exchange"), str)
        and isinstance(info.get("routing_key"), str)
    ):
        return "no delivery_info exchange and routing_key in its properties"
    return None


#: The end of an unacked record: ``,"exchange","routing key"]``.
_RECORD_TAIL = re.compile(rb',\s*("(?:[^"\\]|\\.)*")\s*,\s*("(?:[^"\\]|\\.)*")\s*\]\s*\Z', re.S)


def restorable(record: bytes, tag: str) -> tuple[dict[str, Any], str, str]:
    """(message, exchange, routing key) of an unacked record, as kombu's restore takes
    them; never raises. A record Python cannot read or kombu cannot restore (its worker
    died before it replaced what the script let through) comes back as a substitute."""
    try:
        message, exchange, routing_key = loads(bytes_to_str(record))
        problem = problem_with(message, tag)
    except Exception as exc:  # kombu's loads also raises TypeError, decimal errors, ...
        problem = f"cannot be decoded: {exc}"
    if problem is None:
        return message, str(exchange), str(routing_key)
    log.warning("unacked record restored as a substitute", tag=tag, problem=problem)
    item, exchange, routing_key = record, "", ""
    tail = _RECORD_TAIL.search(record)
    if tail is not None:  # written by the script or by kombu: [item, exchange, routing key]
        try:
            exchange, routing_key = (str(loads(bytes_to_str(g)) or "") for g in tail.groups())
            item = record[1 : tail.start()]
        except Exception:
            log.warning("unacked record without a readable route", tag=tag)
    substitute = unreadable_envelope(item, routing_key, f"not restorable as it was: {problem}", tag)
    substitute["properties"]["delivery_info"]["exchange"] = exchange
    return substitute, exchange, routing_key


def require_blmove(client: Any) -> None:
    """Fail on the first fetch, with what to do, on a Redis without ``BLMOVE``."""
    try:
        version = client.info("server")["redis_version"]
        major, minor = (int(part) for part in version.split(".")[:2])
    except Exception:  # INFO refused or a version we cannot read: the fetch will tell
        return
    if (major, minor) < (6, 2):
        raise RuntimeError(
            f"the reliable fetch needs Redis >= 6.2 (BLMOVE); the broker runs {version}. "
            "Upgrade it, or set EVALQ_BROKER_RELIABLE_FETCH=false for kombu's own fetch."
        )


def unreadable_envelope(item: bytes, queue: str, why: str, tag: str) -> dict[str, Any]:
    """A kombu envelope carrying ``item`` (bytes that are no usable envelope) as its body."""
    return {
        "body": base64.b64encode(item).decode(),
        "content-type": "application/octet-stream",
        "content-encoding": "binary",
        "headers": {UNREADABLE_HEADER: why},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": tag,
            "priority": 0,
            "delivery_info": {"exchange": "", "routing_key": queue},
        },
    }
