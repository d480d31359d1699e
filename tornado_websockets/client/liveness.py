"""The liveness probe: a ``ping`` after ``idle`` seconds of silence; given up when nothing answers.

A connection can die without a close (a laptop that slept, a NAT that forgot it, a frozen proxy). Any frame
from the server is a sign of life; the answer to the probe itself (``pong``, or the ``warning`` of a server
that has no ``ping``) is consumed here and never reaches the application, as in the JavaScript client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tornado_websockets.client.options import Liveness
from tornado_websockets.protocol import PING_EVENT, PONG_EVENT, WARNING_EVENT, ServerFrame

__all__ = ["PING_FRAME", "Probe"]

PING_FRAME = '{"event":"ping","data":{}}'


class Probe:
    """The silence clock and the probes of a client's current connection."""

    def __init__(self) -> None:
        #: How many probes were sent, over every connection.
        self.sent = 0
        self._unanswered = 0
        self._last = 0.0
        self._heard = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Probe sent={self.sent} unanswered={self._unanswered}>"

    def restart(self) -> None:
        """A connection opened: silence is counted from now, no probe is due an answer."""
        self._unanswered = 0
        self._last = asyncio.get_running_loop().time()

    def heard(self) -> None:
        """A frame came: a sign of life."""
        self._last = asyncio.get_running_loop().time()
        self._heard.set()

    def answers(self, frame: ServerFrame) -> bool:
        """Whether ``frame`` is the answer to a probe (to be consumed): "pong", or the warning of an
        unknown "ping"."""
        if self._unanswered == 0:
            return False
        data = frame.data if isinstance(frame.data, dict) else {}
        unknown = frame.event == WARNING_EVENT and data.get("event") == PING_EVENT and frame.id is None
        if frame.event != PONG_EVENT and not unknown:
            return False
        self._unanswered -= 1
        return True

    async def watch(self, liveness: Liveness, send: Callable[[str], Awaitable[None]]) -> str:
        """Probe after ``idle`` seconds of silence; return why, when nothing answers within ``timeout``.

        Runs until cancelled otherwise; a failed ``send`` (the socket closed) is left to the reader.
        """
        loop = asyncio.get_running_loop()
        while True:
            silent = loop.time() - self._last
            if silent < liveness.idle:
                await asyncio.sleep(liveness.idle - silent)
                continue
            # Any frame counts as the answer: the "pong", or anything else the server had to say meanwhile.
            self._unanswered += 1
            self.sent += 1
            self._heard.clear()
            try:
                async with asyncio.timeout(liveness.timeout):
                    await send(PING_FRAME)
                    await self._heard.wait()
            except TimeoutError:
                return f"No answer from the server within {liveness.timeout:g} s."
            except Exception:
                await asyncio.Event().wait()  # the socket closed: the reader reports it
