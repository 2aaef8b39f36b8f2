"""Reliable fetch for kombu's Redis transport: a message is never only in a worker's memory.

kombu pops a message with ``BRPOP`` and records it as unacknowledged with a second
command, so a worker killed between the two loses the message (kombu#305, celery#7950;
the chaos suite caught it). Worse, an item on the list that is not a kombu JSON envelope
makes the stock transport raise inside the event loop: the worker dies, the item is gone,
and the next worker dies on the next such item.

``ReliableChannel`` replaces the pop with one Lua script that pops the message *and*
records it in kombu's own unacked hash and index, atomically. A worker killed at any
moment leaves the message in its queue or in the unacked hash, from where kombu's
visibility-timeout restore (run by every live worker) puts it back. An item that is not
a usable envelope is recorded as a substitute envelope: its raw bytes as the body
(base64) and an ``UNREADABLE_HEADER`` saying why, so the consumer can dead-letter it.

Lua cannot block. After a fetch found nothing, the next fetch is preceded by
``BLMOVE q q RIGHT RIGHT wait`` on the queue that delivered last: it moves the tail of
``q`` back onto the tail of ``q``, which changes nothing but blocks until ``q`` has a
message or ``wait`` seconds have passed. Both commands go out in one write. A message on
the watched queue is fetched at once, one on another queue within ``wait``.
Needs Redis >= 6.2 (``BLMOVE``).
"""

from __future__ import annotations

import base64
import time
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

#: Header of a substitute envelope; its value says why the original was unusable.
UNREADABLE_HEADER = "x-evalq-unreadable"

#: KEYS: the queue lists in fetch order, then the unacked hash and its index.
#: ARGV: the time to index the message under, UNREADABLE_HEADER, then the queue name of
#: each list. Returns {list key, envelope, delivery tag} or false.
FETCH_SCRIPT = r"""
local unacked, index = KEYS[#KEYS - 1], KEYS[#KEYS]
local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

local function base64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = string.byte(data, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local digits = {math.floor(n / 262144), math.floor(n / 4096) % 64,
                    math.floor(n / 64) % 64, n % 64}
    local quad = ''
    for d = 1, 4 do quad = quad .. B64:sub(digits[d] + 1, digits[d] + 1) end
    if not b then quad = quad:sub(1, 2) .. '==' elseif not c then quad = quad:sub(1, 3) .. '=' end
    out[#out + 1] = quad
  end
  return table.concat(out)
end

-- cjson refuses a \uD800-\uDFFF escape that Python's json accepts (lone surrogates, as
-- Celery's kwargsrepr header can carry). Only the properties are read here, so every
-- such escape (an odd run of backslashes before the u) becomes a '?'.
local function without_surrogate_escapes(item)
  return (item:gsub('(\\+)(u[dD][89aAbBcCdDeEfF]%x%x)', function(slashes, escape)
    if #slashes % 2 == 1 then return slashes:sub(2) .. '?' end
  end))
end

-- Why the item cannot be restored and delivered as it is (nil if it can).
local function unusable(item)
  local ok, message = pcall(cjson.decode, without_surrogate_escapes(item))
  if not ok or type(message) ~= 'table' then return 'not a JSON object', nil end
  local properties = message.properties
  if type(properties) ~= 'table' then return 'no properties', nil end
  local info = properties.delivery_info
  if type(properties.delivery_tag) ~= 'string' or properties.delivery_tag == '' then
    return 'no delivery_tag in its properties', nil
  end
  if type(info) ~= 'table' or type(info.exchange) ~= 'string'
      or type(info.routing_key) ~= 'string' then
    return 'no delivery_info exchange and routing_key in its properties', nil
  end
  return nil, properties
end

for i = 1, #KEYS - 2 do
  local item = redis.call('RPOP', KEYS[i])
  if item then
    local why, properties = unusable(item)
    local exchange, routing_key, tag
    if why then
      tag = 'unreadable-' .. redis.sha1hex(item)
      exchange, routing_key = '', ARGV[2 + i]  -- the queue's name: restore routes it there
      item = cjson.encode({
        body = base64(item), ['content-type'] = 'application/octet-stream',
        ['content-encoding'] = 'binary', headers = {[ARGV[2]] = why},
        properties = {body_encoding = 'base64', delivery_tag = tag, priority = 0,
                      delivery_info = {exchange = exchange, routing_key = routing_key}}})
    else
      tag = properties.delivery_tag
      exchange = properties.delivery_info.exchange
      routing_key = properties.delivery_info.routing_key
    end
    redis.call('ZADD', index, ARGV[1], tag)
    -- What kombu's QoS.append writes: [message, exchange, routing_key].
    local record = '[' .. item .. ',' .. cjson.encode(exchange) .. ','
                   .. cjson.encode(routing_key) .. ']'
    redis.call('HSET', unacked, tag, record)
    return {KEYS[i], item, tag}
  end
end
return false
"""


