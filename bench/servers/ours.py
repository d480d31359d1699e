"""This library, as a user writes it: ``WebSocket("/bench")`` and two event functions.

``async def`` functions by default (the headline: they run on the loop); ``--sync`` binds plain
``def`` ones, which the library runs in its worker threads by design; ``--on-loop`` binds them
with ``blocking=False``, which runs them on the loop. ``--typed`` annotates the
echo's data with a ``msgspec.Struct`` (validated before the call, the ``typed`` extra), to show
what validation costs beside the untyped path. ``--tornado-reader`` turns our bulk frame reader off
(`tornado_websockets.framereader`), to show what it saves; ``--tornado-stream`` leaves each
connection on Tornado's stream after the upgrade (`tornado_websockets.ownconnection`).
``--loop uvloop`` serves on uvloop (the ``uvloop`` extra). ``--redis URL`` sets the cross-process
backplane (``?cluster=1`` for Redis Cluster with sharded pub/sub). Every variant also answers
``join`` (enter ``data["room"]``) and ``say`` (``tick`` to ``data["room"]``), for the sharding
scenario, and ``post`` (``receipt``, then ``posted``: two small frames back to back, as a function
that emits and then replies), for the emit-then-reply scenario.
"""

from typing import Any

from bench.servers.options import ServerOptions, parse_options
from tornado_websockets.framereader import FRAME_READER_SETTING
from tornado_websockets.ownconnection import OWN_CONNECTION_SETTING
from tornado_websockets.tornadowrapper import TornadoWrapper
from tornado_websockets.websocket import WebSocket

__all__ = ["build", "main"]


def build(sync: bool, typed: bool = False, on_loop: bool = False) -> WebSocket:
    """The bench path with its ``echo`` and ``broadcast`` events."""
    ws = WebSocket("/bench")
    if typed:
        # The typed extra, installed in the bench venv; the other variants go without. This module
        # has no `from __future__ import annotations`, so that `data: Echo` names the local class.
        import msgspec

        class Echo(msgspec.Struct):
            """The load client's echo payload."""

            n: int
            text: str

        @ws.on(name="echo")
        async def echo_typed(socket: Any, data: Echo) -> None:
            socket.emit("echo", {"n": data.n, "text": data.text})

        @ws.on(name="broadcast")
        async def broadcast_typed(data: dict[str, Any]) -> None:
            ws.emit("tick", data)

    elif sync or on_loop:
        # Plain def: in the worker threads, or (--on-loop) on the loop with blocking=False.

        @ws.on(blocking=not on_loop)
        def echo(socket: Any, data: dict[str, Any]) -> None:
            socket.emit("echo", data)

        @ws.on(blocking=not on_loop)
        def broadcast(data: dict[str, Any]) -> None:
            ws.emit("tick", data)

    else:

        @ws.on(name="echo")
        async def echo_async(socket: Any, data: dict[str, Any]) -> None:
            socket.emit("echo", data)

        @ws.on(name="broadcast")
        async def broadcast_async(data: dict[str, Any]) -> None:
            ws.emit("tick", data)

    @ws.on(name="join")
    async def join(socket: Any, data: dict[str, Any]) -> None:
        socket.join(data["room"])

    @ws.on(name="say")
    async def say(data: dict[str, Any]) -> None:
        ws.emit("tick", data, room=data["room"])

    @ws.on(name="post")
    async def post(socket: Any, data: dict[str, Any]) -> None:
        socket.emit("receipt", data)
        socket.emit("posted", data)

    return ws


def serve(options: ServerOptions) -> None:
    """Build the path, set the backplane if asked, and run until SIGTERM."""
    build(options.sync, options.typed, options.on_loop)
    if options.redis is not None:
        TornadoWrapper.use_broker(options.redis)
    settings: dict[str, Any] = {FRAME_READER_SETTING: False} if options.tornado_reader else {}
    if options.tornado_stream:
        settings[OWN_CONNECTION_SETTING] = False
    TornadoWrapper.run(options.port, address=options.host, tornado_settings=settings, loop=options.loop)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM."""
    serve(parse_options(__doc__ or "", argv))


if __name__ == "__main__":
    main()
