"""The dashboard in-process (httpx over ASGI, a worker on the same loop, memory:// and SQLite):
auth, CSRF, the JSON API and its OpenAPI document, /metrics, key pagination, the CLI."""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from celeriac import Celery
from celeriac.cli import main
from celeriac.dashboard import create_app
from celeriac.dashboard.auth import (
    PasswordLogin,
    Session,
    Signer,
    check_password,
    hash_password,
    is_loopback,
    login_from_settings,
)
from celeriac.dashboard.reads import Dashboard
from celeriac.exceptions import Reject

from ..conftest import postgres_test_url
from ..unit.helpers import drain

USER, PASSWORD = "ops", "s3cret-Pass"
LOCAL = ("127.0.0.1", 40000)
HASH = hash_password(PASSWORD)

app: Celery  # what -A names in the CLI tests


def make_app(url: str) -> Celery:
    celery = Celery(f"dash-{uuid.uuid4().hex[:6]}", broker=url)
    celery.conf.result_extended = True
    marks: set[str] = set()

    @celery.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @celery.task(name="fail_once")
    def fail_once(key: str) -> str:
        if key not in marks:
            marks.add(key)
            raise ValueError(f"first attempt of {key}")
        return "ok"

    @celery.task(name="reject_once")
    def reject_once(key: str) -> str:
        if key not in marks:
            marks.add(key)
            raise Reject("not yet", requeue=False)
        return "ok"

    return celery


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def celery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    if request.param == "postgres":
        with postgres_test_url("dash") as url:
            yield make_app(url)
        return
    yield make_app(f"memory://{uuid.uuid4().hex}" if request.param == "memory" else f"sqlite:///{tmp_path}/b.db")


class Client:
    """An httpx client on the ASGI app, with the page session's CSRF token at hand."""

    def __init__(self, celery: Celery, *, client: tuple[str, int] = LOCAL, **options: Any) -> None:
        self.asgi = create_app(celery, **options)
        self.site = self.asgi.state.site
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.asgi, client=client),
                                      base_url="http://dash.test")

    async def csrf(self, path: str = "/login") -> str:
        page = await self.http.get(path)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found, page.text
        return found.group(1)

    async def login(self) -> None:
        token = await self.csrf()
        response = await self.http.post("/login", data={"csrf_token": token, "user": USER, "password": PASSWORD,
                                                        "next": "/tasks"})
        assert response.status_code == 303 and response.headers["location"] == "/tasks", response.text

    async def settle(self) -> None:
        """Fold the events written so far (the monitor otherwise reads once a second)."""
        await self.site.dash.monitor.poll()
        self.site.dash._forget_cache()

    async def close(self) -> None:
        await self.http.aclose()
        await self.site.dash.monitor.stop()


@pytest.fixture
async def client(celery: Celery) -> AsyncIterator[Client]:
    c = Client(celery, login=PasswordLogin(USER, HASH))
    yield c
    await c.close()
    await celery.close()


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- passwords, sessions ----------------------------------------------------------------


def test_a_password_hash_checks_only_its_password() -> None:
    encoded = hash_password("hunter2")
    assert encoded.startswith("scrypt$") and "hunter2" not in encoded
    assert check_password("hunter2", encoded)
    assert not check_password("hunter3", encoded)
    assert not check_password("hunter2", "scrypt$garbage")
    assert not check_password("hunter2", "md5$x$y")


def test_a_django_pbkdf2_hash_is_accepted() -> None:
    digest = hashlib.pbkdf2_hmac("sha256", b"hunter2", b"saltsalt", 1000)
    encoded = f"pbkdf2_sha256$1000$saltsalt${base64.b64encode(digest).decode()}"
    assert check_password("hunter2", encoded)
    assert not check_password("hunter", encoded)


