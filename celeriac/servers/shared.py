"""``connect()``/``close()`` for a client over a connection its server's roles share.

A server's broker and result store may hold one connection between them (``Server``,
``open_clients``); the connection counts its holders and closes with the last. Each
client takes one hold however often ``connect()`` is called and gives it back once.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar


class Shareable(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...


C = TypeVar("C", bound=Shareable)


class OnSharedConnection(Generic[C]):
    connection: C
    _is_open: bool = False

    async def connect(self) -> None:
        if not self._is_open:
            await self.connection.open()
            self._is_open = True

    async def close(self) -> None:
        if self._is_open:
            self._is_open = False
            await self.connection.close()
