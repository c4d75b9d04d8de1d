"""Named SQL statements kept in ``.sql`` files beside the code that runs them.

A file holds blocks, each opened by a ``-- name: <name>`` line and running to the next
one; comments before a block's first statement line stay with it (they explain it), and
``{placeholders}`` are filled from ``constants`` (state codes, table names) once, at load.
A reader finds the lease statement by searching the ``.sql`` files for ``name: reserve``.

A placeholder named in ``per_call`` is the exception: it stays in the text and is filled
on each call (``fill``), because the statement's shape changes from call to call. The
common one is ``{marks}``, the ``?, ?, ?`` of an ``IN (...)`` list as long as the values
passed (``with_marks``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import cache, lru_cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([\w-]+)\s*$", re.MULTILINE)
MARKS = "marks"  # the per-call placeholder of an IN (...) list


class _Constants(dict[str, object]):
    """The values for ``str.format_map``: a per-call placeholder is written back as it was."""

    def __init__(self, constants: dict[str, object], per_call: Collection[str]) -> None:
        super().__init__(constants)
        self.per_call = per_call

    def __missing__(self, key: str) -> str:
        if key in self.per_call:
            return "{" + key + "}"
        raise KeyError(key)


def _has_statement(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


def parse_queries(
    text: str, constants: dict[str, object] | None = None, *, per_call: Collection[str] = ()
) -> dict[str, str]:
    """The blocks of ``text`` by name; text before the first name line is ignored.

    Raises ``ValueError`` for a name defined twice, a block with no statement (nothing but
    comments), or a placeholder that is neither in ``constants`` nor in ``per_call``.
    """
    parts = _NAME.split(text)
    values = _Constants(constants or {}, per_call) if constants or per_call else None
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"SQL block {name!r} is defined twice")
        statement = body.strip()
        if values is not None:
            try:
                statement = statement.format_map(values)
            except KeyError as exc:
                raise ValueError(f"SQL block {name!r} names the placeholder {{{exc.args[0]}}}, "
                                 "which has no value") from None
            except (ValueError, IndexError) as exc:
                raise ValueError(f"SQL block {name!r} has a malformed placeholder: {exc}") from None
        if not _has_statement(statement):
            raise ValueError(f"SQL block {name!r} is empty")
        queries[name] = statement
    return queries


@cache
def _read(package: str, filename: str) -> str:
    return resources.files(package).joinpath(filename).read_text()


def load_queries(
    package: str, filename: str, constants: dict[str, object] | None = None, *, per_call: Collection[str] = ()
) -> dict[str, str]:
    """Named statements of ``filename`` inside ``package`` (e.g. ``celeriac.servers.sqlite``, ``sql/queries.sql``)."""
    return parse_queries(_read(package, filename), constants, per_call=per_call)


def load_query_files(
    package: str, filenames: Sequence[str], constants: dict[str, object] | None = None, *,
    per_call: Collection[str] = (),
) -> dict[str, str]:
    """The statements of several files in one mapping; a name is defined in one file only."""
    found: dict[str, str] = {}
    where: dict[str, str] = {}
    for filename in filenames:
        for name, statement in load_queries(package, filename, constants, per_call=per_call).items():
            if name in found:
                raise ValueError(f"SQL block {name!r} is defined in both {where[name]} and {filename}")
            found[name], where[name] = statement, filename
    return found


def fill(statement: str, **fragments: str) -> str:
    """``statement`` with each per-call ``{name}`` replaced by its SQL fragment."""
    for name, fragment in fragments.items():
        statement = statement.replace("{" + name + "}", fragment)
    return statement


@lru_cache(maxsize=256)
def with_marks(statement: str, count: int) -> str:
    """``statement`` with its ``{marks}`` (each of them) filled by ``count`` parameter marks: ``?,?,?``.

    Cached: a shape asked for again (the same queues, a full chunk of ids) is the same
    string, which sqlite3's statement cache then finds without hashing it anew.
    """
    return statement.replace("{" + MARKS + "}", ",".join("?" * count))
