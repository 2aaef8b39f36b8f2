"""What a producer may ask of evalq: reply queues, priority, rollouts, identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.producers.config import load_producers
from worker.producers.policy import Producers, reserved_queue
from worker.settings import Settings

REDIS = Settings(broker_url="redis://127.0.0.1:6379/0")
RABBIT = Settings(broker_url="amqp://guest:guest@127.0.0.1:5672/evalq")


def _producers(tmp_path: Path, body: dict, settings: Settings = REDIS) -> Producers:
    path = tmp_path / "producers.json"
    path.write_text(json.dumps(body))
    return Producers(settings.model_copy(update={"producers_file": str(path)}))


@pytest.mark.parametrize(
    "queue",
    ["evals.requests", "evals.control", "evals.timers", "evals.synchronous", "evals.results",
     "evals.evaluator-updates", "unacked", "unacked_index", "unacked_mutex", "celery",
     "_kombu.binding.evals.requests", "celeryev.abc", "celery.pidbox", "w1.celery.pidbox",
     "reply.celery.pidbox", "amq.gen-1", "evalq:job:r1", "evalq:dead"],
)  # fmt: skip
def test_evalqs_own_and_the_brokers_queues_are_never_reply_queues(queue):
    assert reserved_queue(queue, REDIS) is not None
    refusal = Producers(REDIS).check("team-a", reply_to=["team-a.results", queue])
    assert refusal is not None
    assert refusal.reason == "invalid_request"
    assert f"reply_to {queue!r}" in refusal.error


def test_without_a_file_any_other_queue_any_priority_any_producer():
    producers = Producers(REDIS)
    assert producers.check("anyone", priority=9, reply_to=["team-a.results"]) is None
    assert producers.check("anyone", evaluator_update=True) is None


def test_the_file_bounds_each_producer_and_refuses_the_unlisted(tmp_path):
    producers = _producers(tmp_path, {
        "unlisted": "refuse",
        "defaults": {"max_priority": 3, "evaluator_updates": False},
        "producers": [
            {"name": "team-a", "reply_to": ["team-a.*", "shared.results"]},
            {"name": "judges", "evaluator_updates": True, "max_priority": 9},
        ],
    })  # fmt: skip
    assert producers.check("team-a", priority=3, reply_to=["team-a.x", "shared.results"]) is None
    refused = producers.check("team-a", priority=4)
    assert refused is not None
    assert refused.reason == "producer_not_allowed"
    assert "above the highest producer 'team-a' may use, 3" in refused.error
    refused = producers.check("team-a", reply_to=["team-b.results"])
    assert refused is not None
    assert "allowed: team-a.*, shared.results" in refused.error
    refused = producers.check("team-a", evaluator_update=True)
    assert refused is not None
    assert "may not roll out evaluators" in refused.error
    assert producers.check("judges", priority=9, evaluator_update=True) is None
    refused = producers.check("stranger")
    assert refused is not None
    assert refused.reason == "producer_not_allowed"
    assert "not listed" in refused.error


def test_unlisted_producers_get_the_files_defaults(tmp_path):
    producers = _producers(tmp_path, {"defaults": {"max_priority": 2, "backlog_cap": 7}})
    policy = producers.policy("stranger")
    assert policy is not None
    assert (policy.max_priority, policy.backlog_cap) == (2, 7)
    assert producers.check("stranger", priority=3) is not None


def test_on_rabbitmq_a_producer_with_broker_users_must_come_from_one(tmp_path):
    body = {"producers": [{"name": "team-a", "broker_users": ["svc-a"]},
                          {"name": "team-b", "broker_users": ["svc-b"]}]}  # fmt: skip
    producers = _producers(tmp_path, body, RABBIT)
    assert producers.check("team-a", broker_user="svc-a") is None
    for user, expected in [(None, "names none"), ("svc-b", "may not send as producer 'team-a'")]:
        refused = producers.check("team-a", broker_user=user)
        assert refused is not None
        assert expected in refused.error
    # A listed broker user cannot declare an unlisted name either.
    refused = producers.check("someone-else", broker_user="svc-b")
    assert refused is not None
    assert "sends as 'team-b' only" in refused.error
    assert producers.vouched("svc-a") == "svc-a"


def test_on_redis_the_user_id_a_sender_writes_proves_nothing(tmp_path):
    producers = _producers(tmp_path, {"producers": [{"name": "team-a", "broker_users": ["a"]}]})
    assert producers.vouched("a") is None
    assert producers.check("team-a", broker_user=None) is None


def test_a_broken_file_is_refused_with_the_field_named(tmp_path):
    path = tmp_path / "producers.yaml"
    path.write_text("producers:\n  - name: Team_A\n    max_priority: 12\n")
    with pytest.raises(ValueError, match="max_priority") as raised:
        load_producers(REDIS.model_copy(update={"producers_file": str(path)}))
    assert "name" in str(raised.value)
