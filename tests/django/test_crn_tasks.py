"""The check task against the Hometax stand-in, failures injected, on a real worker.

The worker is ``python manage.py celeriac worker`` (the example's way); the stand-in
answers 503 to a share of requests, decided by a seed, at most twice in a row per
number, so every check gets through after retries with back-off.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from checks.models import CheckedCrn
from django.test import Client

from celeriac import Celery, GroupResult
from celeriac.contrib.django.progress import group_snapshot
from celeriac.demo.standin import StandIn, count_statuses, expected_status, generate_numbers

from .workers import WorkerProcess, manage_py_worker

pytestmark = pytest.mark.django_db(transaction=True)  # the worker writes the rows


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(delay_s=0.01, failure_rate=0.3, seed=11, max_failures_in_a_row=2) as server:
        yield server


@pytest.fixture
def worker(broker_url: str, standin: StandIn) -> Iterator[WorkerProcess]:
    process = manage_py_worker(broker_url, "-c", "50", HOMETAX_URL=standin.url)
    yield process
    assert process.stop() == 0, process.output()


def submit(numbers: list[str]) -> dict[str, object]:
    response = Client().post("/api/crn/check/", {"numbers": numbers}, content_type="application/json")
    assert response.status_code == 202, response.content
    body: dict[str, object] = response.json()
    return body


def wait_for_group(app: Celery, group_id: str) -> None:
    saved = GroupResult.restore(group_id, app=app)
    assert saved is not None
    saved.get(timeout=60)  # raises if any check failed for good


def test_checks_retry_and_end_as_the_truth_table_says(app: Celery, standin: StandIn, worker: WorkerProcess) -> None:
    numbers = generate_numbers(40, seed=5)
    accepted = submit(numbers)
    group_id = str(accepted["group_id"])
    wait_for_group(app, group_id)

    rows = {row.registration_number: row.status for row in CheckedCrn.objects.all()}
    assert rows == {number: expected_status(number) for number in numbers}

    # Every injected 503 cost exactly one retry, and none was given up on.
    snapshot = group_snapshot(group_id, app=app)
    assert snapshot is not None and snapshot.is_complete
    assert standin.app.failures_injected > 0
    assert sum(record.retries for record in snapshot.records.values()) == standin.app.failures_injected

    progress = Client().get(f"/api/crn/check/{group_id}/").json()
    assert (progress["done"], progress["total"], progress["is_complete"]) == (40, 40, True)
    expected_counts = {**count_statuses(numbers), "failed": 0}
    assert progress["counts"] == expected_counts
    assert {r["number"]: r["status"] for r in progress["results"]} == rows


def test_a_recheck_updates_the_rows(app: Celery, worker: WorkerProcess) -> None:
    numbers = generate_numbers(10, seed=9)
    wait_for_group(app, str(submit(numbers)["group_id"]))
    first = {row.registration_number: row for row in CheckedCrn.objects.all()}
    assert len(first) == 10
    # Pretend the world changed since: a stale answer in one row.
    stale_number = numbers[0]
    CheckedCrn.objects.filter(registration_number=stale_number).update(status="closed", message="stale")

    wait_for_group(app, str(submit(numbers[:5])["group_id"]))
    second = {row.registration_number: row for row in CheckedCrn.objects.all()}
    assert len(second) == 10  # updated in place, no duplicates
    assert second[stale_number].status == expected_status(stale_number)
    assert second[stale_number].message != "stale"
    for number in numbers[:5]:
        assert second[number].checked_at > first[number].checked_at
        assert second[number].pk == first[number].pk
    for number in numbers[5:]:
        assert second[number].checked_at == first[number].checked_at
