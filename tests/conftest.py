"""Shared fixtures: broker and result-store URLs for every implementation.

Server-backed URLs come from the environment (defaults: the loopback servers). A server
that does not answer skips its tests locally, with a reason; under ``CI=true`` it fails.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

REDIS_URL = os.environ.get("CELERIAC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("CELERIAC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def server_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def require_server(url: str) -> None:
    if server_answers(url):
        return
    message = f"no server answers at {url}"
    if IN_CI:
        pytest.fail(f"{message}; CI must run every broker's tests (../shared/bin/services-up)")
    pytest.skip(message)


def redis_available() -> bool:
    try:
        import celeriac.servers.redis.transport  # noqa: F401
    except ImportError:
        return False
    return True


def broker_urls(tmp_path_factory: pytest.TempPathFactory | None = None) -> list[str]:
    return ["memory", "sqlite", "redis", "postgres"]


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh URL per test: its own memory name, SQLite file, Redis key prefix or PostgreSQL schema."""
    kind = request.param
    if kind == "memory":
        yield f"memory://{uuid.uuid4().hex}"
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/celeriac.db"
    elif kind == "postgres":
        with postgres_test_url("test") as url:
            yield url
    else:
        with redis_test_url("test") as url:
            yield url


@contextlib.contextmanager
def redis_test_url(label: str) -> Iterator[str]:
    """A Redis URL with a fresh key prefix; its keys are deleted afterwards.

    Skips without the Redis broker or server (fails under CI).
    """
    if not redis_available():
        if IN_CI:
            pytest.fail("celeriac.servers.redis is missing")
        pytest.skip("the Redis broker is not built yet")
    require_server(REDIS_URL)
    prefix = f"{label}-{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in REDIS_URL else "?"
    url = f"{REDIS_URL}{sep}key_prefix={prefix}"
    try:
        yield url
    finally:
        _cleanup_redis(url, prefix)


def _cleanup_redis(url: str, prefix: str) -> None:
    try:
        import redis
    except ImportError:
        return
    client = redis.Redis.from_url(url.split("?")[0])
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    for key in client.scan_iter(match=f"{{{prefix}*", count=1000):
        client.delete(key)
    client.close()


def postgres_available() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def postgres_test_url(label: str) -> Iterator[str]:
    """A PostgreSQL URL with a fresh schema (``t_<label>_<random>``), dropped afterwards.

    Skips without psycopg or the server (fails under CI).
    """
    if not postgres_available():
        if IN_CI:
            pytest.fail("psycopg is missing; pip install 'celeriac[postgres]'")
        pytest.skip("psycopg is not installed")
    parsed = urlparse(POSTGRES_URL)
    require_server(f"postgresql://{parsed.hostname or '127.0.0.1'}:{parsed.port or 5432}")
    schema = f"t_{label}_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}schema={schema}"
    finally:
        drop_postgres_schema(schema)


def drop_postgres_schema(schema: str) -> None:
    import psycopg

    with contextlib.suppress(psycopg.OperationalError), \
            psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