class ReliableChannel(kombu_redis.Channel):
    """kombu's Redis channel with an atomic pop-and-record instead of ``BRPOP``."""

    #: Longest a message on a queue not being watched waits while the channel is idle
    #: (transport option ``fetch_wait``, seconds).
    fetch_wait = 0.5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.ack_emulation:
            raise ValueError("reliable fetch records into the unacked hash: keep ack_emulation")
        _require_blmove(self.client)
        options = self.connection.client.transport_options
        self.fetch_wait = float(options.get("fetch_wait", self.fetch_wait))
        #: The last fetch found nothing, so the next one waits first.
        self._idle = False
        #: The reply now pending starts with the wait's.
        self._waiting = False
        #: The queue an idle fetch waits on: the one that delivered last.
        self._watched: str | None = None

    # -- what the poller calls --------------------------------------------------------
    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        connection = self.client.connection
        self._in_poll = connection
        # kombu's poller drops a connection whose reply is overdue from this time on.
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment]
        self._waiting = self._idle
        if self._waiting:
            last = self._watched
            watched = self._key(last if last is not None and last in queues else queues[0])
            wait = min(self.fetch_wait, self.brpop_timeout or self.fetch_wait)
            connection.send_command("BLMOVE", watched, watched, "RIGHT", "RIGHT", wait)
        connection.send_command(*self._fetch_command(queues))

    def _brpop_read(self, **options: Any) -> bool:
        connection = self.client.connection
        try:
            try:
                if self._waiting:
                    self._waiting = False
                    self.client.parse_response(connection, "BLMOVE", **options)
                reply = self.client.parse_response(connection, "EVAL", **options)
            except self.connection_errors:
                # Disconnect so the next poll reconnects (as kombu's BRPOP read does).
                connection.disconnect()
                raise
            self._idle = not reply
            if not reply:
                raise Empty()
            key, item, tag = reply
            queue = bytes_to_str(key)[len(self.global_keyprefix or "") :]
            queue = queue.rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self._watched = queue
            self.connection._deliver(self._envelope(item, queue, bytes_to_str(tag)), queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            flush_reauth = getattr(self, "_flush_brpop_reauth", None)
            if flush_reauth is not None:
                flush_reauth()

    # -- helpers ----------------------------------------------------------------------
    def _key(self, list_key: str) -> str:
        return f"{self.global_keyprefix or ''}{list_key}"

    def _fetch_command(self, queues: list[str]) -> list[Any]:
        """EVAL of the fetch script over ``queues`` in kombu's BRPOP order (all queues at
        the highest priority first)."""
        lists = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        keys = [self._key(k) for k in (*lists, self.unacked_key, self.unacked_index_key)]
        names = [queue for _ in self.priority_steps for queue in queues]
        return ["EVAL", FETCH_SCRIPT, len(keys), *keys, time.time(), UNREADABLE_HEADER, *names]

    def _envelope(self, item: bytes, queue: str, tag: str) -> dict[str, Any]:
        """The envelope to deliver. The script checked its shape, but Python's json and
        kombu are stricter than Redis's cjson (control characters, a body that is not
        base64): such a message is replaced by a substitute under the same delivery tag,
        which overwrites the raw record in the unacked hash when kombu records it."""
        try:
            payload = loads(bytes_to_str(item))
            self.Message(payload, channel=self)
        except Exception as exc:
            return unreadable_envelope(item, queue, f"cannot be decoded: {exc}", tag)
        return dict(payload)


class ReliableRedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`ReliableChannel`. Use it as Celery's
    ``broker_transport`` with a ``redis://`` or ``rediss://`` broker URL."""

    Channel = ReliableChannel


def _require_blmove(client: Any) -> None:
    """Fail at start-up, not on the first idle fetch, on a Redis without ``BLMOVE``."""
    try:
        version = client.info("server")["redis_version"]
        major, minor = (int(part) for part in version.split(".")[:2])
    except Exception:  # INFO refused or a version we cannot read: the first fetch will tell
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