def test_a_session_cookie_cannot_be_forged_or_reused_with_another_secret() -> None:
    signer = Signer("one")
    cookie = signer.dumps(Session(user="ops"))
    assert signer.loads(cookie).user == "ops"  # type: ignore[union-attr]
    payload, _, signature = cookie.rpartition(".")
    padded = payload + "=" * (-len(payload) % 4)
    forged = base64.urlsafe_b64encode(base64.urlsafe_b64decode(padded).replace(b'"ops"', b'"root"')).decode()
    assert signer.loads(f"{forged}.{signature}") is None
    assert Signer("two").loads(cookie) is None
    assert signer.loads(signer.dumps(Session(user="ops", expires=1.0))) is None  # expired


@pytest.mark.parametrize(("address", "loopback"), [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True),
                                                   ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False),
                                                   ("::", False), ("example.com", False)])
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_the_login_comes_from_the_environment_before_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    celery = Celery("x", broker="memory://login-settings")
    monkeypatch.delenv("CELERIAC_DASHBOARD_USER", raising=False)
    monkeypatch.delenv("CELERIAC_DASHBOARD_PASSWORD_HASH", raising=False)
    assert login_from_settings(celery) is None
    celery.conf.dashboard_user = "from-settings"
    celery.conf.dashboard_password_hash = HASH
    login = login_from_settings(celery)
    assert isinstance(login, PasswordLogin) and login.user == "from-settings"
    monkeypatch.setenv("CELERIAC_DASHBOARD_USER", "from-env")
    monkeypatch.setenv("CELERIAC_DASHBOARD_PASSWORD_HASH", HASH)
    login = login_from_settings(celery)
    assert isinstance(login, PasswordLogin) and login.user == "from-env"


def test_the_broker_password_is_never_shown() -> None:
    dash = Dashboard(Celery("x", broker="redis://ops:topsecret@redis.internal:6379/0"))
    assert dash.broker_shown() == "redis://ops:***@redis.internal:6379/0"


# --- the CLI --------------------------------------------------------------------------


def test_a_public_address_without_a_login_is_refused_with_how_to_set_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "app", Celery("cli", broker="memory://cli-dash"), raising=False)
    env = {"CELERIAC_DASHBOARD_USER": "", "CELERIAC_DASHBOARD_PASSWORD_HASH": "", "DJANGO_SETTINGS_MODULE": ""}
    result = CliRunner().invoke(main, ["dashboard", "-A", f"{__name__}:app", "--address", "0.0.0.0"], env=env)
    assert result.exit_code == 2, result.output
    assert "refusing to listen on 0.0.0.0 without a login" in result.output
    assert "celeriac dashboard hash-password" in result.output
    assert "CELERIAC_DASHBOARD_PASSWORD_HASH" in result.output


def test_hash_password_prints_a_hash_that_checks() -> None:
    result = CliRunner().invoke(main, ["dashboard", "hash-password", "--password-stdin"], input="pa ss\n")
    assert result.exit_code == 0, result.output
    assert check_password("pa ss", result.output.strip())


# --- pages and actions ------------------------------------------------------------------


async def test_pages_need_a_login_unless_viewing_is_open(celery: Celery) -> None:
    closed = Client(celery, login=PasswordLogin(USER, HASH))
    response = await closed.http.get("/tasks?state=FAILURE")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/tasks%3Fstate%3DFAILURE"
    assert (await closed.http.get("/api/queues")).status_code == 401
    assert (await closed.http.get("/api/queues", headers=basic())).status_code == 200
    assert (await closed.http.get("/metrics", headers=basic(password="nope"))).status_code == 401
    await closed.close()
    opened = Client(celery, login=PasswordLogin(USER, HASH), open_viewing=True)
    for path in ("/", "/queues", "/workers", "/tasks", "/dead-letters", "/schedules", "/api/overview", "/metrics"):
        assert (await opened.http.get(path)).status_code == 200, path
    await opened.close()
    await celery.close()


