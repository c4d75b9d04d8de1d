"""Sending a canvas pauses the cyclic collector, and always hands it back as it was."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, group
from celeriac.utils.bulk import collector_paused


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_paused_for_the_block_and_back_after_an_error(collector_on: None) -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_the_program_turned_off_stays_off(collector_on: None) -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_sending_a_group_leaves_the_collector_on_even_when_a_member_is_refused(collector_on: None) -> None:
    app = Celery("bulk", broker=f"memory://{uuid.uuid4().hex}")

    @app.task(name="bulk.add")
    def add(x: Any, y: Any) -> Any:
        return x + y

    assert len(group(add.s(i, i) for i in range(50)).apply_async().results) == 50
    assert gc.isenabled()
    with pytest.raises(Exception, match="argument"):
        group([add.s(1, 1), add.s(object(), 2)]).apply_async()
    assert gc.isenabled()
