"""A TCP proxy on loopback whose connections can be frozen: a dead link that TCP knows nothing of."""

from __future__ import annotations

import asyncio


class FreezableProxy:
    """Relays to ``target``; freeze() turns its current connections into black holes, both ways."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.connections: list[dict[str, bool]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    def freeze(self) -> None:
        for connection in self.connections:
            connection["frozen"] = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        connection = {"frozen": False}
        self.connections.append(connection)
        await asyncio.gather(
            self._pump(reader, upstream_writer, connection),
            self._pump(upstream_reader, writer, connection),
            return_exceptions=True,
        )

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, bool]
    ) -> None:
        try:
            while data := await reader.read(65536):
                if not state["frozen"]:  # frozen: swallowed, as by a dead link
                    writer.write(data)
                    await writer.drain()
        finally:
            if not state["frozen"]:
                writer.close()