async def test_without_a_login_only_this_machine_may_view_and_nobody_may_act(celery: Celery) -> None:
    local = Client(celery, login=None)
    assert (await local.http.get("/")).status_code == 200
    await local.http.get("/queues")  # no form is shown; take the session's token from its cookie
    token = local.site.policy.signer.loads(local.http.cookies.get("celeriac_dashboard")).csrf
    response = await local.http.post("/queues/purge", data={"csrf_token": token, "queue": "celery", "confirm": "yes"})
    assert response.status_code == 403 and "none is configured" in response.text
    await local.close()
    remote = Client(celery, login=None, client=("203.0.113.9", 5000))
    response = await remote.http.get("/")
    assert response.status_code == 403 and "no login configured" in response.text
    assert (await remote.http.get("/api/overview")).status_code == 403
    await remote.close()
    await celery.close()


async def test_a_post_without_its_csrf_token_or_from_another_site_is_refused(client: Client, celery: Celery) -> None:
    await client.login()
    celery.send_task("add", (1, 2), queue="kept")
    token = await client.csrf("/queues")
    form = {"queue": "kept", "confirm": "yes"}
    assert (await client.http.post("/queues/purge", data=form)).status_code == 403
    assert (await client.http.post("/queues/purge", data={**form, "csrf_token": "forged"})).status_code == 403
    response = await client.http.post("/queues/purge", data={**form, "csrf_token": token},
                                      headers={"Origin": "http://evil.test"})
    assert response.status_code == 403
    assert (await client.http.post("/api/queues/kept/purge")).status_code == 403
    client.site.dash._forget_cache()
    assert (await client.site.dash.depths())["kept"] == 1
    response = await client.http.post("/queues/purge", data={**form, "csrf_token": token},
                                      headers={"Origin": "http://dash.test"})
    assert response.status_code == 303
    assert (await client.http.get("/queues")).text.count("Purged 1 messages from kept") == 1


async def test_logging_out_ends_the_session(client: Client) -> None:
    await client.login()
    assert (await client.http.get("/tasks")).status_code == 200
    token = await client.csrf("/tasks")
    assert (await client.http.post("/logout", data={"csrf_token": token})).status_code == 303
    assert (await client.http.get("/tasks")).status_code == 303


async def test_the_task_list_is_paginated_by_key(client: Client, celery: Celery) -> None:
    await client.login()
    for i in range(120):
        celery.send_task("add", (i, 1))
    await drain(celery)
    await client.settle()
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        response = await client.http.get("/api/tasks", params={"limit": 50, **({"after": after} if after else {})})
        body = response.json()
        seen += [row["task_id"] for row in body["tasks"]]
        pages += 1
        after = body["next"]
        if after is None:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 120
    assert all(row["state"] == "SUCCESS" for row in body["tasks"])
    # More tasks arriving between pages do not shift the next page (a key, not an offset).
    first = (await client.http.get("/api/tasks", params={"limit": 50})).json()
    celery.send_task("add", (0, 0))
    await drain(celery)
    await client.settle()
    second = (await client.http.get("/api/tasks", params={"limit": 50, "after": first["next"]})).json()
    assert second["tasks"][0]["task_id"] == seen[50]
    # Filters: state and id prefix.
    one = seen[7]
    found = (await client.http.get("/api/tasks", params={"id": one[:10]})).json()["tasks"]
    assert [row["task_id"] for row in found] == [one]
    assert (await client.http.get("/api/tasks", params={"state": "FAILURE"})).json()["tasks"] == []
    page = await client.http.get("/tasks", params={"name": "add"})
    assert page.status_code == 200 and 'rel="next"' in page.text


async def test_retry_a_failed_task_through_the_api(client: Client, celery: Celery) -> None:
    result = celery.send_task("fail_once", ("k1",))
    await drain(celery)
    await client.settle()
    detail = (await client.http.get(f"/api/tasks/{result.id}", headers=basic())).json()
    assert detail["state"] == "FAILURE" and detail["can_retry"] and "ValueError" in detail["traceback"]
    assert detail["args"] is not None and "k1" in detail["args"]
    refused = await client.http.post(f"/api/tasks/{result.id}/retry", headers=basic())
    assert refused.status_code == 403  # Basic auth without a JSON body: a browser could have sent it
    response = await client.http.post(f"/api/tasks/{result.id}/retry", headers=basic(), json={})
    assert response.status_code == 200, response.text
    new_id = response.json()["task_id"]
    await drain(celery)
    await client.settle()
    new = (await client.http.get(f"/api/tasks/{new_id}", headers=basic())).json()
    assert new["state"] == "SUCCESS" and new["retry_of"] == result.id
    assert (await celery.result_store()).__class__  # the old result is kept:
    assert (await client.http.get(f"/api/tasks/{result.id}", headers=basic())).json()["state"] == "FAILURE"
    page = await client.http.get(f"/tasks/{result.id}", headers=basic())
    assert page.status_code == 303  # pages take the cookie session, not Basic auth


