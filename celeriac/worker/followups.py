"""What a finished task sends on: its chain's next step, link callbacks, chord bodies;
and, after a failure, errbacks and the failure of everything that will now never run.

Every follow-up has an id fixed in advance (frozen by the canvas, or derived from the
parent's id) and is published with ``unique_for_s``, so the broker refuses a second copy.
A task that runs twice (redelivered after its worker died) therefore still sends each
follow-up once. A chord member records its result and joins the finished set in one
atomic, idempotent step; whichever member completes the set sends the body. A failed
member fails the chord at once: the body's results become the error and its errbacks are
called, once; a body that is itself a member of an outer chord fails that one in turn.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from ..backoff import Backoff
from ..canvas import Plan, Signature, errback_call, errback_runs_inline, errback_units, failure_targets, group
from ..context import Request
from ..exceptions import ChordError
from ..message import FAILURE, SUCCESS, Envelope, ResultRecord, now_ms
from ..result import PROPAGATE_STATES, exception_from_record
from ..serialization import from_wire
from ..task import outcome_record

if TYPE_CHECKING:
    from ..app import Celery
    from ..servers.contracts import ResultStore

logger = logging.getLogger("celeriac.worker")

DEFAULT_UNIQUE_S = 86400.0
ATTEMPTS = 6
UNKNOWN_TOTAL = 1 << 62  # a count no header reaches: the real size is read from the saved list


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
        if envelope.chain:
            await self.fail_canvas(envelope.chain, exc, traceback, envelope.root_id or envelope.id)

    async def on_revoked(self, envelope: Envelope, record: ResultRecord) -> None:
        """A task that will not run (revoked, expired): the rest of its chain fails with its
        ``TaskRevokedError``, and a chord it is a member of counts it as failed."""
        if not (envelope.chain or envelope.chord):
            return
        try:
            if envelope.chain:
                exc = exception_from_record(record)
                await self.fail_canvas(envelope.chain, exc, None, envelope.root_id or envelope.id)
            if envelope.chord:
                await self.chord_member_done(envelope, record)
        except Exception:
            logger.exception("task %s was not run: could not fail what follows it", envelope.id)

    async def fail_canvas(self, parts: list[dict[str, Any]], exc: BaseException | None,
                          traceback: str | None, root_id: str) -> None:
        """What will never run now (a failed step's rest of the chain) fails with ``exc``:
        every task id fixed in it gets that error as its result, so ``get()`` raises it,
        and a chord that one of them completes counts it as a failed member (its body's
        errbacks are called), so nothing waits forever."""
        if self.store is None:
            return
        store = self.store
        records: list[ResultRecord] = []
        members: list[tuple[dict[str, Any], str, ResultRecord]] = []
        for raw in parts:
            for task_id, name, chord_info in failure_targets(raw, app=self.app):
                record = outcome_record(task_id, FAILURE, name=name, exc=exc, tb=traceback)
                if chord_info is not None:
                    members.append((chord_info, task_id, record))
                else:
                    records.append(record)
        if records:
            await _retrying(lambda: store.store(records), f"fail the {len(records)} tasks after a failure")
        for info, member_id, record in members:
            await self._count_member(info, member_id, record, root_id)

    async def call_errbacks(self, errbacks: list[dict[str, Any]], task_id: str, request: Request | None,
                            exc: BaseException | None, traceback: str | None) -> None:
        """An errback whose function takes (request, exc, traceback) runs here, since an
        exception does not travel as JSON; any other is sent as a task with the failed id."""
        for index, raw in enumerate(errbacks):
            errback = Signature.from_dict(raw, app=self.app)
            task = errback._task()
            if task is not None and request is not None and errback_runs_inline(task):
                call_args, call_kwargs = errback_call(errback, request, exc, traceback)
                try:
                    if inspect.iscoroutinefunction(getattr(task, "fun", None)):
                        await task.run(*call_args, **call_kwargs)
                    else:  # a sync errback must not hold the worker's event loop
                        value = await asyncio.to_thread(task.run, *call_args, **call_kwargs)
                        if inspect.isawaitable(value):
                            await value
                except Exception:
                    logger.exception("errback %r of task %s raised", errback, task_id)
                continue
            errback_id = errback.id or derived_id(task_id, "link_error", index)
            root_id = (request.root_id if request is not None else None) or task_id
            await self._send(errback, (task_id,), {"task_id": errback_id, "parent_id": task_id, "root_id": root_id})

    async def chord_member_done(self, envelope: Envelope, record: ResultRecord) -> None:
        assert envelope.chord is not None
        await self._count_member(envelope.chord, envelope.id, record, envelope.root_id or envelope.id)

    async def _count_member(self, info: dict[str, Any], member_id: str, record: ResultRecord,
                            root_id: str) -> None:
        if self.store is None:
            logger.error("task %s is a chord member but no result backend is configured", member_id)
            return
        store = self.store
        # total None: a header sent as it was read (a generator), whose size is known once
        # its member list is saved.
        total = info.get("total")
        progress = await _retrying(
            lambda: store.record_group_member(info["group_id"], member_id,
                                              UNKNOWN_TOTAL if total is None else int(total), record),
            f"record chord member {member_id}",
        )
        if record.state in PROPAGATE_STATES:
            await self._fail_chord(info, member_id, record, root_id)
        if total is None:
            saved = await store.restore_group(info["group_id"])
            if saved is None:
                return  # still being sent: the sender checks the members once it has saved them
            total = len(saved)
        if progress.done_count >= int(total):
            # Every member that finds the set complete tries: the body's fixed, unique id
            # makes all but the first a no-op, and covers a member that died right here.
            await self._call_body(info, member_id, root_id)

    async def _call_body(self, info: dict[str, Any], member_id: str, root_id: str) -> None:
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
        # As in Celery, the body's parent is the member that completed the header.
        await self._send(body, (values,), {"parent_id": member_id, "root_id": root_id})

    async def _fail_chord(self, info: dict[str, Any], member_id: str, record: ResultRecord,
                          root_id: str) -> None:
        assert self.store is not None
        store = self.store
        # The first failure fails the chord, once: the same idempotent "record and count"
        # step chords use, on a one-member set of failures.
        first = await store.record_group_member(f"{info['group_id']}:failed", member_id, 1, record)
        if not first.is_newly_complete:
            return
        body = Signature.from_dict(info["body"], app=self.app)
        error = ChordError(f"Dependency {member_id} raised {record.exc_type}: {record.exc_message}")
        # The body never runs. What stands for it fails: with the ChordError, or, for a
        # group body's members, with the member's own error (as Celery does).
        own_error = isinstance(body, group)
        records: list[ResultRecord] = []
        members: list[tuple[dict[str, Any], str, ResultRecord]] = []
        for task_id, name, chord_info in failure_targets(body, app=self.app):
            if own_error:
                failed = msgspec.structs.replace(
                    record, task_id=task_id, name=name, fencing_token=0, date_done_ms=now_ms(), children=[],
                    worker=None, parent_id=member_id, group_id=None, args=None, kwargs=None, headers=None)
            else:
                failed = outcome_record(task_id, FAILURE, name=name, exc=error)
            if chord_info is not None:
                members.append((chord_info, task_id, failed))
            else:
                records.append(failed)
        if records:
            await _retrying(lambda: store.store(records), f"fail the body of chord {info['group_id']}")
        exc: BaseException = exception_from_record(record) if own_error else error
        for unit, errbacks in errback_units(body):
            unit_id = unit.id or info["group_id"]
            request = Request(id=unit_id, task=unit.task, args=list(unit.args), kwargs=dict(unit.kwargs),
                              group=info["group_id"], root_id=root_id, errbacks=[dict(e) for e in errbacks])
            await self.call_errbacks([dict(e) for e in errbacks], unit_id, request, exc, None)
        for chord_info, task_id, failed in members:  # the body counted in an outer chord
            await self._count_member(chord_info, task_id, failed, root_id)


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
