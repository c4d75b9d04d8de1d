"""How canvases are built and frozen, as Celery builds them: no broker involved."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from celeriac import Celery, GroupResult, Signature, chain, chord, group
from celeriac.canvas import Plan
from celeriac.message import decode_envelope
from celeriac.result import AsyncResult, ResultSet, result_from_tuple


@pytest.fixture
def app() -> Celery:
    return Celery("shapes", broker=f"memory://{uuid.uuid4().hex}")


@pytest.fixture
def add(app: Celery) -> Any:
    @app.task(name="shapes.add")
    def add(x: Any, y: Any = 0) -> Any:
        return x + y

    return add


def messages_of(sig: Signature, *args: Any) -> list[Any]:
    plan = Plan()
    sig._for_sending({}).prepare(plan, args, {}, {})
    return [decode_envelope(m.body, frozenset({"json"})) for m in plan.messages]


def test_signature_fields_are_assignable(add: Any) -> None:
    s = add.s(1)
    s.args = (5, 6)
    s.kwargs = {"y": 2}
    s.options = {"queue": "q"}
    s.id = "fixed"
    s.parent_id, s.root_id = "p", "r"
    s.immutable = True
    assert s.args == (5, 6) and s.kwargs == {"y": 2} and s.options["queue"] == "q"
    assert s.id == "fixed" and s.parent_id == "p" and s.root_id == "r" and s.immutable
    s.kwargs["y"] = 3  # the dict itself, as in Celery
    assert s["kwargs"] == {"y": 3}


def test_link_appends_once_and_on_error_chains(add: Any) -> None:
    s = add.s(1)
    cb = add.s(2)
    s.link(cb)
    s.link(add.s(2))  # equal: not added twice (Celery's append_to_list_option)
    assert s.options["link"] == [cb]
    assert s.on_error(add.si(0)) is s and s.options["link_error"] == [add.si(0)]


def test_a_repeated_signature_object_gets_an_id_per_place(add: Any) -> None:
    inc = add.s(1)
    c = chain(add.s(0, 0), inc, inc, inc, inc, inc)
    res = c.freeze()
    ids = []
    node: Any = res
    while node is not None:
        ids.append(node.id)
        node = node.parent
    assert len(ids) == 6 and len(set(ids)) == 6
    same = add.si(1, 1)
    g = group(same for _ in range(4))
    assert len({r.id for r in g.freeze().results}) == 4
    unfrozen = add.si(2, 2)
    assert len({m.id for m in messages_of(group([unfrozen] * 3))}) == 3


def test_sending_twice_sends_new_ids_unless_frozen(add: Any) -> None:
    c = chain(add.s(1, 1), add.s(2))
    first = {m.id for m in messages_of(c)}
    second = {m.id for m in messages_of(c)}
    assert first.isdisjoint(second)  # the canvas itself was not changed by sending
    last = c.freeze()
    assert messages_of(c)[0].chain[0]["options"]["task_id"] == last.id


def test_a_group_of_plain_calls_is_sent_as_read_and_its_result_names_its_messages(add: Any) -> None:
    # The large-group path shares the caller's signatures instead of copying them: it must
    # leave them as they were, honour ids fixed by freeze(), and return the ids it sent.
    g = group(add.s(i) for i in range(5))
    before = [dict(m, options=dict(m["options"])) for m in g.tasks]
    plan = Plan()
    result = g._for_sending({}).prepare(plan, (7,), {}, {"queue": "q"})
    sent = [decode_envelope(m.body, frozenset({"json"})) for m in plan.messages]
    assert [m.id for m in sent] == [r.id for r in result.results]
    assert [m.args for m in sent] == [[7, i] for i in range(5)]
    assert {m.group_id for m in sent} == {result.id} and [m.group_index for m in sent] == list(range(5))
    assert {m.queue for m in sent} == {"q"}
    assert [dict(m, options=dict(m["options"])) for m in g.tasks] == before
    assert {m.id for m in messages_of(g)}.isdisjoint(m.id for m in sent)
    frozen = g.freeze()
    assert [m.id for m in messages_of(g)] == [r.id for r in frozen.results]
    assert {m.group_id for m in messages_of(g)} == {frozen.id}


def test_nested_groups_flatten(add: Any) -> None:
    g = group(add.si(1, 10), group(add.si(1, 100), group(add.si(1, 1000), add.si(1, 2000))))
    res = g.freeze()
    assert len(res.results) == 4
    assert [m.group_index for m in messages_of(g)] == [0, 1, 2, 3]


def test_chain_freeze_sets_the_chain_id(add: Any) -> None:
    last = add.s(2).set(task_id="42")
    c = add.s(4) | last
    assert c.id is None
    c.freeze(last.id)
    assert c.id == "42"
    other = chain(add.s(1), add.s(2))
    res = other.freeze("mine")
    assert other.id == res.id == "mine"


def test_result_parent_through_a_chord_in_a_chain_is_the_header(add: Any) -> None:
    c = chain(add.si(1, 0), add.si(2, 0), chord([add.si(i, 0) for i in range(3)], chain(add.s(50), add.s(1))))
    res = c.freeze()
    assert isinstance(res, AsyncResult) and isinstance(res.parent, AsyncResult)
    assert isinstance(res.parent.parent, GroupResult) and len(res.parent.parent.results) == 3
    assert isinstance(res.parent.parent.parent, AsyncResult)
    assert res.parent.parent.parent.parent is not None and res.parent.parent.parent.parent.parent is None
    piped = (add.si(1, 0) | add.si(2, 0) | group(add.si(i, 0) for i in range(3)) | add.s(50) | add.s(1))
    r = piped.freeze()
    assert isinstance(r.parent.parent, GroupResult)


def test_nested_chain_flattens_keeping_its_links(add: Any) -> None:
    inner = chain(add.s("a"), add.s("b"))
    inner.link(add.si("linked"))
    inner.link_error(add.si("failed"))
    flat = chain(inner, add.s("c"))
    steps = flat.steps()
    assert [s.task for s in steps] == ["shapes.add"] * 3
    assert steps[1].options["link"] == [add.si("linked")] and "link" not in steps[2].options
    assert all(add.si("failed") in s.options["link_error"] for s in steps[:2])
    assert "link_error" not in steps[2].options


def test_a_group_of_one_in_a_chain_is_that_task(add: Any) -> None:
    steps = chain(add.s(2, 2), group(add.s(1)), add.s(1)).steps()
    assert [type(s).__name__ for s in steps] == ["Signature"] * 3
    upgraded = chain(add.s(2, 2), group(add.s(1), add.s(2)), add.s(1)).steps()
    assert [type(s).__name__ for s in upgraded] == ["Signature", "chord"]


def test_generator_chord_header_is_not_read_when_built(add: Any) -> None:
    read: list[int] = []

    def header() -> Any:
        for i in range(3):
            read.append(i)
            yield add.si(i, 0)

    c = chord(header(), add.s())
    g = group(header())
    assert read == []
    assert len(messages_of(c)) == 3 and read == [0, 1, 2]
    assert len(g.tasks) == 3


def test_chord_header_may_hold_groups_and_chords(add: Any) -> None:
    c = chord([add.si(1, 0), group(add.si(2, 0), add.si(3, 0)), chord([add.si(4, 0)], add.s())], add.s())
    members = messages_of(c)
    assert len(members) == 4
    assert {m.chord["total"] for m in members if m.chord and m.chord["group_id"] == members[0].chord["group_id"]} == {4}


def test_canvas_round_trips_as_json(add: Any) -> None:
    c = chain(add.s(1), group(add.s(1), chord([add.s(1)], add.s())), add.s(2))
    c.link(add.si("cb"))
    revived = Signature.from_dict(json.loads(json.dumps(c)))
    assert revived == c and isinstance(revived, chain)
    assert isinstance(revived.tasks[1], group) and isinstance(revived.tasks[1].tasks[1], chord)
    assert isinstance(chord([add.s()], add.s()).tasks, list)


def test_group_and_result_set_signatures(app: Celery) -> None:
    a, b = AsyncResult("a", app=app), AsyncResult("b", app=app)
    g = GroupResult("gid", [a, b])
    assert g.id == "gid" and g.results == [a, b] and g.parent is None
    rs = ResultSet([a])
    rs.add(b)
    rs.add(b)
    assert rs.results == [a, b]
    rs.discard("a")
    assert rs.results == [b]
    with pytest.raises(KeyError):
        rs.remove("zz")
    nested = GroupResult("g2", [a, GroupResult("g3", [b])], parent=AsyncResult("p", app=app))
    back = result_from_tuple(json.loads(json.dumps(nested.as_tuple())), app=app)
    assert isinstance(back, GroupResult) and back.id == "g2" and back.parent.id == "p"
    assert isinstance(back.results[1], GroupResult) and back.results[1].results[0].id == "b"
    chained = AsyncResult("c", app=app, parent=AsyncResult("d", app=app))
    assert result_from_tuple(chained.as_tuple(), app=app).parent.id == "d"