async def test_requeue_a_dead_letter_from_the_page(client: Client, celery: Celery) -> None:
    await client.login()
    result = celery.send_task("reject_once", ("k2",))
    await drain(celery, expect_dead_letters=True)
    client.site.dash._forget_cache()
    page = await client.http.get("/dead-letters")
    assert result.id in page.text and "not yet" in page.text
    token = await client.csrf("/dead-letters")
    response = await client.http.post("/dead-letters/requeue", data={"csrf_token": token, "queue": "celery"})
    assert response.status_code == 303
    assert "Requeued 1." in (await client.http.get("/dead-letters")).text
    await drain(celery)
    assert celery.AsyncResult(result.id).state == "SUCCESS"


async def test_metrics_parse_and_have_the_series(client: Client, celery: Celery) -> None:
    await client.site.dash.monitor.start()  # counters count events seen after the start
    for i in range(3):
        celery.send_task("add", (i, i))
    celery.send_task("fail_once", ("m",))
    celery.send_task("add", (1, 1), queue="elsewhere")
    await drain(celery)
    await client.settle()
    text = (await client.http.get("/metrics", headers=basic())).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("celeriac_queue_waiting_messages", "celeriac_queue_queued_messages",
                 "celeriac_queue_scheduled_messages", "celeriac_queue_leased_messages",
                 "celeriac_queue_oldest_message_age_seconds", "celeriac_lease_expirations", "celeriac_lease_reclaims",
                 "celeriac_dead_letters", "celeriac_workers", "celeriac_worker_heartbeat_age_seconds",
                 "celeriac_worker_tasks_in_flight", "celeriac_tasks", "celeriac_tasks_started",
                 "celeriac_task_runtime_seconds", "celeriac_task_wait_seconds", "celeriac_tasks_in_flight",
                 "celeriac_event_log_up", "celeriac_aggregates_up"):
        assert name in families, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("celeriac_tasks_total", (("name", "add"), ("outcome", "succeeded")))] == 3
    assert samples[("celeriac_tasks_total", (("name", "fail_once"), ("outcome", "failed")))] == 1
    assert samples[("celeriac_tasks_total", (("name", "fail_once"), ("outcome", "retried")))] == 0
    assert samples[("celeriac_tasks_started_total", (("name", "add"),))] == 3
    assert samples[("celeriac_queue_waiting_messages", (("queue", "elsewhere"),))] == 1
    assert samples[("celeriac_queue_queued_messages", (("queue", "elsewhere"),))] == 1
    assert samples[("celeriac_queue_oldest_message_age_seconds", (("queue", "elsewhere"),))] >= 0
    assert samples[("celeriac_queue_leased_messages", (("queue", "elsewhere"),))] == 0
    assert samples[("celeriac_task_runtime_seconds_count", (("name", "add"),))] == 3
    assert samples[("celeriac_task_wait_seconds_count", (("name", "add"),))] == 3
    assert samples[("celeriac_aggregates_up", ())] == 1


