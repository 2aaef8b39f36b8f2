"""Service configuration: one typed object, read from ``EVALQ_*`` environment variables.

Every interval and quota is a setting so tests and benchmarks can run on short clocks.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVALQ_", extra="ignore")

    #: Celery broker (the request, control and result queues live here).
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Job store: records, backlog, timers, dead letters.
    redis_url: str = "redis://127.0.0.1:6379/1"
    #: How long job-store calls keep retrying through a Redis restart (seconds).
    redis_retry_seconds: float = 15.0
    #: Prefix of every Redis key evalq writes, so several deployments can share a server.
    key_prefix: str = "evalq"

    #: Targets (accounts and regions, their quotas and routing rules), YAML or JSON
    #: (docs/targets.md). Unset: one target, ``default``, made of the settings below.
    targets_file: str | None = None
    #: A changed targets file is picked up within this many seconds, without a restart.
    targets_reload_seconds: float = Field(default=10.0, gt=0)

    #: What each producer may do (docs/security.md), YAML or JSON; picked up again within
    #: ``targets_reload_seconds`` of a change. Unset: every producer gets the defaults below.
    producers_file: str | None = None
    #: Defaults of every producer (the producers file may set each per producer): the
    #: highest priority its requests may carry, the most of its requests waiting in one
    #: target's backlog, whether it may roll out evaluators.
    producer_max_priority: int = Field(default=9, ge=0, le=9)
    producer_backlog_cap: int = Field(default=100_000, ge=1)
    producer_evaluator_updates: bool = True

    #: Evaluations evalq submits itself on a schedule (docs/schedules.md), YAML or JSON;
    #: picked up again within ``targets_reload_seconds`` of a change. Unset: none, and beat
    #: sends no ``evals.schedules``.
    schedules_file: str | None = None
    #: How often beat sends ``evals.schedules``, which submits the slots that came due: the
    #: most a slot is submitted late while everything runs (seconds).
    schedules_interval: float = Field(default=1.0, gt=0)
    #: ``catch_up: none``: a slot still counts as on time (and is submitted) when it is
    #: found this long after its start at most; older ones were missed while beat was down.
    schedule_grace_seconds: float = Field(default=60.0, ge=0)
    #: ``catch_up: all``: most missed slots one schedule submits after a downtime (the
    #: latest ones); older ones are counted missed.
    schedule_catch_up_limit: int = Field(default=100, ge=1)

    #: RabbitMQ: users besides the broker URL's own whose messages may carry evalq's
    #: internal tasks (the control and synchronous queues), comma-separated: ops' user,
    #: whose replays go there. RabbitMQ vouches for every message's ``user_id``, and evalq
    #: stamps its own; a producer's message there is dead-lettered ``forbidden_task``.
    internal_broker_users: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: Redis Sentinel: ``host:port`` of each sentinel, comma-separated. With
    #: ``redis_sentinel_master``, the job store and a ``redis://`` broker ask them for the
    #: primary and follow it when it moves; the URLs' credentials and db numbers still
    #: apply, their host and port are ignored (docs/brokers.md).
    redis_sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The name the sentinels monitor the primary under.
    redis_sentinel_master: str | None = None
    #: After each task, wait until this many replicas have its job-store writes (Redis
    #: ``WAIT``), before the task's message is acknowledged; 0: do not wait.
    redis_wait_replicas: int = Field(default=0, ge=0)
    #: Longest that wait (seconds); past it the task goes on, with a warning.
    redis_wait_timeout: float = Field(default=1.0, gt=0)

    #: TLS for ``rediss://`` (job store and broker) and ``amqps://`` URLs: the CA bundle
    #: that signed the servers' certificates (unset: the system's), and a client
    #: certificate and key for servers that ask for one.
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    #: Unset: boto3 uses the real AWS endpoint of the region.
    agentcore_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    #: Only for the emulator and tests; production uses the standard AWS credential chain.
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_connect_timeout: float = 5.0
    aws_read_timeout: float = 20.0
    #: The AgentCore control plane (evaluators); unset: ``agentcore_endpoint_url``.
    agentcore_control_endpoint_url: str | None = None
    #: Longest silence between two events of an InvokeHarness stream (seconds); an agent
    #: may think or call tools for a while between events.
    harness_read_timeout: float = Field(default=120.0, gt=0)

    @property
    def control_endpoint_url(self) -> str | None:
        """Where the control-plane client goes: its own setting, else the data plane's."""
        return self.agentcore_control_endpoint_url or self.agentcore_endpoint_url

    #: Aymara (``backend: "aymara"``). Unset: this deployment runs no Aymara backend, and
    #: such requests are dead-lettered ``unknown_backend``. The real service is
    #: ``https://api.aymara.ai``.
    aymara_base_url: str | None = None
    #: Sent as the ``x-api-key`` header; never logged.
    aymara_api_key: SecretStr | None = None
    #: Aymara runs scoring at once (its concurrency), and calls per second of each kind.
    aymara_max_active_jobs: int = Field(default=10, ge=1)
    aymara_rate: float = Field(default=5.0, gt=0)
    aymara_connect_timeout: float = Field(default=5.0, gt=0)
    aymara_read_timeout: float = Field(default=30.0, gt=0)

    #: Agno AgentOS (``backend: "agno"``), e.g. ``http://agentos:7777``. Unset: no Agno
    #: backend, as for Aymara.
    agno_base_url: str | None = None
    #: AgentOS's ``OS_SECURITY_KEY``, sent as ``Authorization: Bearer``; unset when the
    #: AgentOS runs without one. Never logged.
    agno_security_key: SecretStr | None = None
    #: Agno evals running at once: each holds a worker process for its whole run, so keep
    #: this below the processes that serve the synchronous queue (docs/backends.md).
    agno_max_active_jobs: int = Field(default=2, ge=1)
    agno_rate: float = Field(default=10.0, gt=0)
    agno_connect_timeout: float = Field(default=5.0, gt=0)
    #: For reads, renames and deletes; a run's timeout is given per call (its deadline).
    agno_read_timeout: float = Field(default=30.0, gt=0)
    #: Databases (``db_id``) or tables (``db_id/table``) that requests name, which the
    #: janitor lists besides AgentOS's default one, comma-separated: a run there whose job
    #: record was lost is then found and deleted too (docs/backends.md).
    agno_janitor_tables: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Per-account quotas and rates: the defaults of every target.
    #: The account quota of started-and-not-terminal batch evaluations.
    max_active_jobs: int = Field(default=5, ge=1)
    #: Remote names of jobs evalq derives start with this; the janitor touches nothing else.
    job_name_prefix: str = Field(default="evalq_", pattern=r"^[a-zA-Z][a-zA-Z0-9_]{0,15}$")

    #: Account-wide call rates (per second), shared by every process through Redis.
    start_rate: float = 3.0
    stop_rate: float = 3.0
    delete_rate: float = 3.0
    get_rate: float = 60.0
    list_rate: float = 60.0
    #: InvokeHarness calls per second (scenario runs), shared the same way.
    invoke_rate: float = Field(default=10.0, gt=0)
    #: InvokeHarness calls in flight at once per target; each holds a process of the
    #: synchronous queue while its stream lasts (docs/scenarios.md).
    max_invocations: int = Field(default=4, ge=1)
    #: A scenario item is tried again at most this many times (a broken stream or a dead
    #: worker: under a new session id; a refused call: under the same one), then left out.
    scenario_item_retries: int = Field(default=3, ge=0)
    #: Each rate's window is this much longer (seconds), to absorb request-latency jitter.
    rate_limit_margin: float = Field(default=0.05, ge=0)

    #: How often beat runs the ticker that hands due timers to workers (seconds).
    tick_interval: float = 1.0
    #: A claimed timer comes due again after this long unless its task rescheduled it,
    #: so work lost with a killed worker is picked up again.
    lease_seconds: float = 30.0
    #: Most timers one tick hands out.
    tick_batch: int = 500

    #: Poll backoff when progress gives no estimate (seconds).
    poll_initial: float = 2.0
    #: Longest gap between two polls of a running job, whatever its progress says: the
    #: worst-case delay before an unforeseen end is seen (docs/throughput.md).
    poll_max: float = 300.0
    poll_multiplier: float = 2.0
    #: Earliest poll after a start, and the smallest gap between two polls.
    poll_min: float = 0.5
    #: A job whose progress projects its end is polled this long after that end.
    poll_end_margin: float = 1.0
    #: Watch a target's running jobs with one listing per tick (a Get per job only at its
    #: end) while the account's listing pages are no more than its running jobs.
    watch_by_list: bool = True
    #: A job the listing watches still checks in this often (no call while the listing
    #: is fresh; a poll of its own once it is not).
    watch_recheck_seconds: float = Field(default=30.0, gt=0)
    #: After a create whose answer never came (no idempotency key), evalq waits this long
    #: past the call's timeout before it looks the run up by name: a create still on its
    #: way would otherwise be missed and sent again.
    create_settle_margin: float = Field(default=5.0, ge=0)
    #: Backoff after a retryable error (throttle, 5xx, connection).
    retry_initial: float = 1.0
    retry_max: float = 60.0
    #: Retry budget for retryable errors, by count and by time.
    retry_max_attempts: int = 12
    retry_max_seconds: float = 3600.0
    #: A job whose timer fired this many times in a row without moving it (retries, a
    #: refused delete) is stalled: logged at error, counted by ``evalq_stalled_jobs`` and
    #: alerted on, listed by ``evalq jobs --stalled``.
    stall_alert_after: int = Field(default=10, ge=1)
    #: Admission pauses this long after the service said the account quota is full.
    quota_backoff: float = 5.0
    #: An evaluator rollout whose UpdateEvaluator the account's quota refuses waits
    #: ``quota_backoff`` doubling (at most ``poll_max``) this many times, then ends
    #: UPDATE_FAILED (about 35 minutes with the defaults).
    rollout_quota_max_waits: int = Field(default=12, ge=0)

    #: Defaults when a request gives none.
    default_deadline_seconds: int = 24 * 3600
    default_retention_seconds: int = 7 * 24 * 3600
    #: Local job records are kept this long after their outcome is published.
    record_retention_seconds: int = 30 * 24 * 3600

    #: How often beat runs the janitor sweep (seconds).
    janitor_interval: float = Field(default=60.0, gt=0)
    #: The janitor's lock expires after this long, so a sweep that died never blocks the
    #: next one. Longer than the janitor's hard time limit (no sweep outlives its lock),
    #: and well inside the worker's termination grace period (deploy/, 180 s).
    janitor_lock_seconds: float = Field(default=120.0, gt=0)
    #: Most entries one step of a sweep handles; the rest wait for the next sweep.
    janitor_batch: int = Field(default=500, ge=1)
    #: Account quota of existing batch evaluations (running or not).
    account_max_jobs: int = Field(default=2000, ge=1)
    #: From this many remote jobs on, the janitor deletes the oldest published jobs
    #: before their retention ends, so starts never meet a full account.
    account_high_water: int = Field(default=1800, ge=1)

    #: A reply queue that refused an outcome this many times is given up on for it (at
    #: once when it refuses for good); the main queue and the others still get it.
    reply_publish_attempts: int = Field(default=3, ge=1)
    #: Result queue every outcome goes to (besides the request's reply_to queues).
    results_queue: str = "evals.results"
    #: Where every evaluator rollout's outcome goes (besides its reply_to queues).
    evaluator_updates_queue: str = "evals.evaluator-updates"
    requests_queue: str = "evals.requests"
    control_queue: str = "evals.control"
    #: The clockwork's own lane: beat's tick and schedules and the targets' listings
    #: (``evals.watch``). Job steps flood the control queue when many jobs start or end at
    #: once; on a queue of its own (which each worker fetches from in turn with the
    #: others) a tick or listing waits for one task at most, not for the whole flood.
    timers_queue: str = "evals.timers"
    #: Where synchronous runs (Agno's) wait for a worker process: each holds one for its
    #: whole run, so they get their own queue (``evalq worker`` serves it too; a worker of
    #: its own keeps them off the other queues' processes).
    synchronous_queue: str = "evals.synchronous"
    #: Longest one synchronous run (Agno) may take; a job's deadline bounds it further.
    synchronous_run_timeout: float = Field(default=900.0, gt=0)

    #: Dead letters kept at most (count and age), as Sidekiq's dead set.
    dead_letter_max_entries: int = 10_000
    dead_letter_max_age_seconds: int = 180 * 24 * 3600
    #: Largest message the worker reads (bytes: its body and its headers as JSON); bigger
    #: ones are dead-lettered unread. Also the most one dead letter keeps, in all.
    max_payload_bytes: int = Field(default=256 * 1024, ge=1024)
    #: Deepest nesting of lists and objects a message may carry (body and headers); a
    #: deeper one is dead-lettered ``payload_too_deep`` before anything decodes it further.
    max_payload_depth: int = Field(default=64, ge=16, le=200)
    #: Largest headers a message may carry (bytes, as JSON); more is dead-lettered unread.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    #: Replays per second when ops replay dead letters (`evalq dlq replay`).
    dlq_replay_rate: float = Field(default=10.0, gt=0)

    #: Broker redelivers an unacknowledged message after this long. Every evalq task is
    #: short, so this can be far below Celery's 1 h default.
    visibility_timeout: int = 300
    #: How often a worker looks for messages whose worker died (seconds).
    restore_interval: int = 10
    #: Pop and record each message as unacknowledged in one step (worker/broker.py), so a
    #: killed worker loses nothing. Off: kombu's stock Redis fetch (BRPOP).
    broker_reliable_fetch: bool = True
    #: An idle worker watches one queue at a time; a message on another waits up to this
    #: long (seconds).
    broker_fetch_wait: float = Field(default=0.5, gt=0, le=1.0)
    #: RabbitMQ: the type of every queue evalq declares (requests, control, outcomes).
    #: ``quorum`` queues are replicated over the cluster's nodes; producers and consumers
    #: must then declare them as quorum queues too (docs/brokers.md).
    broker_queue_type: Literal["classic", "quorum"] = "classic"
    #: Messages a worker process takes ahead of the one it runs. Unset: 4 (tasks are
    #: short), except 1 on Redis for a worker that serves synchronous runs (a message
    #: behind a run would wait for it; runtime/connections.prefetch_multiplier).
    broker_prefetch_multiplier: int | None = Field(default=None, ge=1)
    worker_concurrency: int = 4

    #: Time limits of the tasks (seconds; docs/operations.md). At the soft limit the
    #: task gets ``SoftTimeLimitExceeded`` and cleans up; at the hard limit its pool
    #: process is killed and replaced, and the message goes back on its queue.
    #: Tasks that only use Redis and the broker (submit, tick, ping, dlq purge): a few
    #: Redis calls, each retried through a restart for ``redis_retry_seconds``.
    store_task_soft_time_limit: float = Field(default=30.0, gt=0)
    store_task_time_limit: float = Field(default=40.0, gt=0)
    #: evals.advance and evals.dlq.replay: one remote call (``aws_connect_timeout`` +
    #: ``aws_read_timeout``, no botocore retries), a few Redis calls, one publish; a
    #: replay run stops itself after 10 s.
    remote_task_soft_time_limit: float = Field(default=60.0, gt=0)
    remote_task_time_limit: float = Field(default=75.0, gt=0)
    #: evals.janitor: up to 20 List pages (2,000 jobs), then stops and deletes at the
    #: shared rates (it never sleeps on them).
    janitor_soft_time_limit: float = Field(default=90.0, gt=0)
    janitor_time_limit: float = Field(default=110.0, gt=0)

    #: Send task events (Flower, celery-exporter): every task's received, started,
    #: succeeded or failed, and the sent event of the tasks evalq sends.
    task_events: bool = True
    #: How often workers and beat write their heartbeat (a file for the probe, a score
    #: in Redis for the exporter); ``evalq health`` calls one stale after 4 intervals.
    heartbeat_interval: float = Field(default=5.0, gt=0)
    #: Where the heartbeat files go (an emptyDir on Kubernetes).
    heartbeat_dir: Path = Path(tempfile.gettempdir())
    log_level: str = "INFO"
    #: "json" for machines, "console" for people.
    log_format: str = "json"

    @field_validator("redis_sentinels", "agno_janitor_tables", "internal_broker_users",
                     mode="before")  # fmt: skip
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # "host1:26379,host2:26379" in the environment, a list in code.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def worker_queues(self) -> list[str]:
        """The queues ``evalq worker`` consumes by default: every queue tasks go to."""
        return [self.requests_queue, self.control_queue, self.timers_queue,
                self.synchronous_queue]  # fmt: skip

    @property
    def own_queues(self) -> list[str]:
        """Every queue of evalq's: the task queues and the two outcome queues."""
        return [*self.worker_queues, self.results_queue, self.evaluator_updates_queue]

    @property
    def broker_is_amqp(self) -> bool:
        """RabbitMQ, which checks each message's ``user_id`` against its sender's user."""
        return self.broker_url.partition("://")[0].lower() in ("amqp", "amqps", "pyamqp")

    @property
    def broker_user(self) -> str:
        """The user of ``broker_url`` (kombu's default, guest, when it names none)."""
        username = urlsplit(self.broker_url).username
        return unquote(username) if username else "guest"

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``(host, port)`` of each sentinel; empty when Sentinel is not used."""
        addresses = []
        for entry in self.redis_sentinels:
            host, _, port = entry.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"EVALQ_REDIS_SENTINELS: {entry!r} is not host:port")
            addresses.append((host.strip("[]"), int(port)))
        if addresses and not self.redis_sentinel_master:
            raise ValueError("EVALQ_REDIS_SENTINELS needs EVALQ_REDIS_SENTINEL_MASTER")
        return addresses

    @model_validator(mode="after")
    def _limits_fit(self) -> Self:
        pairs = {
            "store_task": (self.store_task_soft_time_limit, self.store_task_time_limit),
            "remote_task": (self.remote_task_soft_time_limit, self.remote_task_time_limit),
            "janitor": (self.janitor_soft_time_limit, self.janitor_time_limit),
        }
        for name, (soft, hard) in pairs.items():
            if soft >= hard:
                raise ValueError(f"{name}_soft_time_limit must be below {name}_time_limit")
        if self.janitor_lock_seconds <= self.janitor_time_limit:
            raise ValueError("janitor_lock_seconds must exceed janitor_time_limit")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
