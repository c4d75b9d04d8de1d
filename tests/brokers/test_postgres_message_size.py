"""PostgreSQL only: ``?max_message_size=`` refuses a message over it at ``delay()``, before any write."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac import Celery, group
from celeriac._bridge import run_sync
from celeriac.exceptions import ConfigurationError
from celeriac.servers import BrokerOptions, create_broker

from ..conftest import postgres_test_url

pytest.importorskip("psycopg")

from celeriac.servers.postgres import MessageTooLarge
from celeriac.servers.postgres.connection import DEFAULT_MAX_MESSAGE_SIZE, parse_url


@pytest.fixture
def app() -> Iterator[Celery]:
    with postgres_test_url("size") as url:
        app = Celery("size", broker=f"{url}&max_message_size=4096", set_as_current=False)
        try:
            yield app
        finally:
            run_sync(app.close())


async def _depths(app: Celery) -> dict[str, int]:
    return await (await app.clients()).broker.queue_depths()


def test_a_message_over_the_limit_is_refused_at_delay_and_nothing_is_written(app: Celery) -> None:
    @app.task
    def upload(data: str) -> int:
        return len(data)

    with pytest.raises(MessageTooLarge) as caught:
        upload.delay("x" * 5000)
    message = str(caught.value)
    assert "4096" in message and "max_message_size" in message and "upload" in message
    assert isinstance(caught.value, ValueError)
    # A batch with one message too many bytes is refused whole.
    with pytest.raises(MessageTooLarge):
        app.send_task("upload", ["x" * 5000])
    assert run_sync(_depths(app)) == {}
    # A large group is written by COPY as its members are built: one member over the limit
    # rolls it all back.
    with pytest.raises(MessageTooLarge):
        group(upload.s("x" * (5000 if i == 150 else 10)) for i in range(200)).apply_async()
    assert run_sync(_depths(app)) == {}
    small = upload.delay("x" * 100)
    assert run_sync(_depths(app)) == {"celery": 1} and small.id


def test_the_default_limit_is_16_mib() -> None:
    assert parse_url("postgresql://127.0.0.1/test").max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 16 * 2**20


@pytest.mark.parametrize(("bad", "says"), [
    ("postgresql://127.0.0.1/test?max_message_size=0", "positive whole number"),
    ("postgresql://127.0.0.1/test?max_message_size=16MB", "positive whole number"),
    ("postgresql://127.0.0.1/test?max_message_size=1073741824", "PostgreSQL's limit"),
])
def test_a_bad_limit_is_refused_before_connecting(bad: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        create_broker(bad, BrokerOptions())
