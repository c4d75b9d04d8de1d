"""The SQLite statements, by name: the blocks of the ``.sql`` files in ``sql/``.

Tables and indexes are in ``sql/schema.sql``, applied whole at connect. Every other
statement is a named block (``queries.py``) of one of ``FILES``, read once at import into
``SQL``; a name is defined in one file only, so searching ``sql/`` for ``name: reserve``
finds the statement ``SQL["reserve"]`` runs.

The values below are written into the text when the files are read, never sent as
parameters: the message states because SQLite uses a partial index (schema.sql) only when
the query's WHERE names the same constant, the others because a PRAGMA or a table name
takes no parameter. Two placeholders are filled per call: ``{marks}``, the ``?`` of an
``IN (...)`` list as long as the values passed (``with_marks``), and ``{synchronous}``,
the database's setting.
"""

from __future__ import annotations

from ...stats import KEEP_MINUTES
from ..queries import MARKS, load_query_files

# celeriac_messages.state
QUEUED, RESERVED, SCHEDULED = 0, 1, 2

JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_BUSY_MS = 50  # a truncating checkpoint gives up this soon when readers are busy
OLD_DEAD_LETTERS = "celeriac_dead_letters_v1"  # one row per task id: a second dead letter replaced the first

CONSTANTS: dict[str, object] = {
    "QUEUED": QUEUED, "RESERVED": RESERVED, "SCHEDULED": SCHEDULED,
    "JOURNAL_SIZE_LIMIT": JOURNAL_SIZE_LIMIT, "BUSY_TIMEOUT_MS": BUSY_TIMEOUT_MS,
    "CHECKPOINT_BUSY_MS": CHECKPOINT_BUSY_MS, "OLD_DEAD_LETTERS": OLD_DEAD_LETTERS,
    "STATS_KEEP_MINUTES": KEEP_MINUTES,
}
PER_CALL = (MARKS, "synchronous")
FILES = ("sql/connection.sql", "sql/messages.sql", "sql/control.sql", "sql/admin.sql", "sql/results.sql",
         "sql/housekeeping.sql", "sql/upgrade.sql", "sql/stats.sql")


def load_statements() -> dict[str, str]:
    return load_query_files(__package__ or "celeriac.servers.sqlite", FILES, CONSTANTS, per_call=PER_CALL)


SQL = load_statements()
