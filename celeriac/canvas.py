"""Signatures: a task call packaged to be sent later, as plain JSON-able dicts. No I/O here.

A canvas (chain, group, chord) is compiled into messages by ``prepare()``: every task id
is fixed first (``freeze()``), then each message carries what follows it (a chain's next
steps, a chord's counting information, callbacks and errbacks), so a worker needs nothing
but the message to send the rest. The rules, as in Celery:

- a chain's callbacks (``link``) go to its last step, its errbacks (``link_error``) to
  every step; nested chains are spliced in keeping theirs; a group of one task in a chain
  is that task; a group followed by anything becomes a chord (its body the next step);
- a group's callbacks go to its first member, made immutable (it cannot pass the group's
  results on), its errbacks to every member; nested groups are flattened;
- a chord's callbacks and errbacks go to its body (errbacks to the header's members too
  with ``task_allow_error_cb_on_chord_header``); a chord's header may hold chains, groups
  (flattened into it) and chords (counted by their body);
- a group whose completion counts as one step (the last step of a chain in a chord's
  header, a chord's group body inside another chord) becomes a chord whose body,
  ``celery.accumulate`` under the group's id, returns the list of the group's results.

``send`` (``apply_async``) works on a copy, so one canvas can be sent twice, and a
signature object repeated in a canvas gets an id per place.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _state
from ._bridge import run_sync
from .context import Request
from .exceptions import ChordError, NotRegistered, stamping_not_available
from .message import FAILURE, SUCCESS, ResultRecord, now_ms
from .publish import MessageBuilder, MessageShape, Outgoing, new_task_ids
from .result import PROPAGATE_STATES, AsyncResult, EagerResult, GroupResult, ResultSet
from .serialization import from_wire
from .servers.contracts import OutgoingMessage
from .utils.bulk import collector_paused

if TYPE_CHECKING:
    from .app import Celery

logger = logging.getLogger("celeriac.canvas")

# Options that only make sense when a canvas is sent to a worker.
_NOT_EAGER = ("chain", "chord", "unique_for_s", "group_id", "group_index")


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

    # --- fields (assignable, as in Celery) --------------------------------------------

    @property
    def task(self) -> str:
        return str(self["task"])

    @task.setter
    def task(self, value: str) -> None:
        self["task"] = value

    name = task

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self["args"])

    @args.setter
    def args(self, value: Iterable[Any]) -> None:
        self["args"] = list(value)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments (the dict itself: changes stick)."""
        value: dict[str, Any] = self["kwargs"]
        return value

    @kwargs.setter
    def kwargs(self, value: dict[str, Any]) -> None:
        self["kwargs"] = dict(value)

    @property
    def options(self) -> dict[str, Any]:
        """The calling options (the dict itself: changes stick)."""
        value: dict[str, Any] = self["options"]
        return value

    @options.setter
    def options(self, value: dict[str, Any]) -> None:
        self["options"] = dict(value)

    @property
    def immutable(self) -> bool:
        return bool(self["immutable"])

    @immutable.setter
    def immutable(self, value: bool) -> None:
        self["immutable"] = bool(value)

    @property
    def subtask_type(self) -> str | None:
        value = self.get("subtask_type")
        return None if value is None else str(value)

    @subtask_type.setter
    def subtask_type(self, value: str | None) -> None:
        self["subtask_type"] = value

    @property
    def id(self) -> str | None:
        """The task id; None until sent (or frozen with ``task_id=``)."""
        value = self["options"].get("task_id")
        return None if value is None else str(value)

    @id.setter
    def id(self, value: str | None) -> None:
        self["options"]["task_id"] = value

    @property
    def parent_id(self) -> str | None:
        return self["options"].get("parent_id")  # type: ignore[no-any-return]

    @parent_id.setter
    def parent_id(self, value: str | None) -> None:
        self["options"]["parent_id"] = value

    @property
    def root_id(self) -> str | None:
        return self["options"].get("root_id")  # type: ignore[no-any-return]

    @root_id.setter
    def root_id(self, value: str | None) -> None:
        self["options"]["root_id"] = value

    @property
    def app(self) -> Celery:
        if self._app is not None:
            return self._app
        return _state.get_current_app()

    @property
    def type(self) -> Any:
        """The task this signature calls (``NotRegistered`` if unknown here)."""
        return self.app.get_task(self.task)

    # --- building ---------------------------------------------------------------------

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Add options in place and return self, so calls chain: ``s.set(countdown=10)``."""
        if immutable is not None:
            self["immutable"] = immutable
        self["options"].update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = bool(immutable)

    def set_parent_id(self, parent_id: str | None) -> None:
        self.parent_id = parent_id

    def clone(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Signature:
        """A copy with call-time arguments merged in (ignored when immutable)."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, options)
        copied = copy.deepcopy(dict(self))
        copied.update(args=list(new_args), kwargs=new_kwargs, options=copy.deepcopy(new_options))
        if isinstance(self, _Composite):  # its partial arguments are not in args/kwargs
            copied.update(args=list(self["args"]), kwargs=copy.deepcopy(dict(self["kwargs"])))
        return Signature.from_dict(copied, app=self._app)

    def replace(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                options: dict[str, Any] | None = None) -> Signature:
        """A copy with its arguments or options replaced (not merged), as Celery's."""
        copied = self.clone()
        if args is not None:
            copied["args"] = list(args)
        if kwargs is not None:
            copied["kwargs"] = dict(kwargs)
        if options is not None:
            copied["options"] = dict(options)
        return copied

    def _merge(self, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
               options: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        call_args, call_kwargs = self._arguments(args, kwargs)
        return call_args, call_kwargs, {**self["options"], **options}  # shallow: sending only reads it

    def _arguments(self, args: Iterable[Any] | None,
                   kwargs: dict[str, Any] | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of a call with ``args``/``kwargs`` (ignored when immutable) added."""
        if self["immutable"]:
            return tuple(self["args"]), dict(self["kwargs"])
        return (*(args or ()), *self["args"]), {**self["kwargs"], **(kwargs or {})}

    # --- sending ----------------------------------------------------------------------

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> Any:
        return await self.aapply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> Any:
        if self.app.settings.task_always_eager:
            return self.apply(args, kwargs, **options)
        with collector_paused():  # a group's objects are made in bulk (utils/bulk.py)
            plan = Plan()
            result = self._for_sending(options).prepare(plan, tuple(args or ()), dict(kwargs or {}), options)
            plan.send(self.app)
        return result

    async def aapply_async(self, args: Iterable[Any] | None = None,
                           kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        if self.app.settings.task_always_eager:
            return self.apply(args, kwargs, **options)
        with collector_paused():
            plan = Plan()
            result = self._for_sending(options).prepare(plan, tuple(args or ()), dict(kwargs or {}), options)
            await plan.asend(self.app)
        return result

    def _for_sending(self, options: dict[str, Any]) -> Signature:
        """What ``apply_async(**options)`` prepares: a task signature is only read, so itself."""
        return self

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        """Add this signature's messages to ``plan`` and return its result handle (no I/O)."""
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        task = self._task()
        builder = MessageBuilder(self.app, self.task, call_options, task.send_options() if task else None)
        message, shape = self._message(builder, task, call_args, call_kwargs)
        plan.messages.append(message)
        return AsyncResult(message.task_id, app=self.app, task_name=self.task, ignored=shape.ignore_result)

    def _message(self, builder: MessageBuilder, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 task_id: str | None = None, group_index: int | None = None) -> tuple[OutgoingMessage, MessageShape]:
        """The message of a call of this task, made by ``builder`` (this call's options)."""
        call_args = list(args)
        if task is not None:
            task._check_arguments(call_args, kwargs)
        shape = builder.shape(call_args, kwargs)
        return shape.message(call_args, kwargs, task_id, group_index), shape

    def freeze(self, _id: str | None = None, group_id: str | None = None, chord: Any = None,
               root_id: str | None = None, parent_id: str | None = None, group_index: int | None = None) -> Any:
        """Fix the task id now (so results can be named before sending) and return its handle.

        An id already set is kept; the other arguments, when given, are set as options.
        """
        task_id = self["options"].get("task_id") or _id or str(uuid.uuid4())
        self["options"]["task_id"] = task_id
        for key, value in (("group_id", group_id), ("root_id", root_id), ("parent_id", parent_id),
                           ("group_index", group_index)):
            if value is not None:
                self["options"][key] = value
        if isinstance(chord, dict) and "group_id" in chord and "total" in chord:
            self["options"]["chord"] = chord
        return AsyncResult(task_id, app=self.app, task_name=self.task)

    def apply(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        """Run the task here and now (``task.apply()``), then its callbacks or errbacks."""
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        task = self._task()
        if task is None:
            raise NotRegistered(f"task {self.task!r} is not registered here, so it cannot run eagerly")
        for key in _NOT_EAGER:
            call_options.pop(key, None)
        return task.apply(call_args, call_kwargs, **call_options)  # it calls link/link_error too

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

    def _add_to_list_option(self, key: str, value: Any) -> Any:
        items = self["options"].get(key)
        if items is None:
            items = self["options"][key] = []
        elif not isinstance(items, list):
            items = self["options"][key] = _as_list(items)
        if value not in items:
            items.append(value)
        return value

    def link(self, callback: Signature) -> Signature:
        """Call ``callback`` with this task's return value once it succeeds."""
        return self._add_to_list_option("link", callback)  # type: ignore[no-any-return]

    def link_error(self, errback: Signature) -> Signature:
        """Call ``errback`` if this task fails (see docs/canvas.md for its two styles)."""
        return self._add_to_list_option("link_error", errback)  # type: ignore[no-any-return]

    def on_error(self, errback: Signature) -> Signature:
        """Like ``link_error`` but returns this signature, so calls chain."""
        self.link_error(errback)
        return self

    def flatten_links(self) -> list[Signature]:
        """This signature and, recursively, its callbacks (Celery's)."""
        found: list[Signature] = [self]
        for callback in _as_list(self["options"].get("link")):
            found.extend(_as_signature(callback, self._app).flatten_links())
        return found

    def stamp(self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any) -> None:
        """Celery's stamping: not available (raises ``NotAvailable``), see :class:`StampingVisitor`."""
        raise stamping_not_available("Signature.stamp()")

    def stamp_links(self, visitor: StampingVisitor | None = None, append_stamps: bool = False,
                    **headers: Any) -> None:
        """Celery's stamping of callbacks and errbacks: not available (raises ``NotAvailable``)."""
        raise stamping_not_available("Signature.stamp_links()")

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

    def __json__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        return Signature.from_dict(copy.deepcopy(dict(self), memo), app=self._app)

    def __reduce__(self) -> Any:
        return (Signature.from_dict, (dict(self),))


# --- stamping: not available ---------------------------------------------------------------

class StampingVisitor:
    """Celery's stamping visitor, so code that defines one imports; stamping is not available.

    A subclass can be defined (``on_signature`` and the other hooks are here to be
    overridden), but handing it to ``Signature.stamp()`` raises ``NotAvailable``: celeriac
    leaves stamping out on purpose (docs/differences-from-celery.md, "Stamping").
    """

    def on_signature(self, actual_sig: Signature, **headers: Any) -> dict[str, Any]:
        """The stamps for one signature (override this)."""
        raise stamping_not_available("StampingVisitor")

    def on_group_start(self, group: Signature, **headers: Any) -> dict[str, Any]:
        return {}

    def on_group_end(self, group: Signature, **headers: Any) -> None:
        return None

    def on_chain_start(self, chain: Signature, **headers: Any) -> dict[str, Any]:
        return {}

    def on_chain_end(self, chain: Signature, **headers: Any) -> None:
        return None

    def on_chord_header_start(self, sig: Signature, **header: Any) -> dict[str, Any]:
        return {}

    def on_chord_header_end(self, chord: Signature, **header: Any) -> None:
        return None

    def on_chord_body(self, chord: Signature, **header: Any) -> dict[str, Any]:
        return {}

    def on_callback(self, callback: Signature, **header: Any) -> dict[str, Any]:
        return {}

    def on_errback(self, errback: Signature, **header: Any) -> dict[str, Any]:
        return {}


# --- composite signatures -------------------------------------------------------------------

# Options a group passes to each member, and ones that only make sense on the whole.
_OWN_OPTIONS = ("task_id", "group_id", "group_index", "chord", "chain", "link", "link_error")
# Options a nested chain or group must not hand to its parts: what it is part of.
_PLACE_OPTIONS = ("task_id", "group_id", "group_index", "chord", "chain", "link", "link_error")


@dataclass
class Plan:
    """Messages (and chord member lists) collected from a canvas, then sent in one batch."""

    messages: Outgoing = field(default_factory=Outgoing)
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


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _tasks_of(args: tuple[Any, ...]) -> list[Any]:
    if len(args) == 1 and not isinstance(args[0], dict) and isinstance(args[0], Iterable):
        return list(args[0])
    return list(args)


def _distinct(parts: list[Signature]) -> list[Signature]:
    """The same signature object in two places becomes two copies: two tasks, two ids."""
    seen: set[int] = set()
    out = []
    for part in parts:
        if id(part) in seen:
            part = _copied(part, part._app)
        seen.add(id(part))
        out.append(part)
    return out


def _copied(value: Any, app: Celery | None) -> Signature:
    """A copy of a canvas for sending: every signature in it a new object (ids kept).

    Arguments are not copied (sending only reads them), and no memo is shared, so an
    object that appears twice becomes two.
    """
    sig = _as_signature(value, app)
    composite = isinstance(sig, _Composite)
    if isinstance(sig, _Composite):
        sig._materialize()
    own_app = sig._app or app
    kw, opts = dict(sig["kwargs"]), dict(sig["options"])
    d: dict[str, Any] = {
        "task": sig["task"], "args": list(sig["args"]), "kwargs": kw, "options": opts,
        "immutable": bool(sig.get("immutable", False)), "subtask_type": sig.get("subtask_type"),
    }
    if composite:  # its parts, in kwargs
        kind = d["subtask_type"]
        if kind in ("chain", "group"):
            kw["tasks"] = [_copied(t, own_app) for t in kw["tasks"]]
        elif kind == "chord":
            kw["header"] = _copied(kw["header"], own_app)
            if kw.get("body") is not None:
                kw["body"] = _copied(kw["body"], own_app)
        elif kind == "chunks":
            kw["task"] = _copied(kw["task"], own_app)
            kw["it"] = list(kw["it"])
    if opts:  # the signatures and headers among its options
        for key in ("link", "link_error", "chain"):
            if opts.get(key):
                opts[key] = [_copied(x, own_app) for x in _as_list(opts[key])]
        if isinstance(opts.get("headers"), dict):
            opts["headers"] = dict(opts["headers"])
    if composite:
        new = type(sig).revive(d, own_app)
    else:  # ``d`` holds copies already: not through __init__, which would copy them again
        new = Signature.__new__(Signature)
        dict.__init__(new, d)
    new._app = sig._app
    return new


def _root_of(result: Any) -> Any:
    """The earliest ancestor of a result (itself if it has no parent)."""
    node, seen = result, set()
    while getattr(node, "parent", None) is not None and id(node) not in seen:
        seen.add(id(node))
        node = node.parent
    return node


def _set_parent(result: Any, parent: Any) -> None:
    """Make ``parent`` the parent of ``result``'s earliest ancestor (a chord's result
    leads back through its body to its header, whose parent is then the previous step)."""
    root = _root_of(result)
    if root is not parent and parent is not None and root.parent is None:
        root.parent = parent


class _Composite(Signature):
    """A chain, group or chord: its parts are signatures kept in ``kwargs``."""

    kind = ""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling a chain, group or chord sends it, as in Celery."""
        return self.apply_async(args, kwargs)

    def _merge(self, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
               options: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        # Composite partial args live in options so "kwargs" keeps holding the parts.
        merged_options = {**self["options"], **options}  # shallow: sending only reads it
        return tuple(args or ()), dict(kwargs or {}), merged_options

    def _for_sending(self, options: dict[str, Any]) -> Signature:
        return _copied(self, self._app)  # preparing freezes its parts: the caller's stay as they were

    def apply(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> Any:
        """Run the whole canvas here, eagerly, as Celery's ``apply()`` does."""
        runnable = _copied(self, self._app)
        assert isinstance(runnable, _Composite)
        return runnable._apply_here(tuple(args or ()), dict(kwargs or {}), options)

    def _apply_here(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        raise NotImplementedError

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

    def _materialize(self) -> None:
        """Turn parts given as dicts (or a generator) into signature objects, in place."""

    def _parts(self, key: str) -> list[Signature]:
        value = self["kwargs"][key]
        if isinstance(value, list) and all(isinstance(p, Signature) for p in value):
            return value
        parts = _distinct([_as_signature(p, self._app) for p in value])
        self["kwargs"][key] = parts
        return parts


class chain(_Composite):
    """Run tasks one after another, each getting the previous one's result first."""

    kind = "chain"

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        steps = _distinct([_as_signature(t, app) for t in _tasks_of(tasks)])
        super().__init__("celery.chain", (), {"tasks": steps}, options, subtask_type="chain", app=app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        return chain(*d["kwargs"]["tasks"], app=app, **(d.get("options") or {}))

    @property
    def tasks(self) -> list[Signature]:
        return self._parts("tasks")

    @tasks.setter
    def tasks(self, value: Iterable[Any]) -> None:
        self["kwargs"]["tasks"] = list(value)

    def _materialize(self) -> None:
        self._parts("tasks")

    def unchain_tasks(self) -> list[Signature]:
        """Copies of the steps, with this chain's callbacks on the last one and its errbacks
        on every one (Celery's): what a chain spliced into another keeps."""
        steps = [_copied(t, self._app) for t in self.tasks]
        _push_chain_links(steps, self["options"])
        defaults = {k: v for k, v in self["options"].items() if k not in _PLACE_OPTIONS}
        if steps and defaults:
            steps[0]["options"] = {**defaults, **steps[0]["options"]}
        return steps

    def _flat(self) -> list[Signature]:
        """The steps, nested chains spliced in (keeping their links), one-member groups unrolled."""
        steps = self.tasks
        out: list[Signature] = []
        for step in steps:
            if isinstance(step, chunks):
                step = step.group()
            if isinstance(step, chain):
                inner = step if not _has_links(step) and not _defaults_of(step) else chain(
                    *step.unchain_tasks(), app=step._app)
                out.extend(inner._flat())
                continue
            if isinstance(step, group):
                members = step.tasks
                if len(members) == 1:
                    out.extend(chain(_unrolled(step), app=self._app)._flat())
                    continue
                if not members and len(steps) > 1:
                    continue  # an empty group in a chain is skipped, as in Celery
            out.append(step)
        return out

    def steps(self) -> list[Signature]:
        """Flattened, with every group followed by something made a chord (as Celery does)."""
        upgraded: list[Signature] = []
        for step in self._flat():
            if upgraded and isinstance(upgraded[-1], group):
                upgraded[-1] = chord(upgraded[-1], step, app=self._app)
            else:
                upgraded.append(step)
        return upgraded

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]  # | builds a chain, as in Celery
        if isinstance(other, Signature):
            if _has_links(self):  # this chain's callbacks stay with its own last step
                return chain(*self.unchain_tasks(), other, app=self._app)
            return chain(*self.tasks, other, app=self._app, **self["options"])
        return NotImplemented

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks)

    def freeze(self, _id: str | None = None, group_id: str | None = None, chord: Any = None,
               root_id: str | None = None, parent_id: str | None = None, group_index: int | None = None) -> Any:
        """Fix every step's id; ``_id`` is the last step's, and so the chain's (``chain.id``)."""
        steps = self.steps()
        self["kwargs"]["tasks"] = steps
        if not steps:
            return None
        last_id = _id or self["options"].get("task_id")
        results = [step.freeze(last_id if index == len(steps) - 1 else None) for index, step in enumerate(steps)]
        for parent, child in itertools.pairwise(results):
            _set_parent(child, parent)
        self["options"]["task_id"] = results[-1].id
        return results[-1]

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        last_id = options.pop("task_id", None)
        links = {"link": options.pop("link", None), "link_error": options.pop("link_error", None)}
        # What this chain is part of (a chord header, a group, an outer chain) belongs to
        # its last step: that step's result is the chain's result.
        tail_options = {k: options.pop(k) for k in ("chord", "group_id", "group_index") if k in options}
        outer_rest = list(options.pop("chain", None) or [])
        steps = self.steps()
        if not steps:
            raise ValueError("cannot send an empty chain")
        _push_chain_links(steps, links)
        self["kwargs"]["tasks"] = steps
        last = self.freeze(last_id)
        if tail_options:
            steps[-1].set(**tail_options)
        rest = [dict(s) for s in steps[1:]] + outer_rest
        first_options = dict(options)
        if rest:
            first_options["chain"] = rest
        steps[0].prepare(plan, args, kwargs, first_options)
        return last

    def _apply_here(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        last_id = options.pop("task_id", None)
        links = {"link": options.pop("link", None), "link_error": options.pop("link_error", None)}
        for key in _NOT_EAGER:
            options.pop(key, None)
        steps = self.steps()
        if not steps:
            raise ValueError("cannot apply an empty chain")
        _push_chain_links(steps, links)
        if last_id and not steps[-1].id:
            steps[-1].id = last_id
        last: Any = None
        for step in steps:
            if last is None:
                result = step.apply(args, kwargs, **options)
            else:
                failure = _eager_failure(last)
                if failure is not None:  # the rest never runs; the chain's result is that error
                    return _failed_eager_result(steps[-1], failure, last)
                result = step.apply((last.get(disable_sync_subtasks=False),), {}, **options)
                _set_parent(result, last)
            last = result
        return last


def _has_links(sig: Signature) -> bool:
    return bool(sig["options"].get("link") or sig["options"].get("link_error"))


def _defaults_of(sig: Signature) -> dict[str, Any]:
    return {k: v for k, v in sig["options"].items() if k not in _PLACE_OPTIONS}


def _push_chain_links(steps: list[Signature], options: dict[str, Any]) -> None:
    """A chain's callbacks go to its last step, its errbacks to every step (Celery's rule)."""
    if not steps:
        return
    for callback in _as_list(options.get("link")):
        steps[-1].link(callback)
    for errback in _as_list(options.get("link_error")):
        for step in steps:
            step.link_error(errback)


def _is_plain_call(member: Signature) -> bool:
    """A task signature with no options of its own but an id: one call, nothing nested."""
    return type(member) is Signature and member["options"].keys() <= {"task_id"}


def _plain_message_maker(members: list[Signature], common: dict[str, Any], args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Callable[[Signature, str | None, int], OutgoingMessage]:
    """What makes a group member's message from a plain call: ``make(member, task_id, index)``.

    Plain calls of one task share one MessageBuilder: the group's options are worked out
    once per task, not per member.
    """
    builders: dict[str, tuple[MessageBuilder, Any]] = {}
    for member in members:
        name = member["task"]
        if name not in builders:
            task = member._task()
            builders[name] = MessageBuilder(member.app, name, common, task.send_options() if task else None), task

    def make(member: Signature, task_id: str | None, index: int) -> OutgoingMessage:
        builder, task = builders[member["task"]]
        call_args, call_kwargs = member._arguments(args, kwargs)
        return member._message(builder, task, call_args, call_kwargs, task_id, index)[0]

    return make


_IDS_AT_ONCE = 256  # ids made per read of the system's randomness while a group is sent


def _plain_messages(members: list[Signature], make: Callable[[Signature, str | None, int], OutgoingMessage],
                    results: list[Any]) -> Iterator[OutgoingMessage]:
    """The messages of a group of plain calls, each member's result added to ``results`` as it is made."""
    fresh: Iterator[str] = iter(())
    for index, member in enumerate(members):
        task_id = member["options"].get("task_id") or next(fresh, None)
        if task_id is None:
            fresh = iter(new_task_ids(min(_IDS_AT_ONCE, len(members) - index)))
            task_id = next(fresh)
        results.append(AsyncResult(task_id, app=member.app, task_name=member["task"]))
        yield make(member, task_id, index)


def _push_group_links(members: list[Signature], options: dict[str, Any]) -> None:
    """A group's callbacks go to its first member, made immutable (one task cannot pass the
    group's results on); its errbacks to every member, so each failure calls them."""
    callbacks = _as_list(options.get("link"))
    if callbacks and not members:
        raise ValueError("a callback linked to an empty group would never run; use a chord")
    for callback in callbacks:
        members[0].link(_as_signature(callback, None).clone().set(immutable=True))
    for errback in _as_list(options.get("link_error")):
        for member in members:
            member.link_error(_as_signature(errback, None).clone())


def _unrolled(one: group) -> Signature:
    """A group of one member, as that member (with the group's links and options)."""
    member = _copied(one.tasks[0], one._app)
    defaults = _defaults_of(one)
    if defaults:
        member["options"] = {**defaults, **member["options"]}
    _push_group_links([member], one["options"])
    return member


class group(_Composite):
    """Run tasks in parallel; the result is a ``GroupResult`` in member order."""

    kind = "group"

    def __init__(self, *tasks: Any, app: Celery | None = None, **options: Any) -> None:
        members: Any
        if len(tasks) == 1 and isinstance(tasks[0], group) and not tasks[0]["options"]:
            members = list(tasks[0].tasks)  # group(g) is g's members, as in Celery
        elif len(tasks) == 1 and isinstance(tasks[0], Iterator):
            members = tasks[0]  # a generator is read when the group is sent (or its tasks read)
        else:
            members = _distinct([_as_signature(t, app) for t in _tasks_of(tasks)])
        super().__init__("celery.group", (), {"tasks": members}, options, subtask_type="group", app=app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        return group(list(d["kwargs"]["tasks"]), app=app, **(d.get("options") or {}))

    @property
    def tasks(self) -> list[Signature]:
        return self._parts("tasks")

    @tasks.setter
    def tasks(self, value: Iterable[Any]) -> None:
        self["kwargs"]["tasks"] = list(value)

    def _materialize(self) -> None:
        self._parts("tasks")

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]  # | builds a chain, as in Celery
        if isinstance(other, group) and isinstance(other["kwargs"]["tasks"], list) and not other.tasks:
            return self
        if isinstance(other, Signature):
            return chord(self, other, app=self._app)
        return NotImplemented

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"

    def __len__(self) -> int:
        return len(self.tasks)

    def _leaves(self) -> list[Signature]:
        """The members, nested groups flattened into them (their links and options pushed down)."""
        out: list[Signature] = []
        for member in self.tasks:
            if isinstance(member, chunks):
                member = member.group()
            if isinstance(member, group):
                inner = member._leaves()
                defaults = _defaults_of(member)
                if defaults or _has_links(member):
                    inner = [_copied(m, member._app) for m in inner]
                    for m in inner:
                        m["options"] = {**defaults, **m["options"]}
                    _push_group_links(inner, member["options"])
                out.extend(inner)
            else:
                out.append(member)
        return out

    def freeze(self, _id: str | None = None, group_id: str | None = None, chord: Any = None,
               root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> GroupResult:
        """Fix the group's id and its members' (nested groups flattened into it)."""
        group_id = self["options"].get("task_id") or _id or str(uuid.uuid4())
        self["options"]["task_id"] = group_id
        members = self._leaves()
        self["kwargs"]["tasks"] = members
        ids = new_task_ids(len(members))
        return GroupResult(group_id, [m.freeze(new_id) for m, new_id in zip(members, ids, strict=True)],
                           app=self.app)

    def _for_sending(self, options: dict[str, Any]) -> Signature:
        if self._sends_plain_calls({**self["options"], **options}):
            return self  # only read while it is sent (_send_plain_calls)
        return super()._for_sending(options)

    def _sends_plain_calls(self, options: dict[str, Any]) -> bool:
        """Whether sending with these (merged) options only reads the members: each a plain
        call, and nothing that would write links into them or make the group a chord."""
        if options.get("link") or options.get("link_error") or options.get("chain") or \
                options.get("chord") is not None:
            return False
        return all(_is_plain_call(m) for m in self.tasks)

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        if self._sends_plain_calls(options):
            return self._send_plain_calls(plan, args, kwargs, options)
        own: dict[str, Any] = {k: options.pop(k) for k in ("task_id", "link", "link_error") if k in options}
        chain_rest = list(options.pop("chain", None) or [])
        chord_info = options.pop("chord", None)
        place: dict[str, Any] = {k: options.pop(k) for k in ("group_id", "group_index") if k in options}
        if chain_rest or chord_info is not None:
            # A group followed by something is a chord (Celery's rule); a group whose
            # completion counts as one member of a chord is a chord too, whose body gathers
            # the results under the group's id.
            header = group(*self.tasks, app=self._app, **own)
            header_id = header["options"].get("task_id") or str(uuid.uuid4())
            header["options"]["task_id"] = header_id
            if chain_rest:
                body = Signature.from_dict(chain_rest[0], app=self._app)
                if chain_rest[1:]:
                    place["chain"] = chain_rest[1:]
            else:
                body = Signature("celery.accumulate", (), {"index": 0}, {"task_id": header_id}, app=self._app)
            if chord_info is not None:
                place["chord"] = chord_info
            return chord(header, body, app=self._app).prepare(plan, args, kwargs, {**options, **place})
        result = self.freeze(own.get("task_id"))
        self._send_members(plan, args, kwargs, options, own, None)
        if len(result.results) == 1 and isinstance(result.results[0], GroupResult):
            return result.results[0]  # group(a | group(b, c)): Celery's special case, its inner group
        return result

    def _send_plain_calls(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                          options: dict[str, Any]) -> GroupResult:
        """Send a group of plain calls without copying or freezing them (the common large
        group): their ids are kept beside them, so the caller's signatures are only read.

        Each member's id, result and message are made as the broker reads the messages
        (see Outgoing): on PostgreSQL while the server stores the ones before. The result
        returned is complete once the plan is sent, which is before the caller sees it.
        """
        members = self.tasks
        group_id = self["options"].get("task_id") or options.get("task_id") or str(uuid.uuid4())
        common = {k: v for k, v in options.items() if k not in _OWN_OPTIONS}
        common["group_id"] = group_id
        result = GroupResult(group_id, app=self.app)
        make = _plain_message_maker(members, common, args, kwargs)
        plan.messages.add_lazily(len(members), _plain_messages(members, make, result.results))
        return result

    def _send_members(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                      options: dict[str, Any], own: dict[str, Any], chord_info: dict[str, Any] | None) -> None:
        """Prepare every (frozen, flattened) member; ``chord_info`` when this is a chord's header."""
        members = self.tasks
        _push_group_links(members, own)
        common = {k: v for k, v in options.items() if k not in _OWN_OPTIONS}
        common["group_id"] = self.id
        if chord_info is not None:
            common["chord"] = chord_info
        plain = [_is_plain_call(m) for m in members]
        make = _plain_message_maker([m for m, is_plain in zip(members, plain, strict=True) if is_plain],
                                    common, args, kwargs)
        if all(plain):  # built as the broker reads them (see Outgoing)
            plan.messages.add_lazily(len(members), (make(m, m.id, i) for i, m in enumerate(members)))
            return
        for index, (member, is_plain) in enumerate(zip(members, plain, strict=True)):
            if is_plain:
                plan.messages.append(make(member, member.id, index))
            else:
                member.prepare(plan, args, kwargs, {**common, "group_index": index})

    def _apply_here(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        group_id = options.pop("task_id", None) or self.id or str(uuid.uuid4())
        own: dict[str, Any] = {k: options.pop(k) for k in ("link", "link_error") if k in options}
        for key in _NOT_EAGER:
            options.pop(key, None)
        members = self._leaves()
        _push_group_links(members, own)
        results = [member.apply(args, kwargs, **options) for member in members]
        return GroupResult(group_id, results, app=self.app)


class chord(_Composite):
    """Run a group, then call ``body`` once with the list of its results, in header order."""

    kind = "chord"

    def __init__(self, header: Any, body: Any = None, app: Celery | None = None, **options: Any) -> None:
        header_group: group
        if isinstance(header, group):
            header_group = header
        elif isinstance(header, dict):  # one signature
            header_group = group(header, app=app)
        elif isinstance(header, Iterator):  # read when sent; each task a copy, as in Celery
            header_group = group((_as_signature(t, app).clone() for t in header), app=app)
        else:  # a list: copies, as Celery's chord makes (linking to chord.tasks leaves the list alone)
            header_group = group([_as_signature(t, app).clone() for t in header], app=app)
        body_sig = None if body is None else _as_signature(body, app)
        super().__init__("celery.chord", (), {"header": header_group, "body": body_sig}, options,
                         subtask_type="chord", app=app)

    @classmethod
    def revive(cls, d: dict[str, Any], app: Celery | None) -> Signature:
        header = d["kwargs"]["header"]
        if not isinstance(header, group):
            header = Signature.from_dict(header, app=app) if isinstance(header, dict) else header
        body = d["kwargs"].get("body")
        return chord(header, body, app=app, **(d.get("options") or {}))

    @property
    def header(self) -> group:
        value = self["kwargs"]["header"]
        if not isinstance(value, group):
            value = self["kwargs"]["header"] = (Signature.from_dict(value, app=self._app)
                                                if isinstance(value, dict) else group(value, app=self._app))
        assert isinstance(value, group)
        return value

    @property
    def tasks(self) -> list[Signature]:
        """The header's members (Celery's ``chord.tasks``)."""
        return self.header.tasks

    @tasks.setter
    def tasks(self, value: Iterable[Any]) -> None:
        self["kwargs"]["header"] = group(list(value), app=self._app)

    @property
    def body(self) -> Signature:
        value = self["kwargs"]["body"]
        if value is None:
            raise ValueError("this chord has no body; call it with one: chord(header)(body)")
        if not isinstance(value, Signature):
            value = self["kwargs"]["body"] = Signature.from_dict(value, app=self._app)
        return value

    @body.setter
    def body(self, value: Any) -> None:
        self["kwargs"]["body"] = None if value is None else _as_signature(value, self._app)

    def _materialize(self) -> None:
        self.header._materialize()

    def __call__(self, body: Any = None, **options: Any) -> Any:
        if body is not None:
            self["kwargs"]["body"] = _as_signature(body, self._app)
        return self.apply_async((), {}, **options)

    def apply_async(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> Any:
        if not self.app.settings.task_always_eager and self._header_is_lazy():
            return self._send_as_read(tuple(args or ()), dict(kwargs or {}), options)
        return super().apply_async(args, kwargs, **options)

    async def aapply_async(self, args: Iterable[Any] | None = None,
                           kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        if not self.app.settings.task_always_eager and self._header_is_lazy():
            return await asyncio.to_thread(self._send_as_read, tuple(args or ()), dict(kwargs or {}), options)
        return await super().aapply_async(args, kwargs, **options)

    def _header_is_lazy(self) -> bool:
        header = self["kwargs"]["header"]
        return isinstance(header, group) and isinstance(header["kwargs"]["tasks"], Iterator)

    def _send_as_read(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        """A chord whose header is a generator: each member is sent as soon as it is read
        (as Celery does, #3021), so a slow generator does not hold back the first tasks.

        The members' messages cannot carry the header's size, so they say ``total: None``:
        a member then completes the chord only once the member list is saved, which
        happens when the generator is done; members that finished before that are
        checked here, after saving. Either may send the body; its fixed id sends it once.
        """
        app = self.app
        header = self.header
        _, _, options = self._merge(args, kwargs, options)
        body_id = options.pop("task_id", None)
        body = _copied(self.body, self._app)
        for callback in _as_list(options.pop("link", None)):
            body.link(callback)
        errbacks = _as_list(options.pop("link_error", None))
        for errback in errbacks:
            body.link_error(errback)
        header_errbacks = errbacks if _header_errbacks(app) else []  # added to each member as read
        for key in ("chain", "group_id", "group_index", "chord"):
            if key in options:
                body.set(**{key: options.pop(key)})
        header_id = header.id or str(uuid.uuid4())
        header["options"]["task_id"] = header_id
        result = body.freeze(body_id)
        header_result = GroupResult(header_id, [], app=app)
        _set_parent(result, header_result)
        chord_info = {"group_id": header_id, "total": None, "body": dict(body)}
        shared = {**_defaults_of(header), **{k: v for k, v in options.items() if k not in _OWN_OPTIONS}}
        first = True
        for raw in header["kwargs"]["tasks"]:
            for member in group(_as_signature(raw, self._app), app=self._app)._leaves():
                for errback in header_errbacks:
                    member.link_error(_as_signature(errback, self._app).clone().set(immutable=True))
                if first:
                    _push_group_links([member], {"link": header["options"].get("link")})
                    first = False
                _push_group_links([member], {"link_error": header["options"].get("link_error")})
                index = len(header_result.results)
                header_result.results.append(member.freeze())
                plan = Plan()
                member.prepare(plan, args, kwargs, {**shared, "group_id": header_id, "group_index": index,
                                                    "chord": chord_info})
                plan.send(app)
        header["kwargs"]["tasks"] = []  # read: what was in it is in flight now
        member_ids = [str(r.id) for r in header_result.results]
        lineage: dict[str, Any] = {k: options[k] for k in ("parent_id", "root_id") if k in options}
        run_sync(_finish_sent_header(app, header_id, member_ids, body, lineage))
        return result

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self['kwargs']['body']!r})"

    def freeze(self, _id: str | None = None, group_id: str | None = None, chord: Any = None,
               root_id: str | None = None, parent_id: str | None = None, group_index: int | None = None) -> Any:
        """Fix the header's and the body's ids; the result is the body's, its parent the header's."""
        return self._freeze_parts(_id)[1]

    def _freeze_parts(self, _id: str | None = None) -> tuple[GroupResult, Any]:
        header_result = self.header.freeze()
        body_result = self.body.freeze(_id or self["options"].get("task_id"))
        _set_parent(body_result, header_result)
        return header_result, body_result

    def _take_links(self, options: dict[str, Any]) -> None:
        """Callbacks and errbacks go to the body; errbacks also to each header member with
        ``task_allow_error_cb_on_chord_header``."""
        body = self.body
        for callback in _as_list(options.pop("link", None)):
            body.link(callback)
        errbacks = _as_list(options.pop("link_error", None))
        for errback in errbacks:
            body.link_error(errback)
        if errbacks and _header_errbacks(self.app):
            for member in self.header.tasks:
                for errback in errbacks:
                    member.link_error(_as_signature(errback, self._app).clone().set(immutable=True))

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        body_id = options.pop("task_id", None)
        self._take_links(options)
        body = self.body
        # Whatever follows the chord (an outer chain) or contains it (a group, a chord
        # header) attaches to the body, which is the chord's result.
        for key in ("chain", "group_id", "group_index", "chord"):
            if key in options:
                body.set(**{key: options.pop(key)})
        header_result, result = self._freeze_parts(body_id)
        header = self.header
        member_ids = [str(r.id) for r in header_result.results]
        if not member_ids:  # an empty header calls the body at once with []
            lineage: dict[str, Any] = {k: options[k] for k in ("parent_id", "root_id", "unique_for_s")
                                       if k in options}
            body.prepare(plan, ([],), {}, lineage)
            return result
        header_id = str(header.id)
        plan.groups_to_save.append((header_id, member_ids))
        chord_info = {"group_id": header_id, "total": len(member_ids), "body": dict(body)}
        header_own = {k: header["options"][k] for k in ("link", "link_error") if k in header["options"]}
        header_options = {**_defaults_of(header), **options}
        header._send_members(plan, args, kwargs, header_options, header_own, chord_info)
        return result

    def _apply_here(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        _, _, options = self._merge(args, kwargs, options)
        body_id = options.pop("task_id", None)
        self._take_links(options)
        for key in _NOT_EAGER:
            options.pop(key, None)
        body = self.body
        if body_id and not body.id:
            body.id = body_id
        header_result = self.header._apply_here(args, kwargs, dict(options))
        failure = _eager_failure(header_result)
        if failure is not None:
            failed, exc = failure
            error = ChordError(f"Dependency {failed.id} raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            result = _failed_eager_result(body, (failed, error), header_result)
            for unit, errbacks in errback_units(body):
                request = Request(id=unit.id or result.id, task=unit.task, args=list(unit.args),
                                  kwargs=dict(unit["kwargs"]), is_eager=True, group=header_result.id)
                call_errbacks_eagerly(self.app, errbacks, request, error, None)
            return result
        values = header_result.get(disable_sync_subtasks=False)
        result = body.apply((values,), {}, **options)
        _set_parent(result, header_result)
        return result


async def _finish_sent_header(app: Celery, header_id: str, member_ids: list[str], body: Signature,
                              lineage: dict[str, Any]) -> None:
    """Save the member list of a chord sent as read, then send the body if every member
    finished before it was saved (a member finishing later sees the list and sends it)."""
    store = await app.result_store()
    await store.save_group(header_id, member_ids)
    plan = Plan()
    unique = {"unique_for_s": app.settings.result_expires or 86400.0}
    if not member_ids:
        body.prepare(plan, ([],), {}, {**lineage, **unique})
    else:
        found = await store.fetch_many(member_ids)
        if any(found.get(m) is None or found[m].state != SUCCESS for m in member_ids):
            return  # still running (a member sends the body), or failed (the chord failed)
        values = [from_wire(found[m].result) for m in member_ids]
        body.prepare(plan, (values,), {}, {**lineage, **unique})
    await plan.asend(app, on_duplicate="ignore")


def _header_errbacks(app: Celery) -> bool:
    return bool(app.settings.task_allow_error_cb_on_chord_header)


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
        return group(*[xstarmap(task, part, app=self._app) for part in parts], app=self._app,
                     **self["options"])

    def freeze(self, _id: str | None = None, group_id: str | None = None, chord: Any = None,
               root_id: str | None = None, parent_id: str | None = None,
               group_index: int | None = None) -> GroupResult:
        return self.group().freeze(_id)

    def prepare(self, plan: Plan, args: tuple[Any, ...], kwargs: dict[str, Any],
                options: dict[str, Any]) -> Any:
        return self.group().prepare(plan, args, kwargs, options)

    def _apply_here(self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]) -> Any:
        return self.group()._apply_here(args, kwargs, options)


def xmap(task: Any, it: Iterable[Any], app: Celery | None = None) -> Signature:
    """One task calling ``task`` on each item here in the worker: ``task.map(items)``."""
    return Signature("celery.map", (), {"task": dict(_as_signature(task, app)), "it": list(it)}, app=app)


def xstarmap(task: Any, it: Iterable[Any], app: Celery | None = None) -> Signature:
    """One task calling ``task(*args)`` for each argument tuple: ``task.starmap(items)``."""
    return Signature("celery.starmap", (), {"task": dict(_as_signature(task, app)),
                                            "it": [list(a) for a in it]}, app=app)


KINDS: dict[str, type[Signature]] = {"chain": chain, "group": group, "chord": chord, "chunks": chunks}


def maybe_signature(value: Any, app: Celery | None = None, clone: bool = False) -> Signature | None:
    if value is None:
        return None
    sig = _as_signature(value, app)
    if clone and sig is value:
        sig = sig.clone()
    if app is not None and sig._app is None:
        sig._app = app
    return sig


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


# --- errbacks and the failures they hear of -------------------------------------------------


def errback_runs_inline(task: Any) -> bool:
    """Whether an errback's task is called in place with ``(request, exc, traceback)``.

    As in Celery: a function task, not bound, taking three or more positional arguments (or
    ``*args``). Any other errback is sent as a task with the failed task's id.
    """
    fun = getattr(task, "fun", None)
    if fun is None or getattr(task, "bind", False):
        return False
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


def errback_call(errback: Signature, request: Any, exc: BaseException | None,
                 traceback: str | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments an in-place errback is called with (an immutable one: its own only)."""
    if errback.immutable:
        return tuple(errback["args"]), dict(errback["kwargs"])
    return (request, exc, traceback, *errback["args"]), dict(errback["kwargs"])


def errback_units(sig: Signature) -> list[tuple[Signature, list[Any]]]:
    """For each task whose result stands for ``sig`` (a chain's last step, a chord's body,
    each of a group's members): that task and the errbacks to call if ``sig`` fails."""
    own = _as_list(sig["options"].get("link_error"))
    units: list[tuple[Signature, list[Any]]]
    if isinstance(sig, chain):
        steps = sig.tasks
        units = errback_units(steps[-1]) if steps else []
    elif isinstance(sig, chord):
        units = errback_units(sig.body) if sig["kwargs"].get("body") is not None else []
    elif isinstance(sig, group):
        units = [unit for member in sig.tasks for unit in errback_units(member)]
    else:
        return [(sig, own)]
    out = []
    for task, errbacks in units:
        merged: list[Any] = []
        for errback in own + errbacks:
            if errback not in merged:
                merged.append(errback)
        out.append((task, merged))
    return out


def failure_targets(sig: Any, chord_info: dict[str, Any] | None = None,
                    app: Celery | None = None) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """Every task id fixed in a canvas that will now never run, as ``(id, name, chord)``.

    ``chord`` is the counting information of the chord that id is a member of, on the
    tasks whose results complete one (a chain's last step, a chord's body, a group that
    counts as one member); None elsewhere.
    """
    sig = _as_signature(sig, app)
    opts = sig["options"]
    mine = opts.get("chord") or chord_info
    if isinstance(sig, chain):
        steps = sig.tasks
        for index, step in enumerate(steps):
            yield from failure_targets(step, mine if index == len(steps) - 1 else None, app)
    elif isinstance(sig, group):
        for member in sig.tasks:
            yield from failure_targets(member, None, app)
        if mine is not None and sig.id:
            yield sig.id, "celery.accumulate", mine
    elif isinstance(sig, chord):
        yield from failure_targets(sig.header, None, app)
        if sig["kwargs"].get("body") is not None:
            yield from failure_targets(sig.body, mine, app)
    elif isinstance(sig, chunks):
        return
    elif sig.id:
        yield sig.id, sig.task, mine


# --- eager runs ------------------------------------------------------------------------------


def _eager_failure(result: Any) -> tuple[Any, BaseException] | None:
    """The first failed result (and its exception) in an eager result or group of them."""
    leaves = list(_leaves(result))
    for leaf in leaves:
        record = leaf._record
        if record is not None and record.state in PROPAGATE_STATES:
            return leaf, leaf._exception_of(record)
    return None


def _leaves(result: Any) -> Iterator[Any]:
    if isinstance(result, ResultSet):
        for member in result.results:
            yield from _leaves(member)
    elif isinstance(result, AsyncResult):
        yield result


def _failed_eager_result(sig: Signature, failure: tuple[Any, BaseException], parent: Any) -> EagerResult[Any]:
    """The result of a step that never ran because ``failure`` came first: that error."""
    failed, exc = failure
    task_id = sig.id or str(uuid.uuid4())
    record = ResultRecord(task_id=task_id, state=FAILURE, name=sig.task, date_done_ms=now_ms(),
                          exc_type=f"{type(exc).__module__}.{type(exc).__qualname__}", exc_message=str(exc),
                          traceback=failed._record.traceback if failed._record is not None else None)
    result: EagerResult[Any] = EagerResult(task_id, record, app=sig.app, task_name=sig.task)
    result._exception = exc
    result.parent = parent
    return result


def run_eager_followups(app: Celery, request: Request, value: Any, exc: BaseException | None,
                        traceback: str | None) -> None:
    """After ``task.apply()``: send the callbacks (``request.callbacks``; with
    ``apply_async`` as in Celery, so they run here only under ``task_always_eager``) or
    call the errbacks (``request.errbacks``)."""
    root_id = request.root_id or request.id
    if exc is None:
        for raw in request.callbacks:
            _as_signature(raw, app).apply_async((value,), parent_id=request.id, root_id=root_id)
    elif request.errbacks:
        call_errbacks_eagerly(app, request.errbacks, request, exc, traceback)


def call_errbacks_eagerly(app: Celery, errbacks: list[Any], request: Request, exc: BaseException | None,
                          traceback: str | None) -> None:
    for raw in errbacks:
        errback = _as_signature(raw, app)
        task = errback._task()
        try:
            if task is not None and errback_runs_inline(task):
                call_args, call_kwargs = errback_call(errback, request, exc, traceback)
                value = task.run(*call_args, **call_kwargs)
                if inspect.iscoroutine(value):
                    run_sync(value)
            else:
                errback.apply((request.id,), parent_id=request.id, root_id=request.root_id or request.id)
        except Exception:
            logger.exception("errback %r of task %s raised", errback, request.id)
