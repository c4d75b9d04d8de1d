"""``Request.of``: the worker's way to make a request, equal to the dataclass's own."""

from __future__ import annotations

import copy
import dataclasses
import pickle

from celeriac.context import Request


def test_of_makes_what_the_constructor_makes() -> None:
    values = {"id": "t1", "task": "app.add", "args": [1, 2], "kwargs": {"x": 3}, "retries": 2,
              "delivery_info": {"queue": "q"}, "headers": {"h": 1}, "timelimit": (5.0, None)}
    made = Request.of(dict(values))
    assert made == Request(**values)
    assert repr(made) == repr(Request(**values))
    assert dataclasses.asdict(made) == dataclasses.asdict(Request(**values))
    assert made.is_eager is False and made.utc is True and made.origin is None  # plain defaults


def test_fields_left_out_get_defaults_of_their_own() -> None:
    first, second = Request.of({"id": "a"}), Request.of({"id": "b"})
    first.callbacks.append({"task": "x"})
    first.properties["k"] = "v"
    assert second.callbacks == [] and second.properties == {}
    assert first.chain == [] and first.replaces == []


def test_a_request_made_so_copies_and_pickles_whole() -> None:
    made = Request.of({"id": "t1", "args": [1]})
    assert copy.copy(made) == made
    assert pickle.loads(pickle.dumps(made)) == made
    assert dataclasses.replace(made, retries=3).retries == 3
