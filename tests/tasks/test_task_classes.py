"""Task classes as Celery's Tasks guide has them: base=, class-based tasks, app.Task/task_cls, handlers."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from celeriac import Celery, Task, shared_task
from celeriac.exceptions import ConfigurationError, Ignore, TimeLimitExceeded
from celeriac.execution import ExceptionInfo

from ..unit.helpers import drain


class Recording(Task):  # type: ignore[type-arg]
    """Records every handler call, with Celery's arguments, and the thread it ran in."""

    calls: list[tuple[Any, ...]] = []

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        self.calls.append(("before_start", task_id, tuple(args), dict(kwargs), threading.current_thread().name,
                           self.request.id))

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self.calls.append(("on_success", retval, task_id, tuple(args), dict(kwargs), threading.current_thread().name))

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.calls.append(("on_failure", type(exc).__name__, task_id, tuple(args), type(einfo).__name__,
                           "Traceback" in str(einfo), self.request.id))

    def on_retry(self, exc: BaseException | None, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.calls.append(("on_retry", type(exc).__name__, task_id, self.request.retries))

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.calls.append(("after_return", status, retval if status == "SUCCESS" else type(retval).__name__, task_id))


@pytest.fixture
def calls() -> list[tuple[Any, ...]]:
    Recording.calls = []
    return Recording.calls


def names(calls: list[tuple[Any, ...]], task_id: str) -> list[str]:
    return [c[0] for c in calls if task_id in c]


async def test_base_handlers_run_in_the_worker_with_celerys_arguments(app: Celery, calls: list[Any]) -> None:
    @app.task(base=Recording)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(base=Recording)
    def broken(x: int) -> None:
        raise KeyError(x)

    @app.task(base=Recording, bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self: Any) -> str:
        if self.request.retries == 0:
            raise self.retry(exc=ValueError("once"))
        return "ok"

    ok, bad, retried = add.delay(2, y=3), broken.delay(7), flaky.delay()
    await drain(app)
    await drain(app)
    assert ok.get(timeout=5) == 5 and retried.get(timeout=5) == "ok"
    with pytest.raises(KeyError):
        bad.get(timeout=5)

    assert names(calls, ok.id) == ["before_start", "on_success", "after_return"]
    before = next(c for c in calls if c[0] == "before_start" and c[1] == ok.id)
    assert before[2:4] == ((2,), {"y": 3}) and before[5] == ok.id  # self.request is the running call
    success = next(c for c in calls if c[0] == "on_success")
    assert success[1:5] == (5, ok.id, (2,), {"y": 3})
    assert success[5] == before[4] and success[5].startswith("celeriac-task")  # the body's pool thread
    assert ("after_return", "SUCCESS", 5, ok.id) in calls

    assert names(calls, bad.id) == ["before_start", "on_failure", "after_return"]
    failure = next(c for c in calls if c[0] == "on_failure")
    assert failure[1:] == ("KeyError", bad.id, (7,), "ExceptionInfo", True, bad.id)
    assert ("after_return", "FAILURE", "KeyError", bad.id) in calls

    # A retry runs on_retry with the exception given to retry(); after_return waits for the end.
    assert names(calls, retried.id) == ["before_start", "on_retry", "before_start", "on_success", "after_return"]
    assert ("on_retry", "ValueError", retried.id, 0) in calls


async def test_async_task_handlers(app: Celery, calls: list[Any]) -> None:
    class AsyncBase(Recording):
        async def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            self.calls.append(("async on_success", retval, task_id))

    @app.task(base=AsyncBase)
    async def double(x: int) -> int:
        return 2 * x

    result = double.delay(21)
    await drain(app)
    assert result.get(timeout=5) == 42
    assert names(calls, result.id) == ["before_start", "async on_success", "after_return"]


def test_handlers_run_in_eager_apply(calls: list[Any]) -> None:
    app = Celery("eager-hooks", broker="memory://eager-hooks")

    @app.task(base=Recording)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(base=Recording)
    def broken() -> None:
        raise RuntimeError("no")

    result = add.apply((1, 2))
    assert result.get() == 3
    assert names(calls, result.id) == ["before_start", "on_success", "after_return"]
    failed = broken.apply()
    assert isinstance(failed.result, RuntimeError)
    assert names(calls, failed.id) == ["before_start", "on_failure", "after_return"]


def test_before_start_raising_fails_the_task_and_a_raising_handler_changes_nothing() -> None:
    app = Celery("eager-before", broker="memory://eager-before")
    seen: list[str] = []

    class Guarded(Task):  # type: ignore[type-arg]
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            if args and args[0] < 0:
                raise ValueError("negative")

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            raise RuntimeError("a broken handler")

        def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            seen.append(f"failure {exc}")

    @app.task(base=Guarded)
    def ident(x: int) -> int:
        seen.append("body")
        return x

    assert ident.apply((-1,)).failed() and seen == ["failure negative"]
    assert ident.apply((4,)).get() == 4  # on_success raised: logged, the task still succeeded


async def test_class_based_task_registered_and_run(app: Celery, calls: list[Any]) -> None:
    class Multiply(app.Task):  # type: ignore[name-defined,misc]
        name = "proj.multiply"
        max_retries = 7

        def __init__(self) -> None:  # Celery's docs: __init__ runs once per process, without super()
            self.factor = 10

        def run(self, x: int) -> int:
            return x * self.factor + self.request.retries

    task = app.register_task(Multiply())
    assert app.tasks["proj.multiply"] is task and task.app is app and task.max_retries == 7
    assert task(2) == 20  # called directly, as a function
    result = task.delay(3)
    await drain(app)
    assert result.get(timeout=5) == 30

    class Unnamed(Recording):
        def run(self) -> str:
            return "unnamed"

    unnamed = app.register_task(Unnamed)  # the class itself works too
    assert unnamed.name == f"{__name__}.Unnamed"
    sent = unnamed.delay()
    await drain(app)
    assert sent.get(timeout=5) == "unnamed"
    assert names(calls, sent.id) == ["before_start", "on_success", "after_return"]


async def test_class_based_autoretry_as_in_celerys_suite(app: Celery) -> None:
    class ClassBasedAutoRetryTask(Task):  # type: ignore[type-arg]
        name = "auto_retry_class_task"
        autoretry_for = (ValueError,)
        retry_kwargs = {"max_retries": 1, "countdown": 0}

        def run(self) -> int:
            if self.request.retries:
                return int(self.request.retries)
            raise ValueError()

    task = ClassBasedAutoRetryTask()
    app.register_task(task)
    result = task.delay()
    for _ in range(3):
        await drain(app)
    assert result.get(timeout=5) == 1


async def test_app_wide_task_cls_and_app_task_subclassing(backend_url: str) -> None:
    class DatabaseTask(Task):  # type: ignore[type-arg]
        _db: list[str] | None = None
        closed: list[str] = []

        @property
        def db(self) -> list[str]:
            if self._db is None:
                self._db = ["connection"]
            return self._db

        def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            self.closed.append(task_id)

    app = Celery("proj", broker=backend_url, task_cls=DatabaseTask)
    assert issubclass(app.Task, DatabaseTask) and app.Task._app is app

    @app.task(bind=True)
    def process_rows(self: Any) -> list[str]:
        return list(self.db)

    assert isinstance(process_rows, DatabaseTask)
    result = process_rows.delay()
    await drain(app)
    assert result.get(timeout=5) == ["connection"] and DatabaseTask.closed == [result.id]

    by_path = Celery("proj", broker=backend_url, task_cls=f"{__name__}:Recording")
    assert issubclass(by_path.Task, Recording)


def test_base_options_and_custom_attributes() -> None:
    app = Celery("opts", broker="memory://opts")

    class Slow(Task):  # type: ignore[type-arg]
        max_retries = 10
        rate_limit = "1/s"
        custom_flag = "from the base"

    @app.task(base=Slow, custom_flag="from the decorator", queue="slow")
    def work() -> None: ...

    @app.task(base=Slow)
    def other() -> None: ...

    assert isinstance(work, Slow) and work.max_retries == 10 and work.rate_limit == "1/s"
    assert work.custom_flag == "from the decorator" and other.custom_flag == "from the base"  # type: ignore[attr-defined]
    assert work.queue == "slow" and other.queue is None
    assert work.__name__ == "work" and work.name.endswith(".work")
    with pytest.raises(ConfigurationError, match="unknown task option"):
        app.task(no_such_option=1)(lambda: None)
    with pytest.raises(ConfigurationError, match="Task subclass"):
        app.task(base=object)(lambda: None)


def test_shared_task_with_base_and_custom_call() -> None:
    seen: list[str] = []

    class Wrapped(Task):  # type: ignore[type-arg]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            seen.append(f"around {self.name}")
            return super().__call__(*args, **kwargs)

    @shared_task(base=Wrapped, name="tests.tasks.wrapped")
    def wrapped(x: int) -> int:
        return x + 1

    app = Celery("shared-base", broker="memory://shared-base")
    assert wrapped.apply_on(app, (1,)).get() == 2  # the worker and apply() call a custom __call__
    assert seen == ["around tests.tasks.wrapped"]
    assert wrapped(5) == 6 and len(seen) == 2


def test_request_outside_a_task_and_push_request() -> None:
    app = Celery("req", broker="memory://req")

    @app.task(bind=True)
    def report(self: Any) -> tuple[Any, ...]:
        return self.request.called_directly, self.request.id, self.request.retries

    assert report() == (True, None, 0)
    report.push_request(id="abc", retries=2)
    try:
        assert report() == (False, "abc", 2)
    finally:
        report.pop_request()
    assert report.apply().get()[0] is False


def test_exception_info_names_the_traceback() -> None:
    try:
        raise ValueError("x")
    except ValueError as exc:
        info = ExceptionInfo(exc)
    assert info.type is ValueError and info.exception.args == ("x",) and info.tb is not None
    assert "ValueError: x" in info.traceback and str(info) == info.traceback


def test_ignore_from_a_task_records_nothing_in_eager() -> None:
    app = Celery("eager-ignore", broker="memory://eager-ignore")

    @app.task
    def skip() -> None:
        raise Ignore()

    assert skip.apply().get() is None


async def test_time_limit_on_a_thread_runs_on_failure_once(app: Celery, calls: list[Any]) -> None:
    release, ended = threading.Event(), threading.Event()

    @app.task(base=Recording, time_limit=0.2)
    def stuck() -> str:
        release.wait(30)
        ended.set()
        return "late"

    result = stuck.delay()
    await drain(app)
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=5)
    release.set()
    assert ended.wait(10)
    await asyncio.sleep(0.05)  # the abandoned thread's last steps after the body
    assert names(calls, result.id) == ["before_start", "on_failure", "after_return"]
    assert next(c for c in calls if c[0] == "on_failure")[:2] == ("on_failure", "TimeLimitExceeded")
