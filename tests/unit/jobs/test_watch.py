"""Watching running jobs with one listing per tick: no Get at all for a job whose end the
listing holds whole, one at its end for a job that asked for insights."""

from __future__ import annotations

import json
import urllib.request

import pytest

from api_contracts.examples import sample_request
from tests.unit.driving import submit
from worker.jobs import watch
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.states import JobState

LONG = {"emulator:duration": "1000000000000"}


def _stats(emulator) -> dict:
    with urllib.request.urlopen(emulator.url + "/_emulator/stats") as response:
        return json.loads(response.read())


def _gets(emulator) -> int:
    return int(_stats(emulator)["calls"].get("GetBatchEvaluation", 0))


def _run_dispatched(services) -> list[str]:
    """Run every advance the watcher handed out, as a worker would."""
    results = []
    while services.dispatched:
        request_id, token, _ = services.dispatched.pop(0)
        results.append(advance(services, request_id, token))
    return results


def test_a_watched_job_ends_from_the_listing_without_a_get(services, emulator, clock):
    submit(services, "r1")
    assert advance(services, "r1") == "started"
    services.dispatched.clear()
    clock.advance(0.05)  # the remote job ends (time scale 10,000)

    report = watch.watch(services, "default")

    assert report.listed
    assert report.ended == ["r1"]
    assert _run_dispatched(services) == ["published"]
    assert _gets(emulator) == 0
    job = services.store.get("r1")
    assert job.remote_ended_at is not None
    ((outcome, _),) = services.publisher.published
    assert outcome.status == "COMPLETED"
    # What the listing said is what a Get says, field for field, where both say it.
    got = services.targets["default"].backend.get(job.batch_evaluation_id).body
    assert outcome.result
    for name, value in outcome.result.items():
        assert got[name] == value, name
    assert {"evaluationResults", "status", "batchEvaluationId"} <= set(outcome.result)


INSIGHTS = [
    {"insightId": "Builtin.Insight.FailureAnalysis"},
    {"insightId": "Builtin.Insight.UserIntent"},
    {"insightId": "Builtin.Insight.ExecutionSummary"},
]


@pytest.mark.parametrize(
    ("asked", "results"),
    [
        ({"insights": INSIGHTS},
         {"failureAnalysisResult", "userIntentResult", "executionSummaryResult"}),
        ({"evaluators": [{"evaluatorId": "Builtin.FailureAnalysis"}]}, {"insightResults"}),
    ],
    ids=["insights", "insight evaluator"],
)  # fmt: skip
def test_a_job_that_asked_for_insights_is_read_once_at_its_end(
    services, emulator, clock, asked, results
):
    request = sample_request(request_id="r1")
    request["evaluation"]["tags"] = {"emulator:sessions": "4"}
    request["evaluation"].update(asked)
    assert accept(services, request).outcome == "created"
    assert advance(services, "r1") == "started"
    services.dispatched.clear()
    clock.advance(0.05)

    report = watch.watch(services, "default")

    assert report.ended == ["r1"]
    assert _run_dispatched(services) == ["published"]
    assert _gets(emulator) == 1
    # The outcome's result is the Get's body: the insight results are in it.
    ((outcome, _),) = services.publisher.published
    assert results <= set(outcome.result)
    if "failureAnalysisResult" in results:
        spans = [
            span
            for failure in outcome.result["failureAnalysisResult"]["failures"]
            for sub in failure["subCategories"]
            for root in sub["rootCauses"]
            for session in root["affectedSessions"]
            for span in session["failureSpans"]
        ]
        assert "other" in {signal["category"] for span in spans for signal in span["signals"]}
    else:
        (insight,) = outcome.result["insightResults"]
        assert insight["type"] == "FAILURE"


def test_a_job_missing_from_the_name_index_is_still_seen_ending(services, emulator, clock):
    # Records registered without a remote name (by older versions, or straight into the
    # store) skip their polls while watched: the listing must find them by remote id.
    submit(services, "r1")
    assert advance(services, "r1") == "started"
    services.redis.delete(services.keys.target("default").remote_names)
    services.dispatched.clear()
    clock.advance(0.05)

    report = watch.watch(services, "default")

    assert report.ended == ["r1"]
    assert _run_dispatched(services) == ["published"]


def test_a_watched_jobs_own_timer_rechecks_without_a_call(services, emulator, clock):
    submit(services, "r1", tags=LONG)
    advance(services, "r1")
    watch.watch(services, "default")
    clock.advance(10)

    assert advance(services, "r1") == "watched"

    assert _gets(emulator) == 0
    due = services.store.due_score("r1")
    assert due == clock() + services.settings.watch_recheck_seconds


def test_when_the_listing_goes_stale_jobs_poll_on_their_own(services, emulator, clock):
    submit(services, "r1", tags=LONG)
    advance(services, "r1")
    watch.watch(services, "default")
    services.redis.delete(services.keys.target("default").watching)  # the watcher stopped

    assert advance(services, "r1") == "polled"
    assert _gets(emulator) == 1


