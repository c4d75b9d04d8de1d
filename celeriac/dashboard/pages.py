"""The HTML pages and their forms. Each page is rendered on the server; ``static/dashboard.js``
refreshes its ``<main>`` when the SSE stream says something changed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..exceptions import CeleriacError
from .auth import Session
from .reads import PAGE_SIZE, ActionRefused, TaskFilter, parse_time
from .web import Site, base, safe_next

Handler = Callable[[Request], Awaitable[Response]]
STREAM_S = 300.0  # an SSE response ends after this long; EventSource reconnects by itself


def bars_svg(series: dict[str, list[int]], width: int = 720, height: int = 140) -> Markup:
    """Stacked bars, one per minute, drawn on the server so the chart needs no script."""
    kinds = list(series)
    points = len(next(iter(series.values()), []))
    if not points:
        return Markup("")
    totals = [sum(series[k][i] for k in kinds) for i in range(points)]
    top = max(totals) or 1
    step = width / points
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height + 16}" role="img" '
             f'aria-label="outcomes per minute over the last hour (peak {top})">']
    for i in range(points):
        y = float(height)
        for kind in kinds:
            value = series[kind][i]
            if not value:
                continue
            h = value / top * height
            y -= h
            label = kind.removeprefix("task-")
            parts.append(f'<rect class="{label}" x="{i * step + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" '
                         f'height="{h:.1f}"><title>{60 - i} min ago: {value} {label}</title></rect>')
    parts.append(f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" class="axis"/>')
    parts.append(f'<text x="0" y="{height + 13}" class="axis-label">60 min ago</text>')
    parts.append(f'<text x="{width}" y="{height + 13}" text-anchor="end" class="axis-label">now</text>')
    parts.append(f'<text x="{width}" y="10" text-anchor="end" class="axis-label">peak {top}/min</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def lines_svg(series: dict[str, list[float | None]], width: int = 720, height: int = 140,
              what: str = "seconds per minute over the last hour") -> Markup:
    """Lines, one point per minute (a minute without tasks leaves a gap), on a log scale so a
    p95 of minutes and a p50 of milliseconds both show; drawn on the server like the bars."""
    import math

    values = [v for points in series.values() for v in points if v]
    points_n = len(next(iter(series.values()), []))
    if not points_n:
        return Markup("")
    low = min(values, default=0.001)
    high = max(values, default=1.0)
    low, high = max(low, 1e-4), max(high, low * 10)
    span = math.log10(high) - math.log10(low)
    step = width / max(points_n - 1, 1)

    def y(value: float) -> float:
        return height - (math.log10(max(value, low)) - math.log10(low)) / span * (height - 4) - 2

    parts = [f'<svg class="chart lines" viewBox="0 0 {width} {height + 16}" role="img" aria-label="{what}">']
    for name, points in series.items():
        path, dots, pen_down = [], [], False
        for i, value in enumerate(points):
            if not value:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{i * step:.1f},{y(value):.1f}")
            if not pen_down and (i + 1 == len(points) or not points[i + 1]):
                # a minute between two without tasks has no line to draw: a dot instead
                dots.append(f'<circle class="{name}" cx="{i * step:.1f}" cy="{y(value):.1f}" r="2.5"/>')
            pen_down = True
        if path:
            parts.append(f'<path class="{name}" d="{" ".join(path)}"><title>{name}</title></path>')
        parts += dots
    parts.append(f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" class="axis"/>')
    parts.append(f'<text x="0" y="{height + 13}" class="axis-label">60 min ago</text>')
    parts.append(f'<text x="{width}" y="{height + 13}" text-anchor="end" class="axis-label">now</text>')
    parts.append(f'<text x="{width}" y="10" text-anchor="end" class="axis-label">top {_seconds(high)}</text>')
    parts.append(f'<text x="{width}" y="{height - 4}" text-anchor="end" class="axis-label">{_seconds(low)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


def routes(site: Site) -> list[Route]:
    dash = site.dash

    def viewing(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            refusal = site.viewer_refusal(request)
            return refusal if refusal is not None else await handler(request)
        return guarded

    def acting(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            refusal = await site.action_refusal(request)
            if refusal is not None:
                return refusal
            try:
                return await handler(request)
            except (ActionRefused, CeleriacError) as exc:
                return site.error(request, 409, str(exc))
        return guarded

    async def form(request: Request) -> dict[str, str]:
        data = await request.form()
        return {k: v for k, v in data.items() if isinstance(v, str)}

    # --- pages -----------------------------------------------------------------------

    async def overview(request: Request) -> Response:
        data = await dash.overview()
        curves = data["percentile_series"]
        return site.render(request, "overview.html", {
            "page": "overview", **data, "chart": bars_svg(data["series"]),
            "wait_chart": lines_svg({"p50": curves["wait_p50"], "p95": curves["wait_p95"]},
                                    what="enqueue-to-start wait per minute, p50 and p95, over the last hour"),
            "runtime_chart": lines_svg({"p50": curves["runtime_p50"], "p95": curves["runtime_p95"]},
                                       what="runtime per minute, p50 and p95, over the last hour")})

    async def queues(request: Request) -> Response:
        return site.render(request, "queues.html", {"page": "queues", "queues": await dash.queues()})

    async def workers(request: Request) -> Response:
        return site.render(request, "workers.html", {"page": "workers", "workers": await dash.workers(),
                                                     "heartbeat_s": dash.app.settings.worker_heartbeat_seconds})

    async def tasks(request: Request) -> Response:
        q = request.query_params
        flt = TaskFilter(name=q.get("name", ""), state=q.get("state", ""), queue=q.get("queue", ""),
                         worker=q.get("worker", ""), id_prefix=q.get("id", "").strip(),
                         since=parse_time(q.get("since")), until=parse_time(q.get("until")))
        if flt.id_prefix and len(flt.id_prefix) >= 32 and not any(
                (flt.name, flt.state, flt.queue, flt.worker)) and await dash.task(flt.id_prefix):
            return RedirectResponse(f"{base(request)}/tasks/{flt.id_prefix}", status_code=303)
        listing = await dash.tasks(flt, q.get("after"), PAGE_SIZE)
        next_query = {**listing["filter"], "after": listing["next"]} if listing["next"] else None
        return site.render(request, "tasks.html", {"page": "tasks", **listing, "flt": flt,
                                                   "next_query": next_query,
                                                   "states": ["SUCCESS", "FAILURE", "RETRY", "REVOKED",
                                                              "REJECTED", "STARTED"]})

    async def task(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        detail = await dash.task(task_id)
        if detail is None:
            return site.error(request, 404, f"No task {task_id} is known (yet): no worker has started it, or "
                              "the event log no longer holds it and the result store has no record of it. "
                              "This page shows it as soon as a worker starts it.", refresh=True)
        return site.render(request, "task.html", {"page": "tasks", "task": detail})

    async def dead_letters(request: Request) -> Response:
        q = request.query_params
        flt = {"queue": q.get("queue", ""), "reason": q.get("reason", ""), "name": q.get("name", "")}
        letters = await dash.dead_letters(**flt)
        return site.render(request, "dead_letters.html", {"page": "dead", "letters": letters, "flt": flt,
                                                          "filtered": any(flt.values())})

    async def schedules(request: Request) -> Response:
        return site.render(request, "schedules.html", {"page": "schedules", **await dash.schedules()})

    async def confirm_purge(request: Request) -> Response:
        queue = request.query_params.get("queue", "")
        waiting = (await dash.depths()).get(queue, 0)
        return site.render(request, "confirm.html", {
            "page": "queues", "question": f"Delete the {waiting} waiting messages of the queue {queue!r}?",
            "detail": "Queued and scheduled messages are deleted; running tasks are left alone.",
            "action": "/queues/purge", "fields": {"queue": queue}, "button": "Yes, purge it", "back": "/queues"})

    async def confirm_dead_purge(request: Request) -> Response:
        count = len(await dash.dead_letter_list())
        return site.render(request, "confirm.html", {
            "page": "dead", "question": f"Delete all {count} dead letters?",
            "detail": "They cannot be requeued afterwards.", "action": "/dead-letters/purge", "fields": {},
            "button": "Yes, delete them", "back": "/dead-letters"})

    # --- actions ---------------------------------------------------------------------

    async def purge_queue(request: Request) -> Response:
        data = await form(request)
        queue = data.get("queue", "")
        if data.get("confirm") != "yes" or not queue:
            return site.redirect(request, f"/queues/purge?queue={queue}")
        count = await dash.purge_queue(queue)
        return site.redirect(request, "/queues", f"Purged {count} messages from {queue}.")

    async def retry_task(request: Request) -> Response:
        new_id = await dash.retry(request.path_params["task_id"])
        return site.redirect(request, f"/tasks/{new_id}", f"Sent again as {new_id}.")

    async def revoke_task(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        terminate = (await form(request)).get("terminate") == "on"
        await dash.revoke(task_id, terminate)
        what = "revoked and told its worker to stop it" if terminate else "revoked: it will not start"
        return site.redirect(request, f"/tasks/{task_id}", f"{task_id} {what}.")

    async def requeue(request: Request) -> Response:
        data = await form(request)
        if data.get("task_id"):
            outcome = await dash.requeue([data["task_id"]])
        else:
            outcome = await dash.requeue_matching(data.get("queue", ""), data.get("reason", ""),
                                                  data.get("name", ""))
        note = f"Requeued {len(outcome['requeued'])}."
        if outcome["skipped"]:
            note += " Not requeued: " + "; ".join(
                f"{tid} ({'a message with this id is still waiting or running' if why == 'pending' else why})"
                for tid, why in list(outcome["skipped"].items())[:5])
        return site.redirect(request, "/dead-letters", note, "warn" if outcome["skipped"] else "ok")

    async def purge_dead(request: Request) -> Response:
        if (await form(request)).get("confirm") != "yes":
            return site.redirect(request, "/dead-letters/purge")
        count = await dash.purge_dead_letters()
        return site.redirect(request, "/dead-letters", f"Deleted {count} dead letters.")

    async def schedule_switch(request: Request) -> Response:
        name = request.path_params["name"]
        enabled = (await form(request)).get("enabled") == "1"
        await dash.switch_schedule(name, enabled)
        return site.redirect(request, "/schedules", f"{name} {'enabled' if enabled else 'disabled'}.")

    async def schedule_run(request: Request) -> Response:
        name = request.path_params["name"]
        task_id = await dash.run_schedule_now(name)
        return site.redirect(request, f"/tasks/{task_id}", f"{name} sent now as {task_id}.")

    # --- login -----------------------------------------------------------------------

    async def login_page(request: Request) -> Response:
        return site.render(request, "login.html", {"page": "login", "next": safe_next(request.query_params.get("next")),
                                                   "who": site.policy.login.describe() if site.policy.login else None})

    async def login(request: Request) -> Response:
        session = site.session(request)
        data = await form(request)
        nxt = safe_next(data.get("next"))
        if not site.same_origin(request) or not site.policy.check_csrf(session, data.get("csrf_token")):
            return site.error(request, 403, "This form's security token is missing or out of date (CSRF): "
                              "reload the login page (cookies must be allowed).")
        if site.policy.login is None:
            return site.error(request, 403, "No login is configured.")
        if not await site.policy.login.check(data.get("user", ""), data.get("password", "")):
            await asyncio.sleep(0.5)
            return site.render(request, "login.html", {"page": "login", "next": nxt, "failed": True,
                                                       "who": site.policy.login.describe()}, status=401)
        response = RedirectResponse(base(request) + nxt, status_code=303)
        site.save_session(request, response, Session(user=data.get("user", "")))
        return response

    async def logout(request: Request) -> Response:
        session = site.session(request)
        data = await form(request)
        if not site.policy.check_csrf(session, data.get("csrf_token")):
            return site.error(request, 403, "This form's security token is missing or out of date (CSRF).")
        response = RedirectResponse(base(request) + "/", status_code=303)
        site.save_session(request, response, Session())
        return response

    # --- live updates ----------------------------------------------------------------

    async def stream(request: Request) -> Response:
        async def events() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            ends = time.monotonic() + STREAM_S
            while time.monotonic() < ends:
                summary = await dash.summary()
                yield f"event: summary\ndata: {json.dumps(summary)}\n\n"
                await dash.monitor.wait_change(2.0)
                await asyncio.sleep(0.5)  # at most two updates a second per browser

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    views: list[tuple[str, Handler, str]] = [
        ("/", overview, "overview"), ("/queues", queues, "queues"), ("/workers", workers, "workers"),
        ("/tasks", tasks, "tasks"), ("/tasks/{task_id}", task, "task"), ("/dead-letters", dead_letters, "dead"),
        ("/schedules", schedules, "schedules"), ("/queues/purge", confirm_purge, "confirm_purge"),
        ("/dead-letters/purge", confirm_dead_purge, "confirm_dead_purge"), ("/stream", stream, "stream"),
    ]
    actions: list[tuple[str, Handler]] = [
        ("/queues/purge", purge_queue), ("/tasks/{task_id}/retry", retry_task),
        ("/tasks/{task_id}/revoke", revoke_task), ("/dead-letters/requeue", requeue),
        ("/dead-letters/purge", purge_dead), ("/schedules/{name}/switch", schedule_switch),
        ("/schedules/{name}/run", schedule_run),
    ]
    out = [Route(path, viewing(handler), methods=["GET"], name=name) for path, handler, name in views]
    out += [Route(path, acting(handler), methods=["POST"]) for path, handler in actions]
    out += [Route("/login", login_page, methods=["GET"]), Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"])]
    return out
