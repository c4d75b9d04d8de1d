"""Signatures: a task call packaged to be sent later, as plain JSON-able dicts. No I/O here."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _state
from ._bridge import run_sync
from .exceptions import NotRegistered
from .publish import build_message
from .result import AsyncResult, GroupResult
from .servers.contracts import OutgoingMessage

if TYPE_CHECKING:
    from .app import Celery


class Signature(dict[str, Any]):
    """``task.s(...)``: a task name with partial arguments and options.

    A dict, so it serialises as itself: ``{"task", "args", "kwargs", "options",
    "immutable", "subtask_type"}``. Arguments given when it is called go *before* its own
    (``add.s(2).delay(4)`` calls ``add(4, 2)``), unless it is immutable.
    """

    def __init__(
        self, task: str | dict[str, Any], args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
        immutable: bool = False, subtask_type: str | None = None, app: Celery | None = None,
        **extra_options: Any,
    ) -> None:
        if isinstance(task, dict):  # from its serialised form
            super().__init__(
                task=task["task"], args=list(task.get("args") or ()),
                kwargs=dict(task.get("kwargs") or {}), options=dict(task.get("options") or {}),
                immutable=bool(task.get("immutable", False)), subtask_type=task.get("subtask_type"),
            )
        else:
            name = task if isinstance(task, str) else getattr(task, "name", str(task))
            super().__init__(
                task=name, args=list(args or ()), kwargs=dict(kwargs or {}),
                options={**(options or {}), **extra_options}, immutable=immutable,
                subtask_type=subtask_type,
            )
        self._app = app

    @classmethod
    def from_dict(cls, d: dict[str, Any], app: Celery | None = None) -> Signature:
        """Rebuild any canvas (task, chain, group, chord ...) from its JSON form."""
        kind = KINDS.get(d.get("subtask_type") or "", Signature)
        return kind.revive(d, app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        return Signature(d, app=app)

    # --- fields -----------------------------------------------------------------------

    @property
    def task(self) -> str:
        return str(self["task"])

    name = task

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self["args"])

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self["kwargs"])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self["options"])

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @property
    def id(self) -> str | None:
        """The task id; None until sent (or frozen with ``task_id=``)."""
        value = self["options"].get("task_id")
        return None if value is None else str(value)

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        return _state.get_current_app()

    # --- building ---------------------------------------------------------------------

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Add options in place and return self, so calls chain: ``s.set(countdown=10)``."""
        if immutable is not None:
            self["immutable"] = immutable
        self["options"].update(options)
        return self

    def clone(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Signature:
        """A copy with call-time arguments merged in (ignored when immutable)."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, options)
        copied = copy.deepcopy(dict(self))
        copied.update(args=list(new_args), kwargs=new_kwargs, options=copy.deepcopy(new_options))
        return Signature.from_dict(copied, app=self._app)

    def _merge(self, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
               options: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        merged_options = {**self["options"], **options}  # shallow: sending only reads it
        if self.immutable:
            return self.args, self.kwargs, merged_options
        return (*(args or ()), *self.args), {**self.kwargs, **(kwargs or {})}, merged_options

    # --- sending ----------------------------------------------------------------------

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> Any:
        return await self.aapply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> Any:
        if self.app.settings.task_always_eager:
            return self.apply(args, kwargs, **options)
        plan = Plan()
        result = self.prepare(plan, tuple(args or ()), dict(kwargs or {}), options)
        plan.send(self.app)
        return result

    async def aapply_async(self, args: Iterable[Any] | None = None,
                           kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        if self.app.settings.task_always_eager:
            return self.apply(args, kwargs, **options)
        plan = Plan()
        result = self.prepare(plan, tuple(args or ()), dict(kwargs or {}), options)
        await plan.asend(self.app)
        return result

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        """Add this signature's messages to ``plan`` and return its result handle (no I/O)."""
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        task = self._task()
        task_options: dict[str, Any] = {}
        if task is not None:
            task._check_arguments(list(call_args), call_kwargs)
            task_options = task.send_options()
        message, result = build_message(self.app, self.task, call_args, call_kwargs, call_options, task_options)
        plan.messages.append(message)
        return result

    def freeze(self, _id: str | None = None) -> Any:
        """Fix the task id now (so results can be named before sending) and return its handle."""
        task_id = self["options"].get("task_id") or _id or str(uuid.uuid4())
        self["options"]["task_id"] = task_id
        return AsyncResult(task_id, app=self.app, task_name=self.task)

    def apply(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        task = self._task()
        if task is None:
            raise NotRegistered(f"task {self.task!r} is not registered here, so it cannot run eagerly")
        for key in ("chain", "chord", "unique_for_s", "group_id", "group_index"):
            call_options.pop(key, None)
        return task.apply(call_args, call_kwargs, **call_options)

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]  # | builds a chain, as in Celery
        if isinstance(other, Signature):
            return _chain(self, other)
        return NotImplemented

    # --- canvas helpers ---------------------------------------------------------------

    def __invert__(self) -> Any:
        """``~sig``: send it and wait for the result (Celery's shorthand)."""
        return self.apply_async().get()

    def kind_is_task(self) -> bool:
        return not self["subtask_type"]

    def link(self, callback: Signature) -> Signature:
        self["options"].setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        self["options"].setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback: Signature) -> Signature:
        """Like ``link_error`` but returns this signature, so calls chain."""
        self.link_error(errback)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task's function here with the merged arguments, like calling the task."""
        task = self._task()
        if task is None:
            raise NotRegistered(f"task {self.task!r} is not registered here")
        call_args, call_kwargs, _ = self._merge(args, kwargs, {})
        return task(*call_args, **call_kwargs)

    def _task(self) -> Any:
        try:
            return self.app.get_task(self.task)
        except NotRegistered:
            return None

    # --- showing ----------------------------------------------------------------------

    def __repr__(self) -> str:
        parts = [repr(a) for a in self["args"]]
        parts += [f"{k}={v!r}" for k, v in self["kwargs"].items()]
        return f"{self.task}({', '.join(parts)})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return Signature.from_dict(copy.deepcopy(dict(self), memo), app=self._app)

    def __reduce__(self) -> Any:
        return (Signature.from_dict, (dict(self),))