async def test_the_task_page_shows_the_timeline_with_its_workers(client: Client, celery: Celery) -> None:
    celery.conf.task_send_sent_event = True
    result = celery.send_task("add", (2, 3))
    await drain(celery)
    await client.settle()
    task = (await client.http.get(f"/api/tasks/{result.id}", headers=basic())).json()
    steps = [(step["what"], step["worker"]) for step in task["timeline"]]
    assert [what for what, _ in steps] == ["sent", "received", "started", "succeeded"], steps
    sent_by, received_by, started_by, finished_by = (worker for _, worker in steps)
    assert sent_by is not None and sent_by.startswith("client:")
    assert received_by == started_by == finished_by and received_by.startswith("celeriac@")
    assert "waited" in task["timeline"][2]["detail"]
    await client.login()
    page = await client.http.get(f"/tasks/{result.id}")
    assert "received" in page.text and "waited" in page.text


async def test_without_task_sent_events_the_send_time_comes_from_the_message(client: Client, celery: Celery) -> None:
    result = celery.send_task("add", (2, 3))
    await drain(celery)
    await client.settle()
    task = (await client.http.get(f"/api/tasks/{result.id}", headers=basic())).json()
    assert [step["what"] for step in task["timeline"]] == ["sent", "received", "started", "succeeded"]
    assert task["timeline"][0]["worker"] is None and "message" in task["timeline"][0]["detail"]


async def test_the_overview_and_queues_come_from_aggregates_and_queue_stats(client: Client, celery: Celery) -> None:
    for i in range(4):
        celery.send_task("add", (i, i))
    await drain(celery)
    celery.send_task("add", (0, 0), queue="waiting-here")
    celery.send_task("add", (0, 0), queue="waiting-here", countdown=600)
    await client.settle()
    overview = (await client.http.get("/api/overview", headers=basic())).json()
    assert sum(overview["series"]["task-succeeded"]) == 4 and overview["summary"]["succeeded"] == 4
    assert overview["summary"]["started"] == 4
    assert overview["wait"]["p50"] is not None and overview["runtime"]["p50"] is not None
    assert len(overview["percentile_series"]["wait_p95"]) == 60
    queues = {q["name"]: q for q in (await client.http.get("/api/queues", headers=basic())).json()["queues"]}
    assert queues["celery"]["succeeded_last_hour"] == 4
    here = queues["waiting-here"]
    assert (here["waiting"], here["queued"], here["scheduled"], here["leased"]) == (2, 1, 1, 0)
    assert here["oldest_age_s"] is not None and 0 <= here["oldest_age_s"] < 60
    await client.login()
    page = (await client.http.get("/")).text
    assert "enqueue-to-start wait" in page and 'class="chart lines"' in page
    assert "waiting-here" in (await client.http.get("/queues")).text


async def test_the_openapi_document_lists_every_api_route(client: Client) -> None:
    doc = (await client.http.get("/api/openapi.json", headers=basic())).json()
    assert doc["openapi"].startswith("3.")
    for route in client.asgi.routes:
        path = getattr(route, "path", "")
        if path.startswith("/api/") and path != "/api/openapi.json":
            methods = {m.lower() for m in getattr(route, "methods", set())} - {"head"}
            assert path in doc["paths"], path
            assert methods <= set(doc["paths"][path]), path
    refs = re.findall(r'"#/components/schemas/(\w+)"', str(doc).replace("'", '"'))
    assert refs and set(refs) <= set(doc["components"]["schemas"])


async def test_the_dashboard_mounts_under_a_path(celery: Celery) -> None:
    from celeriac.dashboard import with_dashboard

    async def other(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"the project"})

    asgi = with_dashboard(other, celery, "/ops/dash", login=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi, client=LOCAL),
                                 base_url="http://x") as http:
        assert (await http.get("/elsewhere")).text == "the project"
        page = await http.get("/ops/dash/queues")
        assert page.status_code == 200
        assert 'href="/ops/dash/static/dashboard.css"' in page.text and 'href="/ops/dash/workers"' in page.text
        assert (await http.get("/ops/dash/static/dashboard.js")).status_code == 200
    await celery.close()


def test_manage_py_celeriac_dashboard_reaches_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    from celeriac.contrib.django.management.commands.celeriac import forward

    assert forward(["-A", f"{__name__}:app", "dashboard", "--help"], "manage.py celeriac") == 0
    out = capsys.readouterr().out
    assert "--open-viewing" in out and "hash-password" in out
