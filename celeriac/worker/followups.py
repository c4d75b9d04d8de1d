"""What a finished task sends on: its chain's next step, link callbacks, chord bodies.

Every follow-up has an id fixed in advance (frozen by the canvas, or derived from the
parent's id) and is published with ``unique_for_s``, so the broker refuses a second copy.
A task that runs twice (redelivered after its worker died) therefore still sends each
follow-up once. A chord member records its result and joins the finished set in one
atomic, idempotent step; whichever member completes the set sends the body.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from typing import TYPE_CHECKING, Any

from ..backoff import Backoff
from ..canvas import Plan, Signature
from ..context import Request
from ..exceptions import ChordError
from ..message import FAILURE, SUCCESS, Envelope, ResultRecord
from ..serialization import from_wire
from ..task import outcome_record

if TYPE_CHECKING:
    from ..app import Celery
    from ..servers.contracts import ResultStore

logger = logging.getLogger("celeriac.worker")

DEFAULT_UNIQUE_S = 86400.0
ATTEMPTS = 6


def derived_id(parent_id: str, role: str, index: int) -> str:
    """A stable id for a follow-up the canvas did not name: the same on every re-run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"celeriac:{parent_id}:{role}:{index}"))


class FollowUps:
    def __init__(self, app: Celery, store: ResultStore | None) -> None:
        self.app = app
        self.store = store
        self.unique_s = app.settings.result_expires or DEFAULT_UNIQUE_S

    async def _send(self, sig: Signature, args: tuple[Any, ...], options: dict[str, Any]) -> str:
        plan = Plan()
        result = sig.prepare(plan, args, {}, {"unique_for_s": self.unique_s, **options})
        await _retrying(lambda: plan.asend(self.app, on_duplicate="ignore"), f"send {sig!r}")
        return str(result.id)

    async def on_success(self, envelope: Envelope, value: Any) -> list[str]:
        """Send the chain's next step and the link callbacks; return their ids (the children)."""
        children = []
        lineage = {"parent_id": envelope.id, "root_id": envelope.root_id or envelope.id}
        if envelope.chain:
            step = Signature.from_dict(envelope.chain[0], app=self.app)
            options: dict[str, Any] = dict(lineage)
            if envelope.chain[1:]:
                options["chain"] = envelope.chain[1:]
            children.append(await self._send(step, (value,), options))
        for index, raw in enumerate(envelope.link):
            callback = Signature.from_dict(raw, app=self.app)
            task_id = callback.id or derived_id(envelope.id, "link", index)
            children.append(await self._send(callback, (value,), {**lineage, "task_id": task_id}))
        return children

    async def on_failure(self, envelope: Envelope, request: Request, exc: BaseException | None,
                         traceback: str | None) -> None:
        """Call errbacks, and fail the chain steps that will now never run."""
        await self.call_errbacks(envelope.link_error, envelope.id, request, exc, traceback)
        if envelope.chain and self.store is not None:
            records = []
            for raw in envelope.chain:
                step = Signature.from_dict(raw, app=self.app)
                if step.id and step.kind_is_task():
                    records.append(outcome_record(step.id, FAILURE, name=step.task, exc=exc, tb=traceback))
            if records:
                await self.store.store(records)

    async def call_errbacks(self, errbacks: list[dict[str, Any]], task_id: str, request: Request | None,
                            exc: BaseException | None, traceback: str | None) -> None:
        """An errback whose function takes (request, exc, traceback) runs here, since an
        exception does not travel as JSON; any other is sent as a task with the failed id."""
        for index, raw in enumerate(errbacks):
            errback = Signature.from_dict(raw, app=self.app)
            task = errback._task()
            if task is not None and request is not None and _takes_three(task.fun, task.bind):
                try:
                    value = task.run(*errback.args, request, exc, traceback)
                    if inspect.isawaitable(value):
                        await value
                except Exception:
                    logger.exception("errback %r of task %s raised", errback, task_id)
                continue
            errback_id = errback.id or derived_id(task_id, "link_error", index)
            await self._send(errback, (task_id,), {"task_id": errback_id, "parent_id": task_id})

    async def chord_member_done(self, envelope: Envelope, record: ResultRecord) -> None:
        assert envelope.chord is not None
        if self.store is None:
            logger.error("task %s is a chord member but no result backend is configured", envelope.id)
            return
        store = self.store
        info = envelope.chord
        progress = await _retrying(
            lambda: store.record_group_member(info["group_id"], envelope.id, int(info["total"]), record),
            f"record chord member {envelope.id}",
        )
        if record.state == FAILURE:
            await self._fail_chord(info, envelope.id, record)
        if progress.done_count >= int(info["total"]):
            # Every member that finds the set complete tries: the body's fixed, unique id
            # makes all but the first a no-op, and covers a member that died right here.
            await self._call_body(info)

    async def _call_body(self, info: dict[str, Any]) -> None:
        assert self.store is not None
        member_ids = await self.store.restore_group(info["group_id"])
        if not member_ids:
            logger.error("chord %s: its member list is gone (expired?), so its body cannot be called",
                         info["group_id"])
            return
        found = await self.store.fetch_many(member_ids)
        if any(found.get(m) is None or found[m].state != SUCCESS for m in member_ids):
            return  # a member failed (the chord already failed) or its result expired
        values = [from_wire(found[m].result) for m in member_ids]
        body = Signature.from_dict(info["body"], app=self.app)
        await self._send(body, (values,), {"parent_id": info["group_id"], "root_id": info["group_id"]})

    async def _fail_chord(self, info: dict[str, Any], member_id: str, record: ResultRecord) -> None:
        assert self.store is not None
        # The first failure fails the chord, once: the same idempotent "record and count"
        # step chords use, on a one-member set of failures.
        first = await self.store.record_group_member(f"{info['group_id']}:failed", member_id, 1, record)
        if not first.is_newly_complete:
            return
        body = Signature.from_dict(info["body"], app=self.app)
        error = ChordError(f"Dependency {member_id} raised {record.exc_type}: {record.exc_message}")
        if body.id:
            await self.store.store([outcome_record(body.id, FAILURE, name=body.task, exc=error)])
        errbacks = body.options.get("link_error") or []
        body_request = Request(id=body.id, task=body.task, args=list(body.args), kwargs=body.kwargs,
                               group=info["group_id"])
        await self.call_errbacks([dict(e) for e in errbacks], body.id or info["group_id"], body_request,
                                 error, None)


def _takes_three(fun: Any, bind: bool) -> bool:
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return False
    if bind:
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


async def _retrying(make: Any, what: str) -> Any:
    """Retry a follow-up write through a broker or store outage, with back-off."""
    writing = Backoff(logger, f"could not {what}", f"could {what}", base_s=0.25, cap_s=4.0)
    for attempt in range(ATTEMPTS):
        try:
            result = await make()
            writing.succeeded()
            return result
        except Exception as exc:
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(writing.failed(exc))
    raise AssertionError("unreachable")