# --- composite signatures -------------------------------------------------------------------

# Options a group passes to each member, and ones that only make sense on the whole.
_OWN_OPTIONS = ("task_id", "group_id", "group_index", "chord", "chain", "link", "link_error")


@dataclass
class Plan:
    """Messages (and chord member lists) collected from a canvas, then sent in one batch."""

    messages: list[OutgoingMessage] = field(default_factory=list)
    groups_to_save: list[tuple[str, list[str]]] = field(default_factory=list)

    def send(self, app: Celery) -> None:
        run_sync(self.asend(app))

    async def asend(self, app: Celery, on_duplicate: str = "error") -> None:
        if self.groups_to_save:
            # Saved before any member is sent: the last member reads the list to call the body.
            store = await app.result_store()
            for group_id, member_ids in self.groups_to_save:
                await store.save_group(group_id, member_ids)
        if self.messages:
            await app.publish(self.messages, on_duplicate=on_duplicate)


def _as_signature(value: Any, app: Celery | None) -> Signature:
    if isinstance(value, Signature):
        return value
    if isinstance(value, dict):
        return Signature.from_dict(value, app=app)
    if hasattr(value, "s") and hasattr(value, "name"):  # a Task: call it with no arguments
        sig: Signature = value.s()
        return sig
    raise TypeError(f"expected a signature, got {type(value).__name__}: {value!r}")


def _tasks_of(args: tuple[Any, ...]) -> list[Any]:
    if len(args) == 1 and not isinstance(args[0], dict) and isinstance(args[0], Iterable):
        return list(args[0])
    return list(args)


class _Composite(Signature):
    """A chain, group or chord: its parts are signatures kept in ``kwargs``."""

    kind = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling a chain, group or chord sends it, as in Celery."""
        return self.apply_async(args, kwargs)

    def apply(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        raise NotImplementedError(f"eager apply() of a {self.kind} is not available yet; send it")

    def _merge(self, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
               options: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        # Composite partial args live in options so "kwargs" keeps holding the parts.
        merged_options = {**self["options"], **options}  # shallow: sending only reads it
        return tuple(args or ()), dict(kwargs or {}), merged_options

    @property
    def app(self) -> Celery:
        """The app named at construction, else the first part's (as Celery does)."""
        if self._app is not None:
            return self._app
        for key in ("tasks", "header", "body", "task"):
            part = self["kwargs"].get(key)
            first = part[0] if isinstance(part, list) and part else part
            if isinstance(first, Signature) and (first._app is not None or isinstance(first, _Composite)):
                return first.app
        return super().app

    def _parts(self, key: str) -> list[Signature]:
        parts = [_as_signature(p, self._app) for p in self["kwargs"][key]]
        self["kwargs"][key] = parts
        return parts