def test_the_listing_records_progress_of_running_jobs(services, emulator, clock):
    submit(services, "r1", tags={"emulator:sessions": "100", "emulator:duration": "100000"})
    advance(services, "r1")
    clock.advance(0.05)
    report = watch.watch(services, "default")
    job = services.store.get("r1")
    assert report.progressed == 1
    assert job.progress_last["total"] == 100
    assert job.state == JobState.RUNNING


def test_more_pages_than_running_jobs_leave_the_jobs_to_their_own_polls(services, clock):
    submit(services, "r1", tags=LONG)
    advance(services, "r1")
    watch.watch(services, "default")
    target_keys = services.keys.target("default")
    services.redis.set(target_keys.remote_jobs, 250)  # three pages, one running job
    services.store.schedule("r1", clock() + 999)

    report = watch.watch(services, "default")

    assert not report.listed
    assert not services.redis.exists(target_keys.watching)
    assert services.store.due_score("r1") == clock()  # re-armed at once


def test_a_failing_listing_leaves_the_jobs_to_their_own_polls(services, emulator, clock):
    submit(services, "r1", tags=LONG)
    advance(services, "r1")
    body = json.dumps({"errors": {"InternalServerException": 1.0}}).encode()
    request = urllib.request.Request(emulator.url + "/_emulator/faults", data=body, method="POST")
    urllib.request.urlopen(request).close()

    report = watch.watch(services, "default")

    assert not report.listed
    assert not watch.is_watched(services, services.targets["default"])
    # Tried again at the next tick, not once the tick's claim on the listing runs out.
    due = services.redis.zscore(services.keys.watch_due, "default")
    assert due == clock() + services.settings.tick_interval


def test_an_idle_target_is_not_listed(services, emulator):
    assert not watch.watch(services, "default").listed
    assert int(_stats(emulator)["calls"].get("ListBatchEvaluations", 0)) == 0


def test_a_targets_next_listing_is_timed_by_its_jobs_projected_end(services, emulator, clock):
    submit(services, "r1", tags={"emulator:duration": "100000", "emulator:sessions": "100"})
    assert advance(services, "r1") == "started"
    # Timed at the job's first poll, a few seconds off (an idle target's watch was sent
    # at once, to establish the listing).
    assert not services.store.survey({"default": 2}, now=clock())["default"].listing_due
    later = clock() + services.settings.poll_initial
    assert services.store.survey({"default": 2}, now=later)["default"].listing_due
    assert services.watched == ["default"]

    clock.advance(0.05)  # some sessions done (time scale 10,000)
    watch.watch(services, "default")
    clock.advance(1)
    watch.watch(services, "default")  # two points: a rate, a projected end
    due = services.redis.zscore(services.keys.watch_due, "default")
    settings = services.settings
    assert clock() + settings.tick_interval <= due <= clock() + settings.watch_recheck_seconds
    assert not services.store.survey({"default": 2}, now=clock())["default"].listing_due
    assert services.store.survey({"default": 2}, now=due)["default"].listing_due


def test_a_target_with_nothing_running_is_not_listed(services, emulator, clock):
    submit(services, "r1")
    assert advance(services, "r1") == "started"
    clock.advance(0.05)
    watch.watch(services, "default")  # sees it end
    _run_dispatched(services)
    assert services.redis.zscore(services.keys.watch_due, "default") is None
    work = services.store.survey({"default": 2}, now=clock() + 3600)["default"]
    assert (work.slot_holders, work.listing_due) == (0, False)


def test_a_due_listing_is_sent_once_per_lease_however_many_ticks_pass(services, emulator, clock):
    # Workers far behind: the watch sent at one tick has not run by the next ones.
    from worker.jobs.admission import tick

    submit(services, "r1", tags={"emulator:duration": "100000", "emulator:sessions": "100"})
    assert advance(services, "r1") == "started"
    services.watched.clear()
    clock.advance(services.settings.poll_initial)
    for _ in range(5):
        tick(services)
        clock.advance(services.settings.tick_interval / 4)
    assert services.watched == ["default"]
    clock.advance(watch.listing_lease(services.settings))
    tick(services)  # the first one expired unrun: another is sent
    assert services.watched == ["default", "default"]


def test_a_listings_progress_point_is_dated_by_the_remotes_updated_at(services, emulator, clock):
    # Stamped with when the listing looked instead, sparse listings (timed by projected
    # ends) made every rate look slower and saw ends late (slots: detection p95 7.7 s).
    submit(services, "r1", tags={"emulator:duration": "100000", "emulator:sessions": "100"})
    assert advance(services, "r1") == "started"
    clock.advance(0.05)  # some sessions done (time scale 10,000)
    watch.watch(services, "default")
    clock.advance(1)  # seen again later: the counts changed before this listing
    watch.watch(services, "default")
    last = services.store.get("r1").progress_last
    assert last is not None
    assert last["changed_at"] is not None
    assert last["changed_at"] <= last["observed_at"]
