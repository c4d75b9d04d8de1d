"""``/api/...``: the pages' data as JSON, the same actions, and ``/api/openapi.json`` describing them.

Reads need what the pages need (a login unless viewing is open), or HTTP Basic auth with
the dashboard's login (for scripts and Prometheus). Actions need a login and either the
page session's CSRF token in an ``X-CSRF-Token`` header, or Basic auth with a JSON body
(``Content-Type: application/json``, which a browser cannot send to another site without
asking first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..exceptions import CeleriacError
from .auth import HOW_TO_SET, is_loopback
from .metrics import CONTENT_TYPE
from .reads import PAGE_SIZE, ActionRefused, TaskFilter, parse_time
from .web import Site

Handler = Callable[[Request], Awaitable[Any]]


def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def routes(site: Site) -> list[Route]:
    dash, policy = site.dash, site.policy

    async def may_read(request: Request) -> JSONResponse | None:
        if policy.login is None:
            client = request.client.host if request.client else ""
            if client and not is_loopback(client):
                return _refused(403, f"no login is configured, so only this machine may read; {HOW_TO_SET}")
            return None
        if policy.may_view(site.session(request)) or await policy.basic_user(request.headers.get("authorization")):
            return None
        return _refused(401, "log in, or send HTTP Basic auth with the dashboard's user")

    async def may_act(request: Request) -> JSONResponse | None:
        if policy.login is None:
            return _refused(403, f"actions need a login, and none is configured: {HOW_TO_SET}")
        session = site.session(request)
        if session.user is not None and not session.is_new:
            if not site.same_origin(request) or not policy.check_csrf(session, request.headers.get("x-csrf-token")):
                return _refused(403, "the X-CSRF-Token header is missing or wrong")
            return None
        if await policy.basic_user(request.headers.get("authorization")):
            if not request.headers.get("content-type", "").startswith("application/json"):
                return _refused(403, "with Basic auth, send the action as JSON (Content-Type: application/json)")
            return None
        return _refused(401, "actions need a login (a session with its CSRF token, or HTTP Basic auth)")

    def reading(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            refusal = await may_read(request)
            if refusal is not None:
                return refusal
            result = await handler(request)
            return result if isinstance(result, Response) else JSONResponse(result)
        return guarded

    def acting(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            refusal = await may_act(request)
            if refusal is not None:
                return refusal
            try:
                result = await handler(request)
            except (ActionRefused, CeleriacError) as exc:
                return _refused(409, str(exc))
            return JSONResponse(result)
        return guarded

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def overview(request: Request) -> Any:
        return await dash.overview()

    async def queues(request: Request) -> Any:
        return {"queues": await dash.queues()}

    async def workers(request: Request) -> Any:
        return {"workers": await dash.workers()}

    async def tasks(request: Request) -> Any:
        q = request.query_params
        flt = TaskFilter(name=q.get("name", ""), state=q.get("state", ""), queue=q.get("queue", ""),
                         worker=q.get("worker", ""), id_prefix=q.get("id", ""),
                         since=parse_time(q.get("since")), until=parse_time(q.get("until")))
        try:
            limit = max(1, min(500, int(q.get("limit", PAGE_SIZE))))
        except ValueError:
            limit = PAGE_SIZE
        return await dash.tasks(flt, q.get("after"), limit)

    async def task(request: Request) -> Any:
        detail = await dash.task(request.path_params["task_id"])
        return detail if detail is not None else _refused(404, "no such task is known")

    async def dead_letters(request: Request) -> Any:
        q = request.query_params
        return {"dead_letters": await dash.dead_letters(q.get("queue", ""), q.get("reason", ""), q.get("name", ""))}

    async def schedules(request: Request) -> Any:
        return await dash.schedules()

    async def metrics(request: Request) -> Any:
        return Response(await site.metrics.render(), media_type=CONTENT_TYPE)

    async def retry(request: Request) -> Any:
        return {"task_id": await dash.retry(request.path_params["task_id"])}

    async def revoke(request: Request) -> Any:
        terminate = bool((await body(request)).get("terminate", False))
        await dash.revoke(request.path_params["task_id"], terminate)
        return {"revoked": request.path_params["task_id"], "terminate": terminate}

    async def requeue(request: Request) -> Any:
        data = await body(request)
        ids = data.get("task_ids")
        if isinstance(ids, list):
            return await dash.requeue([str(i) for i in ids])
        if data.get("all") is True:
            return await dash.requeue_matching(str(data.get("queue", "")), str(data.get("reason", "")),
                                               str(data.get("name", "")))
        raise ActionRefused("send {\"task_ids\": [...]} or {\"all\": true} (with queue/reason/name to filter)")

    async def purge_dead(request: Request) -> Any:
        return {"deleted": await dash.purge_dead_letters()}

    async def purge_queue(request: Request) -> Any:
        return {"deleted": await dash.purge_queue(request.path_params["queue"])}

    async def schedule_enable(request: Request) -> Any:
        await dash.switch_schedule(request.path_params["name"], True)
        return {"enabled": True}

    async def schedule_disable(request: Request) -> Any:
        await dash.switch_schedule(request.path_params["name"], False)
        return {"enabled": False}

    async def schedule_run(request: Request) -> Any:
        return {"task_id": await dash.run_schedule_now(request.path_params["name"])}

    async def openapi(request: Request) -> Any:
        return openapi_document(str(request.scope.get("root_path", "")).rstrip("/"))

    gets: list[tuple[str, Handler]] = [
        ("/api/overview", overview), ("/api/queues", queues), ("/api/workers", workers), ("/api/tasks", tasks),
        ("/api/tasks/{task_id}", task), ("/api/dead-letters", dead_letters), ("/api/schedules", schedules),
        ("/api/openapi.json", openapi), ("/metrics", metrics),
    ]
    posts: list[tuple[str, Handler]] = [
        ("/api/tasks/{task_id}/retry", retry), ("/api/tasks/{task_id}/revoke", revoke),
        ("/api/dead-letters/requeue", requeue), ("/api/dead-letters/purge", purge_dead),
        ("/api/queues/{queue}/purge", purge_queue), ("/api/schedules/{name}/enable", schedule_enable),
        ("/api/schedules/{name}/disable", schedule_disable), ("/api/schedules/{name}/run", schedule_run),
    ]
    return ([Route(path, reading(h), methods=["GET"]) for path, h in gets]
            + [Route(path, acting(h), methods=["POST"]) for path, h in posts])


# --- the OpenAPI document --------------------------------------------------------------

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NUM = {"type": ["number", "null"]}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _arr(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


SCHEMAS: dict[str, dict[str, Any]] = {
    "Summary": _obj(succeeded=_INT, failed=_INT, retried=_INT, revoked=_INT, started=_INT,
                    rate={"type": "number", "description": "outcomes per second over the last 10 s"},
                    waiting=_INT, leased=_INT, dead_letters=_INT, workers_online=_INT, workers_lost=_INT,
                    running=_INT, error=_NSTR),
    "Queue": _obj(name=_STR, waiting=_INT, queued=_INT, scheduled=_INT, leased=_INT,
                  oldest_age_s={"type": ["number", "null"],
                                "description": "seconds since the oldest queued message became due"},
                  dead_letters=_INT, lease_expirations=_INT, lease_reclaims=_INT, succeeded_last_hour=_INT,
                  failed_last_hour=_INT, per_minute={"type": "number"}),
    "Worker": _obj(hostname=_STR, state={"enum": ["online", "lost", "offline"]}, pid={"type": ["integer", "null"]},
                   concurrency={"type": ["integer", "null"]}, processed={"type": ["integer", "null"]},
                   held=_arr(_obj(task_id=_STR, name=_NSTR, running_s={"type": "number"})),
                   last_heartbeat=_STR, heartbeat_age_s={"type": "number"}),
    "TaskRow": _obj(task_id=_STR, name=_NSTR, state=_STR, queue=_NSTR, worker=_NSTR, when=_STR,
                    runtime_s=_NUM, retries=_INT, exception=_NSTR),
    "TaskPage": _obj(tasks=_arr({"$ref": "#/components/schemas/TaskRow"}),
                     next={"type": ["string", "null"], "description": "pass as ?after= for the next page"},
                     known=_INT, source=_STR),
    "Task": _obj(task_id=_STR, state=_STR, name=_NSTR, queue=_NSTR, worker=_NSTR, retries=_INT, args=_NSTR,
                 kwargs=_NSTR, result=_NSTR, exception=_NSTR, traceback=_NSTR, parent_id=_NSTR, group_id=_NSTR,
                 children=_arr(_STR), retry_of=_NSTR,
                 timeline=_arr(_obj(what=_STR, when=_STR, worker=_NSTR, detail=_STR)),
                 running={"type": "boolean"}, can_retry={"type": "boolean"}),
    "DeadLetter": _obj(task_id=_STR, name=_STR, queue=_STR, reason=_STR, failed_at=_STR, deliveries=_INT,
                       priority=_INT, call=_STR),
    "Entry": _obj(name=_STR, task=_STR, schedule=_STR, enabled={"type": "boolean"}, next_fire=_NSTR,
                  last_fire=_NSTR, last_task_id=_NSTR, last_state=_NSTR, source=_STR),
    "Requeued": _obj(requeued=_arr(_STR), skipped={"type": "object", "additionalProperties": _STR}),
    "Error": _obj(error=_STR),
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _q(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": _STR, "description": description}


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _STR}


def _get(summary: str, schema: dict[str, Any], params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [], "responses": {
        "200": _json(schema), "401": _json(_ref("Error"), "login needed")}}}


def _post(summary: str, schema: dict[str, Any], params: list[dict[str, Any]] | None = None,
          body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [], "responses": {
        "200": _json(schema), "401": _json(_ref("Error"), "login needed"),
        "403": _json(_ref("Error"), "CSRF token missing or wrong, or no login configured"),
        "409": _json(_ref("Error"), "refused, with the reason")}}
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return {"post": op}


def openapi_document(root: str = "") -> dict[str, Any]:
    task_filters = [_q("name", "task name contains"), _q("state", "SUCCESS, FAILURE, RETRY, REVOKED, ..."),
                    _q("queue", "queue name"), _q("worker", "worker name contains"), _q("id", "task id prefix"),
                    _q("since", "ISO time (UTC) or epoch seconds"), _q("until", "ISO time (UTC) or epoch seconds"),
                    _q("after", "the previous page's next key"), _q("limit", "rows, at most 500")]
    return {
        "openapi": "3.1.0",
        "info": {"title": "celeriac dashboard API", "version": "1",
                 "description": "What the dashboard's pages show, and its actions. Reads need a login unless "
                                "viewing is open; actions need a login and a CSRF token (X-CSRF-Token, from a "
                                "page session) or HTTP Basic auth with a JSON body."},
        "servers": [{"url": root or "/"}],
        "components": {"schemas": SCHEMAS, "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "paths": {
            "/api/overview": _get("Counts over the last hour, per-minute series, wait and runtime percentiles "
                                  "(the hour's and per minute), queues",
                                  _obj(summary=_ref("Summary"), series={"type": "object"},
                                       runtime={"type": "object"}, wait={"type": "object"},
                                       percentile_series={"type": "object"}, queues=_arr(_ref("Queue")))),
            "/api/queues": _get("Queues", _obj(queues=_arr(_ref("Queue")))),
            "/api/workers": _get("Workers from their heartbeats", _obj(workers=_arr(_ref("Worker")))),
            "/api/tasks": _get("Tasks, newest first, paginated by key", _ref("TaskPage"), task_filters),
            "/api/tasks/{task_id}": _get("One task: call, result or traceback, timeline", _ref("Task"),
                                         [_p("task_id")]),
            "/api/dead-letters": _get("Dead letters", _obj(dead_letters=_arr(_ref("DeadLetter"))),
                                      [_q("queue", "queue"), _q("reason", "reason contains"),
                                       _q("name", "task name contains")]),
            "/api/schedules": _get("Beat's entries", _obj(entries=_arr(_ref("Entry")), error=_NSTR,
                                                          beat_seen={"type": "boolean"})),
            "/metrics": {"get": {"summary": "Prometheus metrics (text format)",
                                 "responses": {"200": {"description": "OK", "content": {"text/plain": {}}}}}},
            "/api/tasks/{task_id}/retry": _post("Send a finished task again under a new id", _obj(task_id=_STR),
                                                [_p("task_id")]),
            "/api/tasks/{task_id}/revoke": _post("Revoke a task (terminate: stop it if running)",
                                                 _obj(revoked=_STR, terminate={"type": "boolean"}), [_p("task_id")],
                                                 _obj(terminate={"type": "boolean"})),
            "/api/dead-letters/requeue": _post("Requeue dead letters: by id, or all matching a filter",
                                               _ref("Requeued"), body=_obj(
                                                   task_ids=_arr(_STR), all={"type": "boolean"}, queue=_STR,
                                                   reason=_STR, name=_STR)),
            "/api/dead-letters/purge": _post("Delete every dead letter", _obj(deleted=_INT)),
            "/api/queues/{queue}/purge": _post("Delete a queue's waiting messages", _obj(deleted=_INT),
                                               [_p("queue")]),
            "/api/schedules/{name}/enable": _post("Enable a beat entry", _obj(enabled={"type": "boolean"}),
                                                  [_p("name")]),
            "/api/schedules/{name}/disable": _post("Disable a beat entry", _obj(enabled={"type": "boolean"}),
                                                   [_p("name")]),
            "/api/schedules/{name}/run": _post("Send a beat entry's task now", _obj(task_id=_STR), [_p("name")]),
        },
    }