class chain(_Composite):
    """Run tasks one after another, each getting the previous one's result first."""

    kind = "chain"

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        steps = [_as_signature(t, app) for t in _tasks_of(tasks)]
        super().__init__("celery.chain", (), {"tasks": steps}, options, subtask_type="chain", app=app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        return chain(*d["kwargs"]["tasks"], app=app, **(d.get("options") or {}))

    @property
    def tasks(self) -> list[Signature]:
        return self._parts("tasks")

    def steps(self) -> list[Signature]:
        """Flattened, with every group followed by something made a chord (as Celery does)."""
        flat: list[Signature] = []
        for step in self.tasks:
            flat.extend(step.steps() if isinstance(step, chain) else [step])
        upgraded: list[Signature] = []
        for step in flat:
            if upgraded and isinstance(upgraded[-1], group):
                upgraded[-1] = chord(upgraded[-1], step, app=self._app)
            else:
                upgraded.append(step)
        return upgraded

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]  # | builds a chain, as in Celery
        if isinstance(other, Signature):
            return chain(*self.tasks, other, app=self._app, **self.options)
        return NotImplemented

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)

    def freeze(self, _id: str | None = None) -> Any:
        steps = self.steps()
        self["kwargs"]["tasks"] = steps
        results = [step.freeze() for step in steps]
        for parent, child in itertools.pairwise(results):
            child.parent = parent
        return results[-1] if results else None

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        if not self.tasks:
            raise ValueError("cannot send an empty chain")
        last = self.freeze()
        steps = self.steps()
        # What this chain is part of (a chord header, a group, an outer chain) belongs to
        # its last step: that step's result is the chain's result.
        tail_options = {k: options.pop(k) for k in ("chord", "group_id", "group_index", "chain")
                        if k in options}
        outer_rest = tail_options.pop("chain", [])
        if tail_options:
            steps[-1].set(**tail_options)
        rest = [dict(s) for s in steps[1:]] + list(outer_rest)
        first_options = dict(options)
        if rest:
            first_options["chain"] = rest
        steps[0].prepare(plan, args, kwargs, first_options)
        return last


class group(_Composite):
    """Run tasks in parallel; the result is a ``GroupResult`` in member order."""

    kind = "group"

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        members = [_as_signature(t, app) for t in _tasks_of(tasks)]
        super().__init__("celery.group", (), {"tasks": members}, options, subtask_type="group", app=app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        return group(*d["kwargs"]["tasks"], app=app, **(d.get("options") or {}))

    @property
    def tasks(self) -> list[Signature]:
        return self._parts("tasks")

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]  # | builds a chain, as in Celery
        if isinstance(other, Signature):
            return chord(self, other, app=self._app)
        return NotImplemented

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"

    def __len__(self) -> int:
        return len(self["kwargs"]["tasks"])

    def freeze(self, _id: str | None = None) -> GroupResult:
        group_id = self["options"].get("task_id") or _id or str(uuid.uuid4())
        self["options"]["task_id"] = group_id
        return GroupResult(group_id, [t.freeze() for t in self.tasks], app=self.app)

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> GroupResult:
        _, _, options = self._merge(args, kwargs, options)
        result = self.freeze(options.pop("task_id", None))
        chord_info = options.pop("chord", None)
        if options.pop("chain", None):
            raise ValueError("a group cannot be followed directly; chain it with a task (a chord)")
        shared = {k: v for k, v in options.items() if k not in _OWN_OPTIONS}
        for index, member in enumerate(self.tasks):
            if isinstance(member, (group, chord)) and chord_info is not None:
                raise ValueError("a chord's header cannot hold groups or chords; chain them instead")
            member_options = {**shared, "group_id": result.id, "group_index": index}
            if chord_info is not None:
                member_options["chord"] = chord_info
            member.prepare(plan, args, kwargs, member_options)
        return result


