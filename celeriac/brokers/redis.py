"""``redis://``, ``rediss://`` and ``redis+sentinel://``: the distributed default broker.

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

How it works: every operation is one Lua script (``redis_scripts/verb-N.lua``; N is the
number of KEYS per queue, per record, or in all), loaded once per connection and called
with EVALSHA, so reserving, acking and renewing a whole batch are one round trip each and
atomic. Key names live in ``redis_keys.py``. Deadlines use the server's clock. An idle
``reserve`` blocks in BLPOP on per-queue wake lists (publish, release and retry push a
token) for at most the caller's timeout and the time to the next due eta or lease
deadline, so it sends no commands while it waits. A dropped connection is retried by
redis-py with exponential back-off, logged once per outage.

A task id is unique within its queue: publishing an id still pending in the same queue
is refused, but the same id pending in another queue is not seen (a cross-queue index
would put every queue in one cluster slot). Keys of one queue share a hash tag, but
scripts spanning several queues, or a queue and results, need a single server (standalone
or Sentinel); Redis Cluster is not supported yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..exceptions import BrokerUnavailable, ConfigurationError, DuplicateTaskError
from ..message import READY_STATES, DeadLetter, Delivery, ResultRecord, encode_record
from .base import BrokerOptions, OutgoingMessage, lost_record, max_deliveries_reason
from .redis_keys import Keys, QueueKeys

logger = logging.getLogger("celeriac.redis")

DEFAULT_KEY_PREFIX = "celeriac"
CELERIAC_OPTIONS = ("key_prefix", "allow_evicting_policy", "master_name")
RECONNECT_RETRIES = 4  # with back-off from 0.1 s up to 2 s: ~1.5 s before giving up
RECONNECT_LOG_EVERY_S = 60.0
DEFAULT_MAX_CONNECTIONS = 100  # per client; ?max_connections= in the URL overrides it
DEFAULT_SOCKET_TIMEOUT_S = 5.0  # redis-py's own default, made explicit: BLPOP must stay below it


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


def hide_password(url: str) -> str:
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


# --- the scripts --------------------------------------------------------------------

_INCLUDE = re.compile(r'^--- @include "([\w-]+)"[ \t]*$', re.MULTILINE)


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str  # the file's stem, e.g. "reserve-10"
    source: str
    sha: str


@cache
def load_scripts() -> dict[str, LuaScript]:
    """Every script by verb ("reserve"), its ``--- @include`` lines replaced by the include."""
    root = resources.files("celeriac.brokers").joinpath("redis_scripts")
    scripts = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".lua"):
            continue
        stem = entry.name[: -len(".lua")]
        source = _INCLUDE.sub(
            lambda m: root.joinpath("includes", f"{m.group(1)}.lua").read_text(), entry.read_text()
        )
        verb = stem.rsplit("-", 1)[0]
        scripts[verb] = LuaScript(stem, source, hashlib.sha1(source.encode()).hexdigest())
    return scripts


# --- the connection -----------------------------------------------------------------

_last_reconnect_log: dict[str, float] = {}


class _ReconnectBackoff(ExponentialWithJitterBackoff):
    """redis-py's exponential back-off that logs the first retry of an outage, once a minute."""

    def __init__(self, safe_url: str) -> None:
        super().__init__(cap=2.0, base=0.1)
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
        self._client: Redis | None = None
        self._users = 0
        self._spare: Any = None  # a pooled connection held for script calls (see run())
        self._lock = asyncio.Lock()
        self.max_block_s = 4.0  # longest single BLPOP; set below the socket timeout at open()

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
                target.redis_url, **{"max_connections": DEFAULT_MAX_CONNECTIONS, "timeout": 20.0, **options}
            )
            client = Redis.from_pool(pool)
        else:
            client = _sentinel_client(target, options)
        socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        if socket_timeout:
            # A BLPOP longer than the socket timeout would be cut off as a dead connection.
            self.max_block_s = max(0.05, float(socket_timeout) * 0.8)
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
        pipe = client.pipeline(transaction=False)
        for script in self.scripts.values():
            pipe.script_load(script.source)
        await pipe.execute()

    async def _check_eviction_policy(self, client: Redis) -> None:
        try:
            answer = await client.config_get("maxmemory-policy")
        except ResponseError as exc:  # CONFIG renamed or not permitted, as on managed services
            logger.info("cannot read maxmemory-policy from Redis at %s (%s); make sure it is "
                        "noeviction, or queued tasks can be evicted", self.target.safe_url, exc)
            return
        policy = _text(answer.get("maxmemory-policy") or "")
        check_eviction_policy(policy, self.target)

    async def run(self, verb: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Call one script with EVALSHA, loading it again if the server forgot it.

        The call goes straight over a pooled connection: redis-py's command layer (retry
        wrapper, response callbacks, metrics) costs about as much as the round trip
        itself on loopback, and every ``delay()`` pays it. Any connection trouble falls
        back to that layer, whose retries and back-off then apply.
        """
        script = self.scripts[verb]
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
            async with asyncio.timeout(timeout_s):
                await connection.send_packed_command(
                    connection.pack_command("EVALSHA", script.sha, len(keys), *keys, *args), check_health=False
                )
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
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            # The server lost its script cache (restart, failover, SCRIPT FLUSH).
            await client.script_load(script.source)
            return await client.evalsha(script.sha, len(keys), *keys, *args)


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
    from redis.asyncio.sentinel import Sentinel

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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def result_args(
    keys: Keys, records: Sequence[ResultRecord], skip_ids: frozenset[str] | set[str] = frozenset()
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV for the records, as result.lua's callers read them (4 ARGV per record)."""
    result_keys: list[str] = []
    args: list[Any] = []
    for record in records:
        if record.task_id in skip_ids:
            continue
        result_keys.append(keys.result(record.task_id))
        args += (record.task_id, record.fencing_token, "1" if record.state in READY_STATES else "0",
                 encode_record(record))
    return result_keys, args


