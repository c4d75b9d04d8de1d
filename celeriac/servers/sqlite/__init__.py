"""``sqlite:///path.db``: broker and result store in one SQLite file, for one host."""

from __future__ import annotations

import os

from ..contracts import BrokerOptions
from .database import SQLiteDatabase, path_from_url
from .results import SQLiteResultStore
from .transport import SQLiteBroker


class SQLiteServer:
    # The broker and the store share one connection, so an ack and its results commit
    # in one transaction.
    acks_carry_results = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = SQLiteDatabase(path_from_url(url))

    def holds(self, url: str) -> bool:
        if not url.startswith("sqlite:"):
            return False
        return os.path.abspath(path_from_url(url)) == os.path.abspath(self.db.path)

    def transport(self, options: BrokerOptions) -> SQLiteBroker:
        return SQLiteBroker(self.url, options, self.db)

    def results(self, expires_s: float | None) -> SQLiteResultStore:
        return SQLiteResultStore(self.url, expires_s, self.db)
