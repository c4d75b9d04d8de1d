"""The connection to Redis that the broker and the result store share: URL, scripts, calls.

URLs::

    redis://[[user]:password@]host[:port][/db][?options]
    rediss://...                      TLS; redis-py's ssl_* query options apply
    redis+sentinel://[[user]:password@]host1:26379,host2:26379[/db]?master_name=mymaster

celeriac's own query options (removed before the URL reaches redis-py; every other
option, such as ``socket_timeout`` or ``ssl_cert_reqs``, goes to redis-py unchanged):

``key_prefix`` (default ``celeriac``)
    Prefix of every key, so several apps or test runs can share one database.
``allow_evicting_policy=true``
    Start even when the server's ``maxmemory-policy`` evicts any key (``allkeys-*``).
    By default that is refused: an evicted key is a queued task lost without a trace.
    Fix the server with ``CONFIG SET maxmemory-policy noeviction`` (and in redis.conf)
    rather than setting this. ``volatile-*`` policies only evict keys with a TTL
    (results, revoked ids) and only get a warning.
``master_name`` (``redis+sentinel://`` only, default ``mymaster``)
    The Sentinel service name of the master.


A connection holds one redis-py client (a blocking pool) and runs the Lua scripts in
``scripts/`` by EVALSHA, loading them again if the server forgot them. At open it
checks that the server answers and that its ``maxmemory-policy`` cannot evict queued
tasks.

A call whose connection drops is sent again (redis-py's ``Retry``), and the server may
have run it before the drop: only its reply was lost. Scripts that must not run twice
(publish, ack, release, retry, dead-letter: marked ``--- @once``) take a call key, new
for each call of a broker method and the same in all its retries; the script keeps its
reply under that key for ``call_memory_ms`` and answers a retry with it
(``includes/once.lua``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...exceptions import BrokerUnavailable, ConfigurationError
from .. import hide_password
from .keys import Keys

# hiredis (the `redis` extra installs it) packs a command in C, ten times faster than
# redis-py's packer: ~10 us of every delay(). Without it, redis-py's packer is used.
_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None

logger = logging.getLogger("celeriac.redis")

DEFAULT_KEY_PREFIX = "celeriac"
CELERIAC_OPTIONS = ("key_prefix", "allow_evicting_policy", "master_name")
RECONNECT_RETRIES = 4  # with back-off from 0.1 s up to 2 s: ~1.5 s before giving up
BACKOFF_CAP_S = 2.0
RECONNECT_LOG_EVERY_S = 60.0
DEFAULT_MAX_CONNECTIONS = 100  # per client; ?max_connections= in the URL overrides it
DEFAULT_SOCKET_TIMEOUT_S = 5.0  # redis-py's own default, made explicit; each BLPOP stays below it
DEFAULT_POOL_TIMEOUT_S = 20.0  # how long a call waits for a free pooled connection
CALL_MEMORY_MIN_S = 300.0  # a call's reply is kept at least this long (see once.lua)


# --- the URL ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a celeriac Redis URL names: the server URL for redis-py and celeriac's options."""

    url: str
    redis_url: str  # celeriac's options removed
    safe_url: str  # the password hidden, for messages and logs
    scheme: str
    key_prefix: str
    allow_evicting_policy: bool
    master_name: str

    @property
    def data_id(self) -> tuple[str, str]:
        """Two targets with the same data_id read and write the same keys."""
        return (self.redis_url, self.key_prefix)


