"""Celery's calling options a task reads back: argsrepr, kwargsrepr, app_id, reply_to, stamps, time limits."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery

from ..unit.helpers import drain


async def test_options_are_accepted_and_reach_the_request(app: Celery) -> None:
    @app.task(bind=True)
    def report(self: Any, *_: Any, **__: Any) -> dict[str, Any]:
        r = self.request
        return {"properties": r.properties, "argsrepr": r.argsrepr, "kwargsrepr": r.kwargsrepr,
                "reply_to": r.reply_to, "headers": r.headers, "stamps": r.stamps,
                "stamped_headers": r.stamped_headers, "nesting": r.replaced_task_nesting,
                "correlation_id": r.correlation_id, "chain": r.chain}

    result = report.apply_async(
        (1,), {"secret": "x"}, argsrepr="(<hidden>,)", kwargsrepr="{'secret': '***'}", app_id="1234",
        reply_to="replies", headers={"x-test-header": "test-value"}, stamped_headers=["monitoring_id"],
        monitoring_id="m-1", content_type="application/json", content_encoding="utf-8",
    )
    plain = report.s().set(argsrepr="()", kwargsrepr="{}").delay()
    await drain(app)
    seen = result.get(timeout=5)
    assert seen["properties"]["app_id"] == "1234" and seen["reply_to"] == "replies"
    assert seen["argsrepr"] == "(<hidden>,)" and seen["kwargsrepr"] == "{'secret': '***'}"
    assert seen["headers"] == {"x-test-header": "test-value"}  # Celery's own headers are request fields
    assert seen["stamped_headers"] == ["monitoring_id"] and seen["stamps"] == {"monitoring_id": "m-1"}
    assert seen["nesting"] == 0 and seen["correlation_id"] == result.id and seen["chain"] == []
    assert plain.get(timeout=5)["argsrepr"] == "()"
    with pytest.raises(TypeError, match="unknown option"):
        report.apply_async(no_such_option=1)


async def test_retry_keeps_custom_headers_and_priority(app: Celery) -> None:
    @app.task(bind=True, max_retries=1)
    def retry_once_headers(self: Any) -> Any:
        if self.request.retries:
            return self.request.headers, self.request.delivery_info["priority"]
        raise self.retry(countdown=0)

    result = retry_once_headers.apply_async(headers={"x-test-header": "test-value"}, priority=7)
    await drain(app)
    await drain(app)
    headers, priority = result.get(timeout=5)
    assert "x-test-header" in headers and priority == 7


async def test_time_limits_on_the_request(app: Celery) -> None:
    @app.task(bind=True)
    def limits(self: Any) -> dict[str, Any]:
        return {"time_limit": self.request.time_limit, "soft_time_limit": self.request.soft_time_limit}

    @app.task(bind=True, time_limit=60, soft_time_limit=45)
    def declared(self: Any) -> dict[str, Any]:
        return {"time_limit": self.request.time_limit, "soft_time_limit": self.request.soft_time_limit}

    given = limits.apply_async(time_limit=30, soft_time_limit=20)
    none = limits.apply_async()
    own = declared.apply_async()
    overridden = declared.apply_async(time_limit=10, soft_time_limit=5)
    await drain(app)
    assert given.get(timeout=5) == {"time_limit": 30, "soft_time_limit": 20}
    assert none.get(timeout=5) == {"time_limit": None, "soft_time_limit": None}
    assert own.get(timeout=5) == {"time_limit": 60, "soft_time_limit": 45}
    assert overridden.get(timeout=5) == {"time_limit": 10, "soft_time_limit": 5}
    assert declared.apply().get() == {"time_limit": 60, "soft_time_limit": 45}


def test_eager_lineage_as_celerys_apply() -> None:
    app = Celery("lineage", broker="memory://lineage")

    @app.task(bind=True)
    def child(self: Any) -> dict[str, Any]:
        return {"id": self.request.id, "parent_id": self.request.parent_id, "root_id": self.request.root_id}

    @app.task(bind=True)
    def parent(self: Any) -> dict[str, Any]:
        return {"id": self.request.id, "child": child.apply().get()}

    data = parent.apply().get()
    assert data["child"]["parent_id"] == data["id"] and data["child"]["root_id"] == data["id"]
    alone = child.apply().get()
    assert alone["parent_id"] is None and alone["root_id"] == alone["id"]
