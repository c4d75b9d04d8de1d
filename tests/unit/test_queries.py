"""Named SQL blocks (celeriac/servers/queries.py) and the SQLite statements shipped as such."""

from __future__ import annotations

import ast
import sqlite3
import sys
import uuid
from importlib import resources
from pathlib import Path

import pytest

from celeriac.servers.queries import fill, load_queries, load_query_files, parse_queries, with_marks
from celeriac.servers.sqlite import database, statements

SQLITE_PACKAGE = Path(statements.__file__).parent

TEXT = """-- A file's header: ignored.

-- name: first
-- Explains the first.
SELECT 1;

-- name: second-one
SELECT {STATE} FROM t WHERE id IN ({marks});
"""


def test_blocks_by_name_with_their_comments() -> None:
    queries = parse_queries(TEXT)
    assert list(queries) == ["first", "second-one"]
    assert queries["first"] == "-- Explains the first.\nSELECT 1;"
    assert queries["second-one"] == "SELECT {STATE} FROM t WHERE id IN ({marks});"  # no constants: as written


def test_text_without_a_name_line_has_no_blocks() -> None:
    assert parse_queries("-- only a header\nSELECT 1;\n") == {}


def test_a_name_defined_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'a' is defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


@pytest.mark.parametrize("body", ["", "\n\n", "-- only a comment\n", "  -- indented comment\n\n"])
def test_a_block_without_a_statement_is_refused(body: str) -> None:
    with pytest.raises(ValueError, match="'empty' is empty"):
        parse_queries(f"-- name: ok\nSELECT 1;\n-- name: empty\n{body}-- name: after\nSELECT 2;\n")


def test_constants_are_written_in_and_per_call_placeholders_are_left() -> None:
    queries = parse_queries(TEXT, {"STATE": 2}, per_call=("marks",))
    assert queries["second-one"] == "SELECT 2 FROM t WHERE id IN ({marks});"
    assert with_marks(queries["second-one"], 3) == "SELECT 2 FROM t WHERE id IN (?,?,?);"


def test_a_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'second-one' names the placeholder \{marks\}"):
        parse_queries(TEXT, {"STATE": 2})
    with pytest.raises(ValueError, match=r"'second-one' names the placeholder \{STATE\}"):
        parse_queries(TEXT, per_call=("marks",))
    with pytest.raises(ValueError, match="'x' has a malformed placeholder"):
        parse_queries("-- name: x\nSELECT {};\n", {"STATE": 2})


def test_fill_and_with_marks_fill_every_occurrence() -> None:
    statement = "SELECT a FROM t WHERE a IN ({marks}) UNION SELECT a FROM u WHERE a IN ({marks})"
    assert with_marks(statement, 2) == "SELECT a FROM t WHERE a IN (?,?) UNION SELECT a FROM u WHERE a IN (?,?)"
    assert fill("PRAGMA synchronous={synchronous}", synchronous="FULL") == "PRAGMA synchronous=FULL"


def test_files_of_a_package_share_one_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = f"queries_test_{uuid.uuid4().hex}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "a.sql").write_text("-- name: one\nSELECT {N};\n")
    (tmp_path / package / "b.sql").write_text("-- name: two\nSELECT 2;\n")
    (tmp_path / package / "c.sql").write_text("-- name: one\nSELECT 3;\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert load_queries(package, "a.sql", {"N": 1}) == {"one": "SELECT 1;"}
        assert load_query_files(package, ["a.sql", "b.sql"], {"N": 1}) == {"one": "SELECT 1;", "two": "SELECT 2;"}
        with pytest.raises(ValueError, match=r"'one' is defined in both a\.sql and c\.sql"):
            load_query_files(package, ["a.sql", "b.sql", "c.sql"], {"N": 1})
    finally:
        sys.modules.pop(package, None)


# --- the SQLite statements ----------------------------------------------------------


def test_every_shipped_sql_file_is_loaded() -> None:
    shipped = {f"sql/{p.name}" for p in (SQLITE_PACKAGE / "sql").glob("*.sql")} - {"sql/schema.sql"}
    assert shipped == set(statements.FILES)
    for filename in statements.FILES:  # each parses alone too, every placeholder with its value
        assert load_queries("celeriac.servers.sqlite", filename, statements.CONSTANTS, per_call=statements.PER_CALL)


def _names_used() -> set[str]:
    """The names the SQLite code looks up: SQL["..."], and the names listed in database.py's tables."""
    used = set(database._EXPIRING)
    used |= {add_column for _, _, add_column in database._LATER_COLUMNS}
    for path in SQLITE_PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "SQL"
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
                used.add(node.slice.value)
    return used


def test_every_name_the_sqlite_code_uses_exists_and_every_block_is_used() -> None:
    used = _names_used()
    assert used - set(statements.SQL) == set()
    assert set(statements.SQL) - used == set()


def test_every_statement_compiles_against_the_schema() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(resources.files("celeriac.servers.sqlite").joinpath("sql/schema.sql").read_text())
    upgrade = load_queries("celeriac.servers.sqlite", "sql/upgrade.sql", statements.CONSTANTS,
                           per_call=statements.PER_CALL)
    for name, statement in statements.SQL.items():
        if name in upgrade and name != "table-columns":
            continue  # made for an earlier build's tables: tests/brokers/test_sqlite.py runs them on one
        sql = fill(with_marks(statement, 2), synchronous="NORMAL")
        assert "{" not in sql, name
        marks = sum(line.count("?") for line in sql.splitlines() if not line.lstrip().startswith("--"))
        try:
            conn.execute(f"EXPLAIN {sql}", [None] * marks)
        except sqlite3.Error as exc:
            pytest.fail(f"SQL block {name!r} does not compile: {exc}")
    conn.close()