def parse_url(url: str) -> RedisTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "redis+sentinel"):
        raise ConfigurationError(f"not a Redis URL: {hide_password(url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in CELERIAC_OPTIONS}
    rest = [(k, v) for k, v in query if k not in CELERIAC_OPTIONS]
    prefix = ours.get("key_prefix", DEFAULT_KEY_PREFIX)
    if not prefix:
        raise ConfigurationError(f"key_prefix is empty in {hide_password(url)!r}; leave it out or name one")
    allow = ours.get("allow_evicting_policy", "false").lower()
    if allow not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigurationError(
            f"allow_evicting_policy={allow!r} in {hide_password(url)!r} is not a boolean; use true or false"
        )
    redis_url = urlunsplit(parts._replace(query=urlencode(rest)))
    return RedisTarget(
        url=url,
        redis_url=redis_url,
        safe_url=hide_password(redis_url),
        scheme=parts.scheme,
        key_prefix=prefix,
        allow_evicting_policy=allow in ("true", "1", "yes"),
        master_name=ours.get("master_name", "mymaster"),
    )


# --- the scripts --------------------------------------------------------------------

_INCLUDE = re.compile(r'^--- @include "([\w-]+)"[ \t]*$', re.MULTILINE)
_ONCE = re.compile(r"^--- @once[ \t]*$", re.MULTILINE)
_BODY = "--- @body\n"
_CLOCK_SKEW = re.compile(r"^local CLOCK_SKEW_MS = 0$", re.MULTILINE)  # in includes/clock.lua


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str  # the file's stem, e.g. "reserve-10"
    source: str
    sha: str
    once: bool = False  # wrapped in once.lua: run() appends a call key and its lifetime


@cache
def load_scripts(skew_ms: int = 0) -> dict[str, LuaScript]:
    """Every script by verb ("reserve"), its ``--- @include`` lines replaced by the include,
    and wrapped in ``includes/once.lua`` if it holds a ``--- @once`` line.

    ``skew_ms`` (tests only, see ``RedisConnection.skew_clock``) is written into
    ``includes/clock.lua`` as its ``CLOCK_SKEW_MS``: the scripts then read the server's
    clock that much later. Each value is its own set of scripts (its own SHAs).
    """
    root = resources.files("celeriac.servers.redis").joinpath("scripts")
    once_wrapper = root.joinpath("includes", "once.lua").read_text()
    assert once_wrapper.count(_BODY) == 1
    clock = root.joinpath("includes", "clock.lua").read_text()
    assert len(_CLOCK_SKEW.findall(clock)) == 1
    if skew_ms:
        clock = _CLOCK_SKEW.sub(f"local CLOCK_SKEW_MS = {int(skew_ms)}", clock)

    def include(name: str) -> str:
        return clock if name == "clock" else root.joinpath("includes", f"{name}.lua").read_text()

    scripts = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".lua"):
            continue
        stem = entry.name[: -len(".lua")]
        source = _INCLUDE.sub(lambda m: include(m.group(1)), entry.read_text())
        once = bool(_ONCE.search(source))
        if once:
            source = once_wrapper.replace(_BODY, source if source.endswith("\n") else source + "\n")
        verb = stem.rsplit("-", 1)[0]
        scripts[verb] = LuaScript(stem, source, hashlib.sha1(source.encode()).hexdigest(), once)
    return scripts


def new_call_id() -> str:
    """A call key's id: 128 random bits, so no two calls within the memory share one."""
    return os.urandom(16).hex()


def call_memory_ms(socket_timeout_s: float | None, connect_timeout_s: float | None,
                   pool_timeout_s: float | None) -> int:
    """How long a call's reply is kept: a quarter longer than a call can go on being retried.

    From its first send, a script call may be retried (run(), then _run_with_retries)
    after waiting for a pooled connection, then in RECONNECT_RETRIES + 1 attempts of a
    connect and a reply, with back-off between them; all that twice more when the server
    lost the script (SCRIPT LOAD, then EVALSHA). With the defaults (5 s socket timeouts,
    20 s pool timeout) that is about 4 minutes, so the floor of 5 minutes applies. A
    missing timeout (a read that may wait forever) counts as a minute.
    """
    read_s = socket_timeout_s or 60.0
    connect_s = connect_timeout_s or read_s  # redis-py connects within the socket timeout
    one_call_s = (pool_timeout_s or 0.0) + (RECONNECT_RETRIES + 1) * (connect_s + read_s) \
        + RECONNECT_RETRIES * BACKOFF_CAP_S
    window_s = read_s + 3 * one_call_s
    # Each call key costs about 100 bytes while it lives, so the margin stays modest.
    return int(max(CALL_MEMORY_MIN_S, 1.25 * window_s) * 1000)


# --- the connection -----------------------------------------------------------------

_last_reconnect_log: dict[str, float] = {}


class _ReconnectBackoff(ExponentialWithJitterBackoff):
    """redis-py's exponential back-off that logs the first retry of an outage, once a minute."""

    def __init__(self, safe_url: str) -> None:
        super().__init__(cap=BACKOFF_CAP_S, base=0.1)
        self.safe_url = safe_url

    def compute(self, failures: int) -> float:
        if failures == 1:
            now = time.monotonic()
            if now - _last_reconnect_log.get(self.safe_url, -math.inf) >= RECONNECT_LOG_EVERY_S:
                _last_reconnect_log[self.safe_url] = now
                logger.warning("lost the connection to Redis at %s; reconnecting with back-off",
                               self.safe_url)
        return super().compute(failures)


