"""celeriac.utils.log.get_task_logger: each record names its task, as Celery's task logger does."""

from __future__ import annotations

import logging

import pytest

from celeriac import Celery
from celeriac.utils.log import TASK_LOG_FORMAT, TaskFormatter, get_task_logger

from ..unit.helpers import drain

logger = get_task_logger(__name__)


def test_task_logger_is_a_child_of_celery_task() -> None:
    assert logger.name == __name__ and logger.parent is logging.getLogger("celery.task")
    assert get_task_logger(__name__) is logger and len(logger.filters) == 1
    with pytest.raises(RuntimeError, match="reserved"):
        get_task_logger("celery.task")


def test_records_carry_the_task_name_and_id(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("logs", broker="memory://logs")

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        logger.info("Adding %s + %s", x, y)
        return x + y

    with caplog.at_level(logging.INFO, logger=__name__):
        result = add.apply((2, 2))
        logger.info("outside")
    inside, outside = [r for r in caplog.records if r.name == __name__]
    assert (inside.task_name, inside.task_id) == ("proj.add", result.id)  # type: ignore[attr-defined]
    assert (outside.task_name, outside.task_id) == ("???", "???")  # type: ignore[attr-defined]
    formatted = TaskFormatter(TASK_LOG_FORMAT).format(inside)
    assert formatted.endswith(f"proj.add[{result.id}]: Adding 2 + 2")


async def test_records_in_the_worker_threads_and_async_tasks(backend_url: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("proj", broker=backend_url)

    @app.task(name="proj.sync_log")
    def sync_log(i: int) -> None:
        logger.warning("sync %s", i)

    @app.task(name="proj.async_log")
    async def async_log(i: int) -> None:
        logger.warning("async %s", i)

    with caplog.at_level(logging.WARNING, logger=__name__):
        sent = {sync_log.delay(i).id: f"sync {i}" for i in range(3)}
        sent.update({async_log.delay(i).id: f"async {i}" for i in range(3)})
        await drain(app)
    got = {r.task_id: r.getMessage() for r in caplog.records if r.name == __name__}  # type: ignore[attr-defined]
    assert got == sent
