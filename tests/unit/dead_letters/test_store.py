"""The dead-letter store over fakeredis: entries, merging, redaction, retention."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_contracts import ReasonCode
from tests.unit.contracts import strategies as gen
from worker.dead_letters.sizes import cut_of, cut_text
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.intake import accept

NOW = 1_800_000_000.0


@pytest.fixture
def dead_letters(fake_redis, keys) -> DeadLetterStore:
    return DeadLetterStore(fake_redis, keys, max_entries=5, max_age=3600)


def _record(store, n=0, *, reason=ReasonCode.invalid_request, now=NOW, **kwargs):
    defaults = {"request": {"request_id": f"r{n}"}, "request_id": f"r{n}", "error": "bad"}
    return store.record(reason=reason, now=now, **{**defaults, **kwargs})


def test_an_entry_carries_everything_ops_need(dead_letters):
    letter = _record(dead_letters, task_name="evals.submit", attempts=3, first_failed_at=NOW - 60)
    stored = dead_letters.get(letter.dead_letter_id)
    assert stored == letter
    assert (stored.reason, stored.request_id, stored.task_name) == (
        "invalid_request",
        "r0",
        "evals.submit",
    )
    assert stored.request == {"request_id": "r0"}
    assert (stored.attempts, stored.replay_count) == (3, 0)
    assert stored.worker_host
    assert stored.first_failed_at.timestamp() == NOW - 60
    assert stored.last_failed_at.timestamp() == NOW


def test_the_same_failure_again_folds_into_one_entry(dead_letters):
    first = _record(dead_letters)
    again = _record(dead_letters, now=NOW + 10, replay_count=2)
    assert again.dead_letter_id == first.dead_letter_id
    assert dead_letters.count() == 1
    assert again.attempts == 2
    assert again.first_failed_at.timestamp() == NOW
    assert again.last_failed_at.timestamp() == NOW + 10
    assert again.replay_count == 2
    other = _record(dead_letters, reason=ReasonCode.unknown_backend)
    assert other.dead_letter_id != first.dead_letter_id


def test_secrets_are_redacted_in_error_and_request(dead_letters):
    letter = dead_letters.record(
        reason=ReasonCode.undecodable_message,
        error="failed with password=hunter2 and AKIAABCDEFGHIJKLMNOP",
        request={"correlation": {"password": "hunter2", "url": "redis://u:pw@host/0"}},
        request_id=None,
        now=NOW,
    )
    text = letter.model_dump_json()
    assert "hunter2" not in text
    assert "AKIAABCDEFGHIJKLMNOP" not in text
    assert ":pw@" not in text
    raw = dead_letters.record(
        reason=ReasonCode.undecodable_message,
        error="e",
        request='{"secret": "s3cr3t"} not json',
        request_id=None,
        now=NOW,
    )
    assert "s3cr3t" not in raw.request


def test_lone_surrogates_are_stored_as_escapes(dead_letters):
    letter = _record(dead_letters, request={"d": "x\ud800"}, request_id="r\udfff", error="\ud800")
    assert dead_letters.get(letter.dead_letter_id).request == {"d": "x\\ud800"}
    assert letter.request_id == "r\\udfff"


def test_retention_keeps_the_newest_entries_up_to_the_cap(dead_letters, fake_redis, keys):
    for n in range(8):
        _record(dead_letters, n, now=NOW + n)
    assert dead_letters.count() == 5
    assert [d.request_id for d in dead_letters.find()] == ["r7", "r6", "r5", "r4", "r3"]
    # Documents and replay marks of dropped entries go too.
    assert len(fake_redis.keys(keys.dead_letter("*"))) == 5


def test_retention_drops_entries_older_than_the_max_age(dead_letters):
    old = _record(dead_letters, 1, now=NOW)
    dead_letters.mark_replaying(old.dead_letter_id, "t")
    _record(dead_letters, 2, now=NOW + 3000)
    _record(dead_letters, 3, now=NOW + 3601)  # trims on write
    assert [d.request_id for d in dead_letters.find()] == ["r3", "r2"]
    assert dead_letters.replaying() == {}
    assert dead_letters.trim(NOW + 3000 + 3601) == 1
    assert dead_letters.count() == 1


def test_trimming_drops_thousands_of_entries_with_their_documents(fake_redis, keys):
    store = DeadLetterStore(fake_redis, keys, max_entries=100_000, max_age=10)
    pipe = fake_redis.pipeline()
    for n in range(3000):
        pipe.set(keys.dead_letter(f"id{n}"), "{}")
        pipe.zadd(keys.dead_letters, {f"id{n}": NOW})
    pipe.execute()
    assert store.trim(NOW + 11) == 3000
    assert store.count() == 0
    assert fake_redis.keys(keys.dead_letter("*")) == []


def test_purges_by_age_and_all(dead_letters):
    for n in range(4):
        _record(dead_letters, n, now=NOW + 100 * n)
    assert dead_letters.purge_older_than(NOW + 150) == 2
    assert [d.request_id for d in dead_letters.find()] == ["r3", "r2"]
    assert dead_letters.purge_all() == 2
    assert dead_letters.count() == 0


def test_find_filters_by_reason_and_time(dead_letters):
    _record(dead_letters, 1, now=NOW)
    _record(dead_letters, 2, now=NOW + 10, reason=ReasonCode.unknown_backend)
    _record(dead_letters, 3, now=NOW + 20)
    assert [d.request_id for d in dead_letters.find(reason="invalid_request")] == ["r3", "r1"]
    assert [d.request_id for d in dead_letters.find(since=NOW + 5)] == ["r3", "r2"]
    assert [d.request_id for d in dead_letters.find(limit=1)] == ["r3"]
    oldest_first = dead_letters.iter(until=NOW + 10, newest_first=False)
    assert [d.request_id for d in oldest_first] == ["r1", "r2"]


def test_find_pages_through_many_entries(fake_redis, keys):
    store = DeadLetterStore(fake_redis, keys, max_entries=10_000, max_age=10**9)
    for n in range(520):  # more than one page of 500
        _record(store, n, now=NOW + n)
    assert len(store.find(limit=5000)) == 520
    assert len(list(store.iter(reason="invalid_request"))) == 520


def test_ids_resolve_from_a_unique_prefix(dead_letters):
    letter = _record(dead_letters)
    assert dead_letters.resolve(letter.dead_letter_id) == letter.dead_letter_id
    assert dead_letters.resolve(letter.dead_letter_id[:8]) == letter.dead_letter_id
    assert dead_letters.resolve("zzzz") is None


def test_replay_marks_settle_once(dead_letters):
    letter = _record(dead_letters)
    dead_letters.mark_replaying(letter.dead_letter_id, "token-1")
    assert dead_letters.replaying() == {letter.dead_letter_id: "token-1"}
    assert not dead_letters.unmark_replaying(letter.dead_letter_id, "other")
    assert dead_letters.unmark_replaying(letter.dead_letter_id, "token-1")
    assert not dead_letters.unmark_replaying(letter.dead_letter_id, "token-1")
    assert dead_letters.set_replay_count(letter.dead_letter_id, 3)
    assert not dead_letters.set_replay_count("gone", 3)
    assert dead_letters.get(letter.dead_letter_id).replay_count == 3
    assert dead_letters.remove(letter.dead_letter_id)
    assert dead_letters.get(letter.dead_letter_id) is None


# -- intake never loses a request it cannot accept ------------------------------------------
#: Text with what hurts most: lone surrogates (JSON allows them, UTF-8 does not), C0 and
#: C1 controls, bidi overrides, astral characters.
_HOSTILE = ["a", "\x00", "\x1f", "\x85", "\u202e", "\u200b", "\ud800", "\udfff", "🎉", "é"]
_any_text = st.text(st.sampled_from(_HOSTILE), max_size=10) | st.text(max_size=20)
_junk = st.one_of(
    gen.json_values,
    st.dictionaries(
        st.sampled_from(["request_id", "producer", "backend", "evaluation"]),
        gen.json_values | _any_text,
    ),
    gen.requests.flatmap(
        lambda r: _any_text.map(
            lambda t: {**r, "evaluation": {**r["evaluation"], "description": t}}
        )
    ),
)


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(_junk)
def test_intake_stores_every_request_it_rejects(services, junk):
    services.dead_letters.purge_all()
    result = accept(services, junk)
    if result.outcome == "rejected":
        (letter,) = services.dead_letters.find()
        assert letter.dead_letter_id == result.dead_letter_id
        assert letter.reason in ("invalid_request", "unknown_backend")
        assert letter.error
    else:
        assert result.outcome in ("created", "duplicate", "conflict", "requeued")


# -- sizes: an entry takes at most the limit -------------------------------------------------
LIMIT = 4096


@pytest.fixture
def small(fake_redis, keys) -> DeadLetterStore:
    return DeadLetterStore(fake_redis, keys, max_entries=100, max_age=3600, max_entry_bytes=LIMIT)


def _stored_bytes(fake_redis, keys, letter) -> int:
    return len(fake_redis.get(keys.dead_letter(letter.dead_letter_id)).encode())


@pytest.mark.parametrize(
    ("request_", "error", "task_name"),
    [
        ("x" * (10 * LIMIT), "bad", "evals.submit"),  # a raw body
        ("\x00\x1b" * LIMIT, "bad", None),  # escapes: 6 stored bytes per character
        ("é" * LIMIT, "e" * (3 * LIMIT), None),  # both long, and not ASCII
        (None, "an error " * LIMIT, "t" * (5 * LIMIT)),  # a huge task name (a header)
        ({"backend": "agentcore", "pad": "p" * (3 * LIMIT)}, "bad", None),  # a parsed request
    ],
)
def test_every_entry_is_cut_to_the_limit_with_markers(
    small, fake_redis, keys, request_, error, task_name
):
    letter = small.record(reason=ReasonCode.payload_too_large, error=error, request=request_,
                          request_id="r", now=NOW, task_name=task_name)  # fmt: skip
    stored = _stored_bytes(fake_redis, keys, letter)
    assert 0.95 * LIMIT <= stored <= LIMIT  # cut to the limit, and not much more than that
    assert small.get(letter.dead_letter_id) == letter
    cut = {name: cut_of(getattr(letter, name)) for name in ("request", "error", "task_name")}
    assert any(cut.values())
    for name, found in cut.items():
        original = {"request": request_, "error": error, "task_name": task_name}[name]
        if found is not None:
            kept, total = found
            text = (
                original
                if isinstance(original, str)
                else json.dumps(original, separators=(",", ":"))
            )
            assert total == len(text.encode())
            assert text.encode().startswith(getattr(letter, name).encode()[:kept])


def test_a_text_cut_again_still_counts_its_original(small, fake_redis, keys):
    """A raw body that arrives cut (the fetch keeps an oversized item's start) and is cut
    again to fit says how large the message was, not the part that arrived."""
    arrived = cut_text("y" * (3 * LIMIT), 3 * LIMIT - 10, total=80 * 2**20)
    letter = small.record(reason=ReasonCode.payload_too_large, error="e", request=arrived,
                          request_id=None, now=NOW)  # fmt: skip
    assert _stored_bytes(fake_redis, keys, letter) <= LIMIT
    assert cut_of(letter.request)[1] == 80 * 2**20


def test_raising_the_replay_count_keeps_the_entry_within_the_limit(small, fake_redis, keys):
    letter = small.record(reason=ReasonCode.payload_too_large, error="e", request="z" * LIMIT,
                          request_id=None, now=NOW)  # fmt: skip
    small.set_replay_count(letter.dead_letter_id, 10**12)
    assert _stored_bytes(fake_redis, keys, letter) <= LIMIT


# -- the metric labels index -----------------------------------------------------------------
def test_each_entry_has_its_labels_in_the_index_until_it_goes(dead_letters, fake_redis, keys):
    request = {"backend": "agentcore", "request_id": "r1"}
    kept = _record(dead_letters, 1, request=request, target="default")
    removed = _record(dead_letters, 2, reason=ReasonCode.unknown_backend)
    assert fake_redis.hgetall(keys.dead_letter_labels) == {
        kept.dead_letter_id: "invalid_request|agentcore|default",
        removed.dead_letter_id: "unknown_backend|unknown|unknown",
    }
    dead_letters.remove(removed.dead_letter_id)
    assert list(fake_redis.hgetall(keys.dead_letter_labels)) == [kept.dead_letter_id]
    for n in range(3, 10):  # over the cap of 5: the oldest go, with their labels
        _record(dead_letters, n, now=NOW + n)
    assert set(fake_redis.hkeys(keys.dead_letter_labels)) == {
        d.dead_letter_id for d in dead_letters.find()
    }
    dead_letters.purge_older_than(NOW + 6)
    dead_letters.purge_all()
    assert fake_redis.hlen(keys.dead_letter_labels) == 0
