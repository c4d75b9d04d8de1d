"""The dashboard in a real browser (Debian's chromium, through Playwright) beside a real worker,
on SQLite and on Redis: every page, live counters, retry, requeue, revoke, login and CSRF.

With CELERIAC_DASHBOARD_SCREENSHOTS=1 the SQLite run saves each page to docs/images/ for
docs/dashboard.md.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CI) saying how to install it
    expect = None

from .conftest import ROOT, USER, Stack

SCREENSHOTS = ROOT / "docs" / "images"
PAGES = [("/", "Overview", "overview"), ("/queues", "Queues", "queues"), ("/workers", "Workers", "workers"),
         ("/tasks", "Tasks", "tasks"), ("/dead-letters", "Dead letters", "dead-letters"),
         ("/schedules", "Schedules", "schedules")]


def shoot(page: Any, stack: Stack, name: str) -> None:
    if stack.kind == "sqlite" and os.environ.get("CELERIAC_DASHBOARD_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def key() -> str:
    return uuid.uuid4().hex[:8]


def test_viewing_needs_a_login_and_a_wrong_password_is_refused(browser: Any, stack: Stack) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.url}/tasks")
    expect(page).to_have_url(re.compile(r"/login\?next=/tasks"))
    page.fill("input[name=user]", USER)
    page.fill("input[name=password]", "wrong")
    page.click("form.login button")
    expect(page.locator("#login-failed")).to_contain_text("Wrong user or password")
    context.close()


def test_every_page_renders(page: Any, stack: Stack) -> None:
    ids = [stack.send("add", i, 3) for i in range(6)] + [stack.send("fail_once", key())]
    for task_id in ids:
        stack.wait_state(task_id, {"SUCCESS", "FAILURE"})
    for path, heading, name in PAGES:
        page.goto(f"{stack.url}{path}")
        expect(page.locator("main h1")).to_have_text(heading)
        expect(page.locator("header .live-strip")).to_be_visible()
        shoot(page, stack, name)
    page.goto(f"{stack.url}/workers")
    expect(page.locator("section.worker .badge").first).to_have_text("online")
    page.goto(f"{stack.url}/schedules")
    expect(page.locator("tr[data-entry=tidy-up]")).to_contain_text("tests.dashboard.proj.add")
    # The broker URL is shown, its password never (these URLs have none; see test_app for one that does).
    expect(page.locator(".broker code")).to_have_text(stack.broker_url.split("?")[0] if stack.kind == "sqlite"
                                                      else re.compile(rf"^{stack.kind}(ql)?://"))


def test_a_counter_changes_while_the_worker_runs_tasks(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.url}/")
    counter = page.locator("#count-succeeded")
    expect(page.locator("#live-dot.on")).to_be_attached()
    before = int(counter.inner_text())
    ids = [stack.send("add", i, i) for i in range(5)]
    for task_id in ids:
        stack.wait_state(task_id, {"SUCCESS"})
    # No reload: the number changes over the SSE stream.
    for _ in range(100):  # the page's CSP allows no eval, so no wait_for_function: look every 0.2 s
        if int(counter.inner_text()) >= before + 5:
            break
        page.wait_for_timeout(200)
    assert int(counter.inner_text()) >= before + 5, stack.logs()
    shoot(page, stack, "overview")


def test_retry_a_failed_task_and_see_it_succeed(page: Any, stack: Stack) -> None:
    task_id = stack.send("fail_once", key())
    stack.wait_state(task_id, {"FAILURE"})
    page.goto(f"{stack.url}/tasks/{task_id}")
    expect(page.locator("main h1 .badge")).to_have_text("FAILURE")
    expect(page.locator("pre.traceback")).to_contain_text("ValueError")
    # The timeline comes from the workers' events, which reach the dashboard a moment after
    # the result: sent, received and started by the worker, then the failure.
    timeline = page.locator("table.timeline tbody")
    for _ in range(60):
        if "received" in timeline.inner_text():
            break
        page.wait_for_timeout(500)
        page.reload()
    for step in ("sent", "received", "started", "failed"):
        expect(timeline).to_contain_text(step)
    expect(timeline).to_contain_text("celeriac@")  # each with its worker
    shoot(page, stack, "task-failed")
    page.click("#retry")
    expect(page.locator("#flash")).to_contain_text("Sent again as")
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != task_id
    expect(page.locator("main h1 .badge")).to_have_text("SUCCESS", timeout=30_000)
    expect(page.locator("main")).to_contain_text(task_id)  # "sent again from"
    assert stack.app.AsyncResult(task_id).state == "FAILURE"  # the old result is left as it was


def test_requeue_a_dead_letter_and_see_it_succeed(page: Any, stack: Stack) -> None:
    task_id = stack.send("reject_once", key())
    page.goto(f"{stack.url}/dead-letters")
    row = page.locator(f"tr[data-task='{task_id}']")
    expect(row).to_be_visible(timeout=30_000)  # appears without a reload
    expect(row).to_contain_text("not ready yet")
    shoot(page, stack, "dead-letters")
    row.locator("button", has_text="Requeue").click()
    expect(page.locator("#flash")).to_contain_text("Requeued 1.")
    assert stack.wait_state(task_id, {"SUCCESS"}) == "SUCCESS"
    page.goto(f"{stack.url}/tasks/{task_id}")
    expect(page.locator("main h1 .badge")).to_have_text("SUCCESS")


def test_revoke_a_running_task(page: Any, stack: Stack) -> None:
    task_id = stack.send("sleepy", 120)
    page.goto(f"{stack.url}/tasks/{task_id}")
    # The page shows the task once a heartbeat lists it (reloading until the task is known).
    for _ in range(60):
        if page.locator("main h1 .badge").count():
            break
        page.wait_for_timeout(500)
        page.goto(f"{stack.url}/tasks/{task_id}")
    expect(page.locator("main h1 .badge")).to_have_text("STARTED")
    page.goto(f"{stack.url}/workers")
    expect(page.locator(f"a[href$='/tasks/{task_id}']")).to_be_visible()
    shoot(page, stack, "workers")
    page.goto(f"{stack.url}/tasks/{task_id}")
    expect(page.locator("input[name=terminate]")).to_be_checked()
    shoot(page, stack, "task-running")
    page.click("#revoke")
    expect(page.locator("#flash")).to_contain_text("revoked")
    assert stack.wait_state(task_id, {"REVOKED"}) == "REVOKED"
    expect(page.locator("main h1 .badge")).to_have_text("REVOKED", timeout=30_000)


def test_actions_need_a_login(browser: Any, stack: Stack) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{stack.url}/login")  # an anonymous session, with its CSRF token
    token = page.locator("input[name=csrf_token]").input_value()
    response = page.request.post(f"{stack.url}/dead-letters/purge", form={"csrf_token": token, "confirm": "yes"})
    assert response.status == 403
    assert "Log in to do this" in response.text()
    response = page.request.post(f"{stack.url}/api/dead-letters/purge", headers={"X-CSRF-Token": token})
    assert response.status == 401
    context.close()


def test_a_post_without_the_csrf_token_is_refused(page: Any, stack: Stack) -> None:
    stack.app.send_task(f"{'tests.dashboard.proj'}.add", (1, 1), queue="held-back")  # no worker reads it
    page.goto(f"{stack.url}/queues")
    expect(page.locator("tr[data-queue=held-back] .waiting")).to_have_text("1")
    response = page.request.post(f"{stack.url}/queues/purge", form={"queue": "held-back", "confirm": "yes"})
    assert response.status == 403
    assert "CSRF" in response.text()
    response = page.request.post(f"{stack.url}/api/queues/held-back/purge")
    assert response.status == 403
    page.goto(f"{stack.url}/queues")
    expect(page.locator("tr[data-queue=held-back] .waiting")).to_have_text("1")
    # With the token (the page's own form, after the confirmation) it is done.
    page.click("tr[data-queue=held-back] a.button")
    shoot(page, stack, "purge-confirm")
    page.click("main form button.danger")
    expect(page.locator("#flash")).to_contain_text("Purged 1 messages from held-back")


def test_a_schedule_runs_now_and_is_switched_off_and_on(page: Any, stack: Stack) -> None:
    page.goto(f"{stack.url}/schedules")
    row = page.locator("tr[data-entry=tidy-up]")
    row.locator("button", has_text="Run now").click()
    expect(page.locator("#flash")).to_contain_text("tidy-up sent now as")
    expect(page.locator("main h1 .badge")).to_have_text("SUCCESS", timeout=30_000)
    page.goto(f"{stack.url}/schedules")
    expect(row).to_contain_text("SUCCESS")
    expect(row).to_contain_text("(by hand)")
    row.locator("button", has_text="Disable").click()
    expect(page.locator("#flash")).to_contain_text("tidy-up disabled")
    expect(row.locator("td").nth(3)).to_have_text("no")
    row.locator("button", has_text="Enable").click()
    expect(row.locator("td").nth(3)).to_have_text("yes")
