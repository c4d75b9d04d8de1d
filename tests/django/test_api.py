"""The check API: validation, 202 with the group and task ids, progress; admin and docs render."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from celeriac import Celery, GroupResult
from celeriac._bridge import run_sync
from celeriac.demo.standin import generate_numbers


def queue_depths(app: Celery) -> dict[str, int]:
    async def depths() -> dict[str, int]:
        return await (await app.clients()).broker.queue_depths()

    return run_sync(depths())


def test_query_string_checks_valid_numbers_and_explains_invalid_ones(broker_url: str, app: Celery) -> None:
    response = Client().get("/api/crn/check/", {"query": "1208801280,213,3898602190,2143,2208162517"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["total"] == 3
    assert [t["number"] for t in body["tasks"]] == ["1208801280", "3898602190", "2208162517"]
    assert body["invalid"] == [
        {"number": "213", "reason": "must have 10 digits, has 3"},
        {"number": "2143", "reason": "must have 10 digits, has 4"},
    ]
    assert body["progress_url"].endswith(f"/api/crn/check/{body['group_id']}/")
    assert queue_depths(app) == {"celery": 3}  # the invalid ones were never sent


def test_a_thousand_numbers_are_answered_at_once_with_their_ids(broker_url: str, app: Celery) -> None:
    numbers = generate_numbers(1000, seed=7)
    client = Client()
    started = time.perf_counter()
    response = client.post("/api/crn/check/", {"numbers": numbers}, content_type="application/json")
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"\nPOST /api/crn/check/ with 1,000 numbers: {response.status_code} in {elapsed_ms:.0f} ms")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["total"] == 1000 and body["invalid"] == []
    assert [t["number"] for t in body["tasks"]] == numbers
    task_ids = [t["task_id"] for t in body["tasks"]]
    assert len(set(task_ids)) == 1000
    saved = GroupResult.restore(body["group_id"], app=app)
    assert saved is not None and [r.id for r in saved.results] == task_ids
    assert queue_depths(app) == {"celery": 1000}

    progress = client.get(f"/api/crn/check/{body['group_id']}/").json()
    assert (progress["done"], progress["total"], progress["is_complete"]) == (0, 1000, False)
    assert progress["results"] == [] and set(progress["counts"].values()) == {0}


def test_nothing_valid_is_a_400_and_sends_nothing(broker_url: str, app: Celery) -> None:
    client = Client()
    response = client.post("/api/crn/check/", {"numbers": ["213", "2143"]}, content_type="application/json")
    assert response.status_code == 400
    assert [i["number"] for i in response.json()["invalid"]] == ["213", "2143"]
    assert client.get("/api/crn/check/").status_code == 400
    assert client.post("/api/crn/check/", {"numbers": []}, content_type="application/json").status_code == 400
    assert queue_depths(app) == {}


def test_unknown_group_is_a_404(broker_url: str) -> None:
    assert Client().get("/api/crn/check/no-such-group/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    "/admin/", "/admin/checks/checkedcrn/", "/admin/checks/checkedcrn/?status__exact=closed",
    "/admin/celeriac/taskresult/", "/admin/celeriac/taskresult/?state__exact=SUCCESS",
    "/admin/celeriac/savedgroup/",
])
def test_admin_pages_render(admin_client: Client, path: str) -> None:
    assert admin_client.get(path).status_code == 200


def test_schema_and_docs_render() -> None:
    client = Client()
    schema = client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert set(paths) >= {"/api/crn/check/", "/api/crn/check/{group_id}/"}
    assert {"get", "post"} <= set(paths["/api/crn/check/"])
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
