"""Fixtures for the task tests: an app on every store (memory, SQLite, Redis, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac import Celery


@pytest.fixture
def app(backend_url: str) -> Iterator[Celery]:
    app = Celery("proj", broker=backend_url)
    yield app


@pytest.fixture
def eager_app() -> Celery:
    return Celery("eager", broker="memory://tasks-eager", task_always_eager=True)
