"""Inbound data messages, queued in order behind the event function that runs.

While an event function of a connection runs, the connection is still read: pings, pongs and the
client's close are handled at once, and data messages wait in a bounded queue, in order, of at
most `INBOX_MESSAGES` messages or `INBOX_BYTES`; past that the socket is not read until the
function is done with one, so TCP pushes back on a client that sends faster than its functions
run. The queue is `QueuingProtocol`, a subclass of Tornado's protocol: it lives with every other
use of Tornado's private names in `tornado_websockets.framereader`, and these names are aliases
of that module's.
"""

from __future__ import annotations

from tornado_websockets.framereader import INBOX_BYTES, INBOX_MESSAGES, QueuingProtocol

__all__ = ["INBOX_BYTES", "INBOX_MESSAGES", "QueuingProtocol"]
