"""Signatures: a task call packaged to be sent later, as plain JSON-able dicts. No I/O here."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Celery
    from .result import AsyncResult, EagerResult


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
        return cls(d, app=app)

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
        from .app import current_app

        return current_app()

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
        sig = Signature(self.task, new_args, new_kwargs, new_options, immutable=self.immutable,
                        subtask_type=self["subtask_type"], app=self._app)
        return sig

    def _merge(self, args: Iterable[Any] | None, kwargs: dict[str, Any] | None,
               options: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        merged_options = {**copy.deepcopy(self["options"]), **options}
        if self.immutable:
            return self.args, self.kwargs, merged_options
        return (*(args or ()), *self.args), {**self.kwargs, **(kwargs or {})}, merged_options

    # --- sending ----------------------------------------------------------------------

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> AsyncResult[Any]:
        return await self.aapply_async(args, kwargs)

    def apply_async(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
                    **options: Any) -> AsyncResult[Any]:
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        task = self._task()
        if task is not None:
            result: AsyncResult[Any] = task.apply_async(call_args, call_kwargs, **call_options)
            return result
        return self.app.send_task(self.task, call_args, call_kwargs, **call_options)

    async def aapply_async(self, args: Iterable[Any] | None = None,
                           kwargs: dict[str, Any] | None = None, **options: Any) -> AsyncResult[Any]:
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        task = self._task()
        if task is not None:
            aresult: AsyncResult[Any] = await task.aapply_async(call_args, call_kwargs, **call_options)
            return aresult
        return await self.app.asend_task(self.task, call_args, call_kwargs, **call_options)

    def apply(self, args: Iterable[Any] | None = None, kwargs: dict[str, Any] | None = None,
              **options: Any) -> EagerResult[Any]:
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        task = self._task()
        if task is None:
            from .exceptions import NotRegistered

            raise NotRegistered(f"task {self.task!r} is not registered here, so it cannot run eagerly")
        eager: EagerResult[Any] = task.apply(call_args, call_kwargs, **call_options)
        return eager

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task's function here with the merged arguments, like calling the task."""
        task = self._task()
        if task is None:
            from .exceptions import NotRegistered

            raise NotRegistered(f"task {self.task!r} is not registered here")
        call_args, call_kwargs, _ = self._merge(args, kwargs, {})
        return task(*call_args, **call_kwargs)

    def _task(self) -> Any:
        from .exceptions import NotRegistered

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
        return Signature(copy.deepcopy(dict(self), memo), app=self._app)

    def __reduce__(self) -> Any:
        return (Signature, (dict(self),))


def signature(varies: str | dict[str, Any] | Signature, *args: Any, **kwargs: Any) -> Signature:
    """``signature("proj.tasks.add", args=(2, 2), countdown=10)`` or from a dict."""
    if isinstance(varies, Signature):
        return varies.clone()
    if isinstance(varies, dict):
        return Signature.from_dict(varies)
    call_args = kwargs.pop("args", args)
    call_kwargs = kwargs.pop("kwargs", None)
    options = kwargs.pop("options", None) or {}
    immutable = kwargs.pop("immutable", False)
    app = kwargs.pop("app", None)
    return Signature(varies, call_args, call_kwargs, {**options, **kwargs}, immutable=immutable, app=app)


subtask = signature
