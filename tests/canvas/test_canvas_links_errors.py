"""Callbacks, errbacks and failures through chains, groups and chords, run by a worker on
every store, with Celery's semantics (its canvas guide and integration tests)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from celeriac import Celery, GroupResult, chain, chord, group
from celeriac.exceptions import ChordError

from ..unit.helpers import drain


class Boom(Exception):
    pass


@pytest.fixture
def app(backend_url: str) -> Celery:
    return Celery("links", broker=backend_url)


@pytest.fixture
def t(app: Celery) -> Any:
    calls: list[tuple[str, Any]] = []

    class T:
        seen = calls

        @staticmethod
        @app.task(name="links.identity")
        def identity(x: Any) -> Any:
            return x

        @staticmethod
        @app.task(name="links.add")
        def add(x: Any, y: Any) -> Any:
            return x + y

        @staticmethod
        @app.task(name="links.tsum")
        def tsum(values: list[int]) -> int:
            return sum(values)

        @staticmethod
        @app.task(name="links.fail")
        def fail(*args: Any) -> None:
            raise Boom("deliberate")

        @staticmethod
        @app.task(name="links.record")
        def record(*args: Any, key: str = "record") -> None:
            calls.append((key, args))

        @staticmethod
        @app.task(name="links.old_style")
        def old_style(task_id: str, key: str = "old") -> str:  # errback sent as a task: the failed id
            calls.append((key, task_id))
            return task_id

        @staticmethod
        @app.task(name="links.new_style")
        def new_style(request: Any, exc: BaseException, traceback: Any) -> None:  # called in the worker
            calls.append(("new", (request.id, type(exc).__name__)))

    return T


async def settle(app: Celery, rounds: int = 8) -> None:
    for _ in range(rounds):
        await drain(app)


def keys(t: Any) -> Counter[str]:
    return Counter(key for key, _ in t.seen)


async def test_group_link_and_link_error(app: Celery, t: Any) -> None:
    g = group(t.identity.si(42), t.identity.si(1337))
    g.link(t.record.si(key="group-done"))
    res = g.delay()
    failing = group(t.fail.s(), t.identity.si(1), t.fail.s())
    failing.link_error(t.record.si(key="group-error"))
    failing.link_error(t.old_style.s())
    bad = failing.delay()
    await settle(app)
    assert res.get(timeout=5) == [42, 1337]
    with pytest.raises(Boom):
        bad.get(timeout=5)
    counts = keys(t)
    assert counts["group-done"] == 1  # Celery: linked to the first member, made immutable
    assert counts["group-error"] == 2 and counts["old"] == 2  # once per failed member
    failed_ids = {r.id for r in bad.results if r.failed()}
    assert {v for k, v in t.seen if k == "old"} == failed_ids


async def test_chord_link_and_link_error(app: Celery, t: Any) -> None:
    ok = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s())
    ok.link(t.record.s(key="chord-done"))
    res = ok.delay()
    bad = chord([t.add.s(1, 1), t.fail.s()], t.tsum.s())
    bad.link_error(t.old_style.s())
    bad.link_error(t.new_style.s())
    bad.link_error(t.record.si(key="immutable"))
    body_id = bad.body.freeze().id
    failed = bad.delay()
    await settle(app)
    assert res.get(timeout=5) == 6
    assert ("chord-done", (6,)) in t.seen
    with pytest.raises(Boom, match="deliberate"):  # the original error, through the parents
        failed.get(timeout=5)
    with pytest.raises(ChordError):
        app.AsyncResult(body_id).get(timeout=5)
    counts = keys(t)
    assert counts["old"] == counts["new"] == counts["immutable"] == 1  # once: on the body
    assert ("old", body_id) in t.seen and ("new", (body_id, "ChordError")) in t.seen


async def test_chain_links_and_a_nested_chain_keeps_its_links(app: Celery, t: Any) -> None:
    c = chain(t.add.s(1, 1), t.add.s(1))
    c.link(t.record.s(key="chain-done"))
    res = c.delay()
    inner = chain(t.identity.s("a"), t.add.s("b"))
    inner.link(t.record.si(key="inner-done"))
    flat = chain(inner, t.add.s("c"))
    flat_res = flat.delay()
    bad = chain(t.add.s(1, 1), t.fail.s(), t.add.s(1))
    bad.link_error(t.old_style.s())
    bad_res = bad.delay()
    await settle(app)
    assert res.get(timeout=5) == 3 and flat_res.get(timeout=5) == "abc"
    assert ("chain-done", (3,)) in t.seen and keys(t)["chain-done"] == 1
    assert keys(t)["inner-done"] == 1
    with pytest.raises(Boom):
        bad_res.get(timeout=5)
    with pytest.raises(Boom):
        bad_res.parent.get(timeout=5)
    assert [v for k, v in t.seen if k == "old"] == [bad_res.parent.id]  # the failed step, once


async def test_repeated_signature_runs_once_per_place(app: Celery, t: Any) -> None:
    inc = t.add.s(1)
    five = chain(t.add.s(0, 0), inc, inc, inc, inc, inc).delay()
    same = t.identity.si(7)
    same.link(t.record.si(key="each"))
    many = group(same for _ in range(4)).delay()
    in_chain = chain(same for _ in range(3)).delay()
    await settle(app)
    assert five.get(timeout=5) == 5
    assert many.get(timeout=5) == [7, 7, 7, 7]
    assert in_chain.get(timeout=5) == 7
    assert keys(t)["each"] == 4 + 3


async def test_chord_header_chain_failing_early_fails_the_chord(app: Celery, t: Any) -> None:
    header = chain(t.identity.si(42), t.fail.s(), t.identity.si(42))
    c = chord((header,), t.identity.s())
    c.link_error(t.old_style.s())
    body_id = c.body.freeze().id
    res = c.delay()
    nested = chain(group(t.identity.si(1), chain(t.fail.si(), group(t.identity.si(2), t.identity.si(3)),
                                                 t.identity.si(4))), t.identity.s())
    nested_res = nested.delay()
    await settle(app)
    with pytest.raises(Boom):
        res.get(timeout=5)
    assert [v for k, v in t.seen if k == "old"] == [body_id]
    with pytest.raises((Boom, ChordError)):
        nested_res.get(timeout=5)


async def test_group_followed_by_group(app: Celery, t: Any) -> None:
    two = chain(group(t.identity.si(1), t.identity.si(2)), group(t.tsum.s(), t.tsum.s())).delay()
    three = (t.add.si(1, 0) | group(t.add.s(1), t.add.s(1)) | group(t.tsum.s(), t.tsum.s()) | t.tsum.s()).delay()
    echo = [t.record.si(str(i), key="echo") for i in range(1, 10)]
    many = chain(group(*echo[0:3]), group(*echo[3:6]), group(echo[6]), group(echo[7]), echo[8],
                 t.identity.si("done")).delay()
    await settle(app, 12)
    assert two.get(timeout=5) == [3, 3]
    assert three.get(timeout=5) == 8
    assert many.get(timeout=5) == "done"
    assert sorted(args[0] for key, args in t.seen if key == "echo") == [str(i) for i in range(1, 10)]


async def test_chord_headers_of_groups_chords_and_chains(app: Celery, t: Any) -> None:
    mixed = chord((t.identity.si(42), chain((t.identity.si(42),) * 3), group((t.identity.si(42),) * 3),
                   chord((t.identity.si(42),) * 3, t.identity.si(1337))), t.identity.s())
    res = group(mixed).delay()
    tail = chord(group(chain(t.identity.s(42), group(t.identity.s(), t.identity.s()))), t.identity.s()).delay()
    nested = chord([chord([t.add.s(1, 2), t.add.s(3, 4)], t.add.s([5])),
                    chord([t.add.s(6, 7)], t.add.s([10]))], t.add.s(["A"])).delay()
    deep = (group([group([group([group([t.add.s(1, 2)]) | t.add.s([3])]) | t.add.s([4])]) | t.add.s([5])])
            | t.add.s([6])).delay()
    await settle(app, 12)
    assert res.get(timeout=5) == [[42, 42, 42, 42, 42, 1337]]
    assert tail.get(timeout=5) == [[42, 42]]
    assert nested.get(timeout=5) == [[3, 7, 5], [13, 10], "A"]
    assert deep.get(timeout=5) == [[[[3, 3], 4], 5], 6]


async def test_nested_groups_flatten_and_args_reach_members(app: Celery, t: Any) -> None:
    res = group(t.add.si(1, 10), group(t.add.si(1, 100), group(t.add.si(1, 1000), t.add.si(1, 2000)))).delay()
    inside = (t.add.s(5, 6) | group((t.add.s(1) | t.add.s(2), t.add.s(3)))).delay()
    not_cached = group(t.identity.si(1), t.identity.si(2),
                       chain(t.identity.si(5), group(t.identity.si(3), t.identity.si(4)))).delay()
    await settle(app)
    assert res.get(timeout=5) == [11, 101, 1001, 2001]
    assert inside.get(timeout=5) == [14, 14]
    assert not_cached.get(timeout=5) == [1, 2, [3, 4]]


async def test_errbacks_from_header_body_and_chain_steps(app: Celery, t: Any) -> None:
    fail_sig = t.fail.s()
    fail_id = fail_sig.freeze().id
    body_fails = chord((t.identity.si(42),), chain(t.identity.si(1), fail_sig, t.identity.si(2)))
    body_fails.link_error(t.old_style.s(key="body-chain"))
    res = body_fails.delay()
    group_body = chord((t.identity.si(42),), group(t.identity.si(1), t.fail.s(), t.fail.s()))
    group_body.link_error(t.record.si(key="body-group"))
    group_res = group_body.delay()
    header_fails = chain(group(t.add.si(15, 7), t.fail.si()), group(t.add.si(9, 7), t.add.si(5, 7))).delay()
    await settle(app, 10)
    with pytest.raises(Boom):
        res.get(timeout=5)
    assert [v for k, v in t.seen if k == "body-chain"] == [fail_id]
    with pytest.raises(Boom):
        group_res.get(timeout=5)
    assert keys(t)["body-group"] == 2
    with pytest.raises(Boom):  # a group body's members fail with the member's own error
        header_fails.get(timeout=5)


async def test_header_errbacks_with_the_flag(app: Celery, t: Any) -> None:
    app.conf.task_allow_error_cb_on_chord_header = True
    c = chain(group(t.fail.si(), t.identity.si(42), t.fail.si()), t.record.si(key="body"))
    c.link_error(t.record.si(key="errback"))
    res = c.delay()
    await settle(app)
    with pytest.raises(Boom):
        res.get(timeout=5)
    assert keys(t)["errback"] == 2 + 1 and keys(t)["body"] == 0  # each failed member, and the body


async def test_parent_and_root_ids(app: Celery, t: Any) -> None:
    @app.task(name="links.ids", bind=True)
    def ids(self: Any, i: int) -> tuple[Any, Any, int]:
        return self.request.root_id, self.request.parent_id, i

    @app.task(name="links.collect_ids", bind=True)
    def collect_ids(self: Any, res: Any, i: int) -> Any:
        return res, (self.request.root_id, self.request.parent_id, i)

    root = ids.si(i=1)
    root_id = root.freeze().id
    res = chain(root, ids.si(i=2), chord(group(ids.si(i=i) for i in range(3, 6)),
                                         chain(collect_ids.s(i=50) | ids.si(i=51)))).delay()
    grouped = (ids.si(i=1) | ids.si(i=2) | group(ids.si(i=i) for i in range(2, 5))).delay()
    await settle(app)
    assert res.get(timeout=5) == [root_id, res.parent.id, 51]
    (prev, (body_root, body_parent, value)) = res.parent.get(timeout=5)
    header = res.parent.parent
    assert value == 50 and body_root == root_id and body_parent in header.results
    assert all(r[0] == root_id and r[1] == header.parent.id for r in prev)
    assert header.parent.get(timeout=5) == [root_id, root_id, 2]
    assert header.parent.parent.get(timeout=5) == [root_id, None, 1]
    expected_root, expected_parent = grouped.parent.parent.id, grouped.parent.id
    assert all(r[:2] == [expected_root, expected_parent] for r in grouped.get(timeout=5))


async def test_result_set_and_join(app: Celery, t: Any) -> None:
    from celeriac.result import GroupResult, ResultSet

    rs = ResultSet([t.add.delay(1, 1), t.add.delay(2, 2)])
    with_error = ResultSet([t.fail.delay(), t.add.delay(1, 1)])
    built = ResultSet([])
    built.add(t.add.delay(3, 3))
    g = GroupResult("my-group", [t.add.delay(4, 4)])
    await settle(app, 1)
    assert rs.get(timeout=5) == [2, 4] and rs.join(timeout=5) == [2, 4] and rs.join_native(timeout=5) == [2, 4]
    outcome = with_error.get(timeout=5, propagate=False)
    assert isinstance(outcome[0], Boom) and with_error.results[0].failed() and with_error.results[1].successful()
    assert built.get(timeout=5) == [6] and g.join(timeout=5) == [8] and g.completed_count() == 1
    seen: list[tuple[str, Any]] = []
    assert rs.join(timeout=5, callback=lambda tid, value: seen.append((tid, value))) is None
    assert [v for _, v in seen] == [2, 4]


async def test_a_revoked_member_or_step_fails_what_waits_for_it(app: Celery, t: Any) -> None:
    from celeriac.exceptions import TaskRevokedError

    c = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s())
    member_id = c.freeze().parent.results[1].id
    steps = chain(t.add.s(1, 1), t.add.s(1), t.add.s(1))
    middle_id = steps.freeze().parent.id
    app.control.revoke([member_id, middle_id])
    chord_res, chain_res = c.delay(), steps.delay()
    await settle(app)
    with pytest.raises(TaskRevokedError):
        chord_res.get(timeout=5)
    with pytest.raises(ChordError):
        app.AsyncResult(chord_res.id).get(timeout=5)
    with pytest.raises(TaskRevokedError):
        chain_res.get(timeout=5)
    assert app.AsyncResult(chain_res.id).state == "FAILURE"


async def test_a_generator_header_is_sent_as_it_is_read(app: Celery, t: Any) -> None:
    from celeriac._bridge import run_sync

    async def depth() -> int:
        return sum((await (await app.clients()).admin.queue_depths()).values())

    seen_depths: list[int] = []

    def header(n: int, fail_at: int | None = None) -> Any:
        for i in range(n):
            seen_depths.append(run_sync(depth()))  # what was already sent when this one is read
            yield t.fail.si() if i == fail_at else t.add.si(i, i)

    ok = chord(header(4), t.tsum.s())
    ok.link(t.record.s(key="done"))
    res = ok()
    assert seen_depths == [0, 1, 2, 3]
    bad = chord(header(3, fail_at=1), t.tsum.s()).delay()
    empty = chord((s for s in []), t.tsum.s())()
    await settle(app)
    assert res.get(timeout=5) == 12 and ("done", (12,)) in t.seen
    assert isinstance(res.parent, GroupResult) and len(res.parent.results) == 4
    with pytest.raises(Boom):
        bad.get(timeout=5)
    assert empty.get(timeout=5) == 0


async def test_members_of_a_generator_header_that_finish_before_it_is_saved(app: Celery, t: Any) -> None:
    from celeriac.canvas import _finish_sent_header
    from celeriac.message import SUCCESS, Envelope, ResultRecord
    from celeriac.worker.followups import FollowUps

    clients = await app.clients()
    followups = FollowUps(app, clients.store)
    body = t.tsum.s()
    body.freeze()
    info = {"group_id": "g", "total": None, "body": dict(body)}
    for index in range(2):  # both finish while the header is still being read: nothing yet
        member = Envelope(id=f"m{index}", task=t.add.name, group_id="g", group_index=index, chord=info)
        done = ResultRecord(task_id=member.id, state=SUCCESS, result=index + 1, fencing_token=1)
        await followups.chord_member_done(member, done)
    assert sum((await clients.admin.queue_depths()).values()) == 0
    for _ in range(2):  # the sender saves the list, sees them done and sends the body, once
        await _finish_sent_header(app, "g", ["m0", "m1"], body, {})
    assert sum((await clients.admin.queue_depths()).values()) == 1
    await settle(app, 1)
    assert app.AsyncResult(body.id).get(timeout=5) == 3