class RedisConnection:
    """One redis-py client and the loaded scripts, shared by a broker and a store on one URL.

    Opened and closed by reference count: the broker and a store sharing it each open it
    once, and the client closes when the last one closes.
    """

    def __init__(self, url: str) -> None:
        self.target = parse_url(url)
        self.keys = Keys(self.target.key_prefix)
        self.scripts = load_scripts()
        self.clock_skew_ms = 0  # see skew_clock
        self._client: Redis | None = None
        self._users = 0
        self._spare: Any = None  # a pooled connection held for script calls (see run())
        self._lock = asyncio.Lock()
        self.max_block_s = 4.0  # longest single BLPOP; set from the socket timeout at open()
        self.call_memory_ms = int(CALL_MEMORY_MIN_S * 1000)  # set from the timeouts at open()

    @property
    def client(self) -> Redis:
        if self._client is None:
            raise BrokerUnavailable(
                f"the Redis connection to {self.target.safe_url} is not open; call connect() first"
            )
        return self._client

    async def open(self) -> None:
        async with self._lock:
            if self._client is None:
                client = self._make_client()
                try:
                    await self._check_server(client)
                except BaseException:
                    await client.aclose()
                    raise
                self._client = client
            self._users += 1

    async def close(self) -> None:
        async with self._lock:
            self._users -= 1
            if self._users <= 0 and self._client is not None:
                client, self._client = self._client, None
                self._users = 0
                spare, self._spare = self._spare, None
                if spare is not None:
                    await client.connection_pool.release(spare)
                await client.aclose()

    def _make_client(self) -> Redis:
        target = self.target
        options: dict[str, Any] = {
            "retry": Retry(_ReconnectBackoff(target.safe_url), RECONNECT_RETRIES,
                           (RedisConnectionError, RedisTimeoutError)),
            "client_name": "celeriac-" + re.sub(r"[^\w.:-]", "_", target.key_prefix),
            "socket_timeout": DEFAULT_SOCKET_TIMEOUT_S,  # a socket_timeout in the URL wins
        }
        if target.scheme != "redis+sentinel":
            # A blocking pool: past max_connections a caller waits for a free connection
            # (a burst of adelay() calls), where redis-py's default pool raises at once.
            pool = BlockingConnectionPool.from_url(
                target.redis_url,
                **{"max_connections": DEFAULT_MAX_CONNECTIONS, "timeout": DEFAULT_POOL_TIMEOUT_S, **options},
            )
            client = Redis.from_pool(pool)
        else:
            client = _sentinel_client(target, options)
        socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            # run() allows a blocked call its wait plus the socket timeout; keeping each wait
            # below the socket timeout notices a dead server within twice that timeout.
            self.max_block_s = max(0.05, float(socket_timeout) * 0.8)
        self.call_memory_ms = call_memory_ms(
            socket_timeout, client.connection_pool.connection_kwargs.get("socket_connect_timeout"),
            getattr(client.connection_pool, "timeout", None),
        )
        return client

    async def _check_server(self, client: Redis) -> None:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(
                f"cannot reach Redis at {self.target.safe_url} ({exc}); is redis-server running? "
                "start it or fix broker_url"
            ) from exc
        await self._check_eviction_policy(client)
        await self._load_on_server(client)

    async def _load_on_server(self, client: Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for script in self.scripts.values():
            pipe.script_load(script.source)
        await pipe.execute()

    async def skew_clock(self, ms: int) -> None:
        """Make the scripts of this connection read the server's clock ``ms`` later (cumulative).

        For tests (``Transport.skew_clock``): the scripts are built again with the skew in
        ``includes/clock.lua``, so the calls of production (skew 0) carry no cost for it.
        """
        self.clock_skew_ms += ms
        self.scripts = load_scripts(self.clock_skew_ms)
        if self._client is not None:
            await self._load_on_server(self._client)

    async def _check_eviction_policy(self, client: Redis) -> None:
        try:
            answer = await client.config_get("maxmemory-policy")
        except ResponseError as exc:  # CONFIG renamed or not permitted, as on managed services
            logger.info("cannot read maxmemory-policy from Redis at %s (%s); make sure it is "
                        "noeviction, or queued tasks can be evicted", self.target.safe_url, exc)
            return
        policy = as_text(answer.get("maxmemory-policy") or "")
        check_eviction_policy(policy, self.target)

    async def run(
        self, verb: str, keys: Sequence[str], args: Sequence[Any], *,
        after_blpop: Sequence[str] = (), blpop_s: float = 0.0, call_key: str | None = None,
    ) -> Any:
        """Call one script with EVALSHA, loading it again if the server forgot it.

        A ``--- @once`` script needs ``call_key`` (``QueueKeys.call(new_call_id())``, made
        once per call of the broker's method): every attempt below sends the same one, so
        an attempt after a lost reply gets the first reply instead of running again.

        The call goes straight over a pooled connection: redis-py's command layer (retry
        wrapper, response callbacks, metrics) costs about as much as the round trip
        itself on loopback, and every ``delay()`` pays it. Any connection trouble falls
        back to that layer, whose retries and back-off then apply.

        With ``after_blpop``, the script is sent in the same write behind a BLPOP on
        those keys for up to ``blpop_s``. Redis holds a blocked client's next command
        until the BLPOP returns (a token, or its timeout), then runs it at once: an idle
        worker woken by a publish gets its messages without a second round trip.
        """
        script = self.scripts[verb]
        if script.once:
            if call_key is None:
                raise ValueError(f"the {verb} script runs once per call: pass call_key")
            keys = [*keys, call_key]
            args = [*args, self.call_memory_ms]
        pool = self.client.connection_pool
        # One connection is kept out of the pool for these calls: one caller at a time
        # (a producer's delay() loop, a worker's ack) skips the pool's lock and timeout;
        # concurrent callers take pooled ones.
        connection, self._spare = self._spare, None
        if connection is None:
            try:
                connection = await pool.get_connection()  # type: ignore[no-untyped-call]
            except (RedisConnectionError, RedisTimeoutError, OSError):
                return await self._run_with_retries(script, keys, args)
        healthy = True
        # redis-py guards a send with asyncio.wait_for (a task per command) and a read with
        # a timeout of its own; one timeout around both does the same job for less.
        timeout_s, connection.socket_timeout = connection.socket_timeout, None
        try:
            async with asyncio.timeout(None if timeout_s is None else timeout_s + blpop_s):
                packed = _pack(connection, ("EVALSHA", script.sha, len(keys), *keys, *args))
                if after_blpop:
                    # Whole milliseconds, at least one: BLPOP reads a timeout of 0 as "forever".
                    blpop_ms = max(1, math.ceil(blpop_s * 1000))
                    packed = _pack(connection, ("BLPOP", *after_blpop, blpop_ms / 1000)) + packed
                await connection.send_packed_command(packed, check_health=False)
                if after_blpop:
                    await connection.read_response()  # the token or nil: the script's reply tells
                return await connection.read_response()
        except TimeoutError:
            healthy = False
            await connection.disconnect()
            return await self._run_with_retries(script, keys, args)
        except NoScriptError:
            return await self._run_with_retries(script, keys, args)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            healthy = False
            await connection.disconnect()
            return await self._run_with_retries(script, keys, args)
        except BaseException:
            healthy = False  # cancelled mid-reply: the connection's state is unknown
            await connection.disconnect()
            raise
        finally:
            connection.socket_timeout = timeout_s
            if healthy and self._spare is None and self._client is not None:
                self._spare = connection
            else:
                await pool.release(connection)

    async def _run_with_retries(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self.client
        try:
            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                # The server lost its script cache (restart, failover, SCRIPT FLUSH).
                await client.script_load(script.source)
                return await client.evalsha(script.sha, len(keys), *keys, *args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # redis-py's retries are spent: say so in celeriac's terms, and that a call the
            # server may have run before the connection dropped may have taken effect.
            raise BrokerUnavailable(
                f"Redis at {self.target.safe_url} did not answer the {script.name} call after "
                f"{RECONNECT_RETRIES} retries ({exc}); it may or may not have taken effect. Check "
                "that the server is running and reachable"
            ) from exc


def check_eviction_policy(policy: str, target: RedisTarget) -> None:
    """Refuse a policy that may evict queued tasks; warn about one that may evict results."""
    if policy in ("", "noeviction"):
        return
    if policy.startswith("volatile-"):
        logger.warning(
            "Redis at %s has maxmemory-policy %r: when memory runs out it evicts keys with a "
            "TTL, so results and revoked ids may vanish early; noeviction is safer "
            "(CONFIG SET maxmemory-policy noeviction)", target.safe_url, policy)
        return
    if target.allow_evicting_policy:
        logger.warning("Redis at %s has maxmemory-policy %r, which may evict queued tasks; "
                       "starting anyway because allow_evicting_policy=true", target.safe_url, policy)
        return
    raise ConfigurationError(
        f"Redis at {target.safe_url} has maxmemory-policy {policy!r}, which evicts any key when "
        "memory runs out: evicted keys lose queued tasks without a trace. Run "
        "`CONFIG SET maxmemory-policy noeviction` on the server (and set it in redis.conf), or "
        "add ?allow_evicting_policy=true to the URL to accept that risk"
    )


def _sentinel_client(target: RedisTarget, options: dict[str, Any]) -> Redis:
    parts = urlsplit(target.redis_url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        sentinels.append((name, int(port or 26379)))
    db = int(parts.path.strip("/") or 0)
    extra = dict(parse_qsl(parts.query))
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels, username=username or None, password=password or None, db=db, **extra, **options
    )
    client: Redis = sentinel.master_for(target.master_name)
    return client



def _pack(connection: Any, command: tuple[Any, ...]) -> bytes:
    if _hiredis_pack is not None:
        return _hiredis_pack(command)
    return b"".join(connection.pack_command(*command))


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
