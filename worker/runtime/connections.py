"""What evalq connects to: the broker's Celery settings and the options of Redis clients,
from the URLs and the TLS and Sentinel settings (docs/brokers.md says which to choose).

* ``amqp://`` / ``amqps://``: RabbitMQ. Durable queues (classic, or quorum by
  ``EVALQ_BROKER_QUEUE_TYPE``), publisher confirms on every publish, and a prefetch sized
  for short tasks.
* ``redis://`` / ``rediss://``: Redis through the reliable fetch (``broker.py``). With
  ``EVALQ_REDIS_SENTINELS`` the URL becomes kombu's ``sentinel://`` list of sentinels,
  keeping its credentials and db number.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal
from urllib.parse import urlsplit

from worker.runtime.broker import max_item_bytes
from worker.settings import Settings

BrokerKind = Literal["redis", "amqp"]

_REDIS_SCHEMES = ("redis", "rediss")
_AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
#: Messages a worker process takes ahead on RabbitMQ (tasks are short: a few ahead keep
#: each process busy between round trips; a killed worker's come back at once).
AMQP_PREFETCH_MULTIPLIER = 4
#: The same on Redis for a worker that serves no synchronous runs: with one message in
#: hand a process sat idle for each task's round trips to the job store, and intake ran
#: at 496/s instead of 582/s (``tests.bench --only intake``). A synchronous run holds its
#: process for minutes, and a message taken behind it would wait that long: a worker
#: that serves ``evals.synchronous`` takes none ahead.
REDIS_PREFETCH_MULTIPLIER = 4


def prefetch_multiplier(settings: Settings, queues: list[str]) -> int:
    """Messages each process of a worker consuming ``queues`` takes ahead: the setting if
    given; else 4, or 1 on Redis for a worker that serves synchronous runs (a worker
    killed with messages in hand gives them back only after the visibility timeout)."""
    if settings.broker_prefetch_multiplier is not None:
        return settings.broker_prefetch_multiplier
    if settings.broker_is_amqp:
        return AMQP_PREFETCH_MULTIPLIER
    return 1 if settings.synchronous_queue in queues else REDIS_PREFETCH_MULTIPLIER


def scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def broker_kind(settings: Settings) -> BrokerKind:
    found = scheme(settings.broker_url)
    if found in _REDIS_SCHEMES:
        return "redis"
    if found in _AMQP_SCHEMES:
        return "amqp"
    raise ValueError(
        f"EVALQ_BROKER_URL: unsupported scheme {found!r} (redis, rediss, amqp or amqps)"
    )


def internal_senders(settings: Settings) -> frozenset[str] | None:
    """The users whose messages may carry internal tasks, where the broker vouches for a
    message's user (RabbitMQ); None where it does not (Redis: there producers cannot
    write evalq's internal queues at all, deploy/redis/users.acl)."""
    if broker_kind(settings) != "amqp":
        return None
    return frozenset({settings.broker_user, *settings.internal_broker_users})


def queue_arguments(settings: Settings) -> dict[str, str] | None:
    """Arguments of every queue evalq declares (RabbitMQ reads them, Redis ignores them)."""
    if broker_kind(settings) == "amqp" and settings.broker_queue_type == "quorum":
        return {"x-queue-type": "quorum"}
    return None


def redis_tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS keywords for a ``rediss://`` server: the certificate is always
    verified (against ``tls_ca_file``, else the system's CAs)."""
    files = _tls_files(settings, ca="ssl_ca_certs", cert="ssl_certfile", key="ssl_keyfile")
    return {"ssl_cert_reqs": "required", **files}


def _amqp_tls_options(settings: Settings) -> dict[str, Any]:
    """py-amqp's TLS options for an ``amqps://`` broker (same files as Redis's)."""
    files = _tls_files(settings, ca="ca_certs", cert="certfile", key="keyfile")
    return {"cert_reqs": ssl.CERT_REQUIRED, **files}


def _tls_files(settings: Settings, *, ca: str, cert: str, key: str) -> dict[str, str]:
    """The configured CA bundle, client certificate and key, under each library's names."""
    files = {ca: settings.tls_ca_file, cert: settings.tls_cert_file, key: settings.tls_key_file}
    return {name: path for name, path in files.items() if path}


def sentinel_broker_url(settings: Settings) -> str:
    """kombu's sentinel URL for a ``redis://`` broker URL: one ``sentinel://`` per
    sentinel, each with the URL's credentials and db number (its host is not used)."""
    parts = urlsplit(settings.broker_url)
    userinfo = parts.netloc.rpartition("@")[0]
    credentials = f"{userinfo}@" if userinfo else ""
    db = parts.path.strip("/") or "0"
    return ";".join(
        f"sentinel://{credentials}{_host(host)}:{port}/{db}"
        for host, port in settings.sentinel_addresses()
    )


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def broker_settings(settings: Settings) -> dict[str, Any]:
    """The Celery configuration of the broker connection: URL, transport, TLS,
    transport options, prefetch, queue type."""
    kind = broker_kind(settings)
    tls = scheme(settings.broker_url) in ("rediss", "amqps")
    if kind == "amqp":
        return {
            "broker_url": settings.broker_url,
            "broker_transport": None,
            "broker_use_ssl": _amqp_tls_options(settings) if tls else False,
            # Each publish (tasks sent, outcomes) waits for RabbitMQ's ack: a message the
            # broker refused raises instead of vanishing.
            "broker_transport_options": {"confirm_publish": True},
            "worker_prefetch_multiplier": prefetch_multiplier(settings, settings.worker_queues),
            "task_default_queue_type": settings.broker_queue_type,
            "task_create_missing_queue_type": settings.broker_queue_type,
        }
    options: dict[str, Any] = {
        "visibility_timeout": settings.visibility_timeout,
        # Look for messages of dead workers every restore_interval seconds, not every
        # 100 s (kombu's default interval x throttle), since our timeout is short.
        "unacked_restore_interval": settings.restore_interval,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 60,
        "fetch_wait": settings.broker_fetch_wait,
        # The fetch decodes no item longer than a message within the limits can be.
        "max_item_bytes": max_item_bytes(settings),
    }
    url, transport = settings.broker_url, "redis"
    if settings.redis_sentinels:
        url, transport = sentinel_broker_url(settings), "sentinel"
        options["master_name"] = settings.redis_sentinel_master
    if settings.broker_reliable_fetch:
        # kombu's Redis transport loses a message popped by a worker killed before it was
        # recorded as unacknowledged; ours records it in the same step (broker.py).
        transport = (
            "worker.runtime.broker:ReliableSentinelTransport"
            if transport == "sentinel"
            else "worker.runtime.broker:ReliableRedisTransport"
        )
    return {
        "broker_url": url,
        "broker_transport": transport,
        "broker_use_ssl": redis_tls_options(settings) if tls else False,
        "broker_transport_options": options,
        # `evalq worker` passes its own queues' (``--prefetch-multiplier``).
        "worker_prefetch_multiplier": prefetch_multiplier(settings, settings.worker_queues),
    }