class chord(_Composite):
    """Run a group, then call ``body`` once with the list of its results, in header order."""

    kind = "chord"

    def __init__(self, header: Any, body: Any = None, app: Celery | None = None, **options: Any) -> None:
        header_group = header if isinstance(header, group) else group(*_tasks_of((header,)), app=app)
        body_sig = None if body is None else _as_signature(body, app)
        super().__init__("celery.chord", (), {"header": header_group, "body": body_sig}, options,
                         subtask_type="chord", app=app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        header = Signature.from_dict(d["kwargs"]["header"], app=app)
        body = d["kwargs"].get("body")
        return chord(header, body, app=app, **(d.get("options") or {}))

    @property
    def header(self) -> group:
        value = self["kwargs"]["header"]
        if not isinstance(value, group):
            value = self["kwargs"]["header"] = Signature.from_dict(value, app=self._app)
        assert isinstance(value, group)
        return value

    @property
    def body(self) -> Signature:
        value = self["kwargs"]["body"]
        if value is None:
            raise ValueError("this chord has no body; call it with one: chord(header)(body)")
        if not isinstance(value, Signature):
            value = self["kwargs"]["body"] = Signature.from_dict(value, app=self._app)
        return value

    def __call__(self, body: Any = None, **options: Any) -> Any:
        if body is not None:
            self["kwargs"]["body"] = _as_signature(body, self._app)
        return self.apply_async((), {}, **options)

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self['kwargs']['body']!r})"

    def freeze(self, _id: str | None = None) -> Any:
        header_result = self.header.freeze()
        body_result = self.body.freeze(_id or self["options"].get("task_id"))
        body_result.parent = header_result
        return body_result

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        result = self.freeze(options.pop("task_id", None))
        header_result = result.parent
        body = self.body
        # Whatever follows the chord (an outer chain) or contains it (a group, a chord
        # header) attaches to the body, which is the chord's result.
        for key in ("chain", "group_id", "group_index", "chord"):
            if key in options:
                body.set(**{key: options.pop(key)})
        member_ids = [r.id for r in header_result.results]
        if not member_ids:  # an empty header calls the body at once with []
            body.prepare(plan, ([],), {}, {})
            return result
        plan.groups_to_save.append((header_result.id, member_ids))
        chord_info = {"group_id": header_result.id, "total": len(member_ids), "body": dict(body)}
        self.header.prepare(plan, args, kwargs, {**options, "task_id": header_result.id, "chord": chord_info})
        return result


def _chain(first: Signature, second: Signature) -> Signature:
    if isinstance(first, group) and not isinstance(second, group):
        return chord(first, second)
    return chain(first, second)


class chunks(_Composite):
    """Split ``it`` into parts of ``n`` and run each part as one task (``task.chunks``)."""

    kind = "chunks"

    def __init__(self, task: Any, it: Iterable[Any], n: int, app: Celery | None = None, **options: Any) -> None:
        super().__init__("celery.chunks", (), {"task": _as_signature(task, app), "it": list(it), "n": int(n)},
                         options, subtask_type="chunks", app=app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        kw = d["kwargs"]
        return chunks(kw["task"], kw["it"], kw["n"], app=app, **(d.get("options") or {}))

    def group(self) -> group:
        task = _as_signature(self["kwargs"]["task"], self._app)
        items, n = self["kwargs"]["it"], self["kwargs"]["n"]
        parts = [items[i : i + n] for i in range(0, len(items), n)]
        return group(*[xstarmap(task, part, app=self._app) for part in parts], app=self._app)

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> GroupResult:
        _, _, options = self._merge(args, kwargs, options)
        result: GroupResult = self.group().prepare(plan, args, kwargs, options)
        return result


def xmap(task: Any, it: Iterable[Any], app: Celery | None = None) -> Signature:
    """One task calling ``task`` on each item here in the worker: ``task.map(items)``."""
    return Signature("celery.map", (), {"task": dict(_as_signature(task, app)), "it": list(it)}, app=app)


def xstarmap(task: Any, it: Iterable[Any], app: Celery | None = None) -> Signature:
    """One task calling ``task(*args)`` for each argument tuple: ``task.starmap(items)``."""
    return Signature("celery.starmap", (), {"task": dict(_as_signature(task, app)),
                                            "it": [list(a) for a in it]}, app=app)


KINDS: dict[str, type[Signature]] = {"chain": chain, "group": group, "chord": chord, "chunks": chunks}


def maybe_signature(value: Any, app: Celery | None = None) -> Signature | None:
    return None if value is None else _as_signature(value, app)


def signature(varies: str | dict[str, Any] | Signature, *args: Any, **kwargs: Any) -> Signature:
    """``signature("proj.tasks.add", args=(2, 2), countdown=10)`` or from a dict."""
    if isinstance(varies, Signature):
        return varies.clone()
    if isinstance(varies, dict):
        return Signature.from_dict(varies, app=kwargs.get("app"))
    call_args = kwargs.pop("args", args)
    call_kwargs = kwargs.pop("kwargs", None)
    options = kwargs.pop("options", None) or {}
    immutable = kwargs.pop("immutable", False)
    app = kwargs.pop("app", None)
    return Signature(varies, call_args, call_kwargs, {**options, **kwargs}, immutable=immutable, app=app)


subtask = signature