def _reserve_args(keys: Keys, options: BrokerOptions) -> tuple[Any, ...]:
    """reserve-11.lua's ARGV after max_count and lease_ms: dead-lettering and its FAILURE record."""
    # Placeholders reserve-11.lua fills in; the record's JSON itself comes from message.py.
    record = lost_record("@celeriac-task-id@", "@celeriac-reason@", 2222222222)
    record.date_done_ms = 1111111111111
    record_template = encode_record(record).decode()
    n_sentinel = "918273645"
    reason_template = max_deliveries_reason(int(n_sentinel), options.max_deliveries).replace(n_sentinel, "{n}", 1)
    return (options.max_deliveries, reason_template, record_template, keys.result_prefix,
            keys.result_channel_prefix, expires_ms(options.result_expires_s), keys.revoked_prefix)


def expires_ms(expires_s: float | None) -> int:
    return max(1, int(expires_s * 1000)) if expires_s else 0


# --- the broker ---------------------------------------------------------------------


class RedisBroker:
    def __init__(self, url: str, options: BrokerOptions | None = None) -> None:
        self.url = url
        self.options = options or BrokerOptions()
        self.connection = RedisConnection(url)
        self.keys = self.connection.keys
        self._is_open = False
        self._registered_queues: set[str] = set()
        self._reserve_keys: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
        self._reserve_args = _reserve_args(self.keys, self.options)

    async def connect(self) -> None:
        if not self._is_open:
            await self.connection.open()
            self._is_open = True

    async def close(self) -> None:
        if self._is_open:
            self._is_open = False
            await self.connection.close()

    def stores_results_with_ack(self, store: object) -> bool:
        other = getattr(store, "connection", None)
        return isinstance(other, RedisConnection) and other.target.data_id == self.connection.target.data_id

    def shared_connection_for(self) -> RedisConnection:
        """The connection a result store on the same URL uses, so acks and results share a call."""
        return self.connection

    # --- publishing -------------------------------------------------------------------

    async def publish(self, messages: Sequence[OutgoingMessage], *, on_duplicate: str = "error") -> None:
        if not messages:
            return
        group_of: dict[str, int] = {}
        keys: list[str] = []
        args: list[Any] = ["1" if on_duplicate == "ignore" else "0"]
        for msg in messages:
            g = group_of.get(msg.queue)
            if g is None:
                g = group_of[msg.queue] = len(group_of) + 1
                qk = self.keys.queue(msg.queue)
                keys += (qk.ready, qk.scheduled, qk.bodies, qk.priorities, qk.seq, qk.wake, qk.unique)
            priority = 0 if msg.priority < 0 else 9 if msg.priority > 9 else msg.priority
            args += (g, msg.task_id, priority, "" if msg.eta_ms is None else int(msg.eta_ms), msg.body,
                     max(1, int(msg.unique_for_s * 1000)) if msg.unique_for_s else "")
        new_queues = group_of.keys() - self._registered_queues
        if new_queues:
            await self.connection.client.sadd(self.keys.queues, *new_queues)
            self._registered_queues |= new_queues
        reply = await self.connection.run("publish", keys, args)
        if reply[0] == -1:
            raise DuplicateTaskError(
                f"task id {_text(reply[1])!r} is already pending or running; pick a new id, or "
                "pass on_duplicate='ignore' to skip it"
            )
        if reply[0] == -2:
            raise DuplicateTaskError(
                f"task id {_text(reply[1])!r} was published with unique_for_s a short while ago and "
                "is refused until that runs out; pick a new id, or pass on_duplicate='ignore' to skip it"
            )

    # --- reserving ------------------------------------------------------------------

    def _keys_for_reserve(self, queues: tuple[str, ...]) -> tuple[list[str], list[str]]:
        found = self._reserve_keys.get(queues)
        if found is None:
            keys: list[str] = []
            for queue in queues:
                qk = self.keys.queue(queue)
                keys += (qk.ready, qk.scheduled, qk.leases, qk.bodies, qk.priorities, qk.deliveries,
                         qk.expiries, qk.seq, qk.wake, qk.dead, qk.dead_letters)
            found = self._reserve_keys[queues] = (keys, [self.keys.queue(q).wake for q in queues])
        return found

    async def reserve(
        self, queues: Sequence[str], max_count: int, *, lease_ms: int, worker_id: str, timeout_s: float
    ) -> list[Delivery]:
        if max_count <= 0 or not queues:
            return []
        queue_names = tuple(queues)
        keys, wake_keys = self._keys_for_reserve(queue_names)
        args = (max_count, lease_ms, *self._reserve_args)
        connection = self.connection
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            reply = await connection.run("reserve", keys, args)
            if len(reply) > 2:
                lease_expires_at_ms = reply[0] + lease_ms
                return [
                    Delivery(reply[i + 1].decode(), queue_names[reply[i] - 1], reply[i + 2], reply[i + 3],
                             lease_expires_at_ms, is_revoked=reply[i + 4] == 1)
                    for i in range(2, len(reply), 5)
                ]
            wait_s = min(deadline - loop.time(), connection.max_block_s)
            if wait_s <= 0:
                return []
            next_event_in_ms = reply[1]
            if next_event_in_ms >= 0:
                wait_s = min(wait_s, next_event_in_ms / 1000)
            # Whole milliseconds, at least one: BLPOP reads a timeout of 0 as "forever".
            await connection.client.blpop(wake_keys, timeout=max(1, math.ceil(wait_s * 1000)) / 1000)

    # --- finishing ------------------------------------------------------------------

    def _fenced_args(
        self, deliveries: Sequence[Delivery], key_names: tuple[str, ...]
    ) -> tuple[list[str], list[Any]]:
        """KEYS (the named keys of each queue involved) and ARGV triples (queue index, id, token)."""
        group_of: dict[str, int] = {}
        keys: list[str] = []
        args: list[Any] = []
        for d in deliveries:
            g = group_of.get(d.queue)
            if g is None:
                g = group_of[d.queue] = len(group_of) + 1
                qk = self.keys.queue(d.queue)
                keys += [getattr(qk, name) for name in key_names]
            args += (g, d.task_id, d.fencing_token)
        return keys, args

    async def renew(self, deliveries: Sequence[Delivery], lease_ms: int) -> list[str]:
        if not deliveries:
            return []
        keys, args = self._fenced_args(deliveries, ("leases", "deliveries"))
        reply = await self.connection.run("renew", keys, [lease_ms, *args])
        lost = [_text(task_id) for task_id in reply[1:]]
        lease_expires_at_ms = reply[0]
        for d in deliveries:
            d.lease_expires_at_ms = lease_expires_at_ms
        return lost

    async def ack(self, deliveries: Sequence[Delivery], results: Sequence[ResultRecord] = ()) -> list[str]:
        if not deliveries and not results:
            return []
        keys, fenced = self._fenced_args(deliveries, ("leases", "bodies", "priorities", "deliveries", "expiries"))
        result_keys, records = result_args(self.keys, results)
        args = [len(keys) // 5, len(deliveries), expires_ms(self.options.result_expires_s),
                self.keys.result_channel_prefix, *fenced, *records]
        reply = await self.connection.run("ack", keys + result_keys, args)
        return [_text(task_id) for task_id in reply]

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        if not deliveries:
            return []
        keys, args = self._fenced_args(deliveries, ("leases", "deliveries", "priorities", "ready", "seq", "wake"))
        reply = await self.connection.run("release", keys, args)
        return [_text(task_id) for task_id in reply]

    async def retry(self, delivery: Delivery, body: bytes, eta_ms: int | None) -> bool:
        qk = self.keys.queue(delivery.queue)
        keys = [qk.leases, qk.bodies, qk.priorities, qk.deliveries, qk.expiries, qk.ready, qk.scheduled, qk.seq,
                qk.wake]
        args = [delivery.task_id, delivery.fencing_token, body, "" if eta_ms is None else int(eta_ms)]
        return bool(await self.connection.run("retry", keys, args))

    async def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        qk = self.keys.queue(delivery.queue)
        keys = [qk.leases, qk.bodies, qk.priorities, qk.deliveries, qk.expiries, qk.dead, qk.dead_letters]
        return bool(await self.connection.run("dead-letter", keys, [delivery.task_id, delivery.fencing_token, reason]))

    # --- revoking and the dead-letter queue ------------------------------------------

    async def revoke(self, task_ids: Sequence[str], *, terminate: bool = False) -> None:
        if not task_ids:
            return
        ttl_ms = max(1, int(self.options.revoked_ttl_s * 1000))
        pipe = self.connection.client.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.set(self.keys.revoked(task_id), "1" if terminate else "0", px=ttl_ms)
        await pipe.execute()

    async def revoked_among(self, task_ids: Sequence[str]) -> dict[str, bool]:
        if not task_ids:
            return {}
        values = await self.connection.client.mget([self.keys.revoked(t) for t in task_ids])
        return {t: v in (b"1", "1") for t, v in zip(task_ids, values, strict=True) if v is not None}

    async def _queue_names(self) -> list[str]:
        return sorted(_text(q) for q in await self.connection.client.smembers(self.keys.queues))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        queues = await self._queue_names()
        if not queues or limit <= 0:
            return []
        keys = [k for q in queues for k in (self.keys.queue(q).dead, self.keys.queue(q).dead_letters)]
        reply = await self.connection.run("list-dead-letters", keys, [limit])
        found = [
            DeadLetter(_text(reply[i + 1]), queues[reply[i] - 1], reply[i + 4], _text(reply[i + 3]),
                       int(float(reply[i + 2])), delivery_count=int(reply[i + 5]), priority=int(reply[i + 6]))
            for i in range(0, len(reply), 7)
        ]
        found.sort(key=lambda dl: dl.failed_at_ms)
        return found[:limit]

    async def requeue_dead_letters(self, task_ids: Sequence[str] | None = None) -> int:
        queues = await self._queue_names()
        if not queues or (task_ids is not None and not task_ids):
            return 0
        keys: list[str] = []
        for queue in queues:
            qk = self.keys.queue(queue)
            keys += (qk.dead, qk.dead_letters, qk.bodies, qk.priorities, qk.deliveries, qk.ready, qk.seq, qk.wake)
        return int(await self.connection.run("requeue-dead-letters", keys, ["*"] if task_ids is None else task_ids))

    async def purge_dead_letters(self) -> int:
        queues = await self._queue_names()
        if not queues:
            return 0
        keys = [k for q in queues for k in (self.keys.queue(q).dead, self.keys.queue(q).dead_letters)]
        return int(await self.connection.run("purge-dead-letters", keys, []))

    async def purge(self, queue: str) -> int:
        qk: QueueKeys = self.keys.queue(queue)
        keys = [qk.ready, qk.scheduled, qk.bodies, qk.priorities, qk.deliveries, qk.expiries]
        return int(await self.connection.run("purge", keys, []))

    # --- rate limits and the event log ------------------------------------------------

    async def take_rate_token(self, key: str, rate_per_s: float, capacity: float) -> float:
        wait_s = await self.connection.run("take-rate-token", [self.keys.rate_bucket(key)], [rate_per_s, capacity])
        return float(wait_s)

    async def emit_events(self, events: Sequence[bytes]) -> None:
        if events:
            await self.connection.run("emit-events", [self.keys.events], [self.options.events_max, *events])

    async def read_events(self, after: str | None = None, limit: int = 1000) -> list[tuple[str, bytes]]:
        client = self.connection.client
        entries: Any  # [(id, {b"e": body})]
        if after is None:
            entries = (await client.xrevrange(self.keys.events, count=limit))[::-1]  # type: ignore[index]
        else:
            entries = await client.xrange(self.keys.events, min=f"({after}", count=limit)
        return [(entry_id.decode(), fields[b"e"]) for entry_id, fields in entries]

    async def queue_depths(self) -> dict[str, int]:
        queues = await self._queue_names()
        if not queues:
            return {}
        keys = [k for q in queues for k in (self.keys.queue(q).ready, self.keys.queue(q).scheduled)]
        counts = await self.connection.run("depths", keys, [])
        return {q: int(n) for q, n in zip(queues, counts, strict=True) if n}
