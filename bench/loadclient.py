"""The load client: picows WebSocket connections in a process of their own, driven over a pipe.

The harness starts one `LoadProcess`; it opens connections, runs echo loops or fan-out rounds,
and reports plain dicts. Replies are handled inside picows's frame callback, without a task per
message, so that one client process outruns any server under test on the other core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any, cast

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.protocols import DIALECTS, Dialect, Incoming

__all__ = ["LoadClient", "LoadProcess", "worker_main"]

logger = logging.getLogger(__name__)

#: A realistic chat-sized payload (about 80 bytes of JSON once framed).
TEXT = "The quick brown fox jumps over the lazy dog"


class Connection(WSListener):
    """One client connection; hands every application event to the client's current run."""

    def __init__(self, client: LoadClient, dialect: Dialect, group: str) -> None:
        self.client = client
        self.dialect = dialect
        self.group = group
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.seq = 0
        self.sent_at = 0.0
        self.last_tick = -1
        self.room: str | None = None  # joined on connect (the sharding scenario)

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.dialect.ready_on_open:
            self.ready.set_result(None)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            incoming = self.dialect.decode(frame.get_payload_as_bytes())
            if incoming.reply is not None:
                transport.send(WSMsgType.TEXT, incoming.reply)
            if incoming.ready and not self.ready.done():
                self.ready.set_result(None)
            if incoming.event is not None:
                self.client.on_event(self, incoming)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during the handshake"))

    def send(self, event: str, data: Any) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, self.dialect.encode(event, data))


class EchoRun:
    """Closed loops: each connection sends ``echo``, waits for it, sends the next.

    With ``event="post"`` it waits for ``posted``, the second of the two frames the server
    writes back (``receipt`` first): the emit-then-reply round trip.
    """

    def __init__(self, connections: list[Connection], event: str = "echo") -> None:
        self.connections = connections
        self.event = event
        self.answer = "posted" if event == "post" else event
        self.counting = False
        self.stopped = False
        self.count = 0
        self.errors = 0
        self.outstanding = 0
        self.latencies: list[float] = []
        self._drained: asyncio.Future[None] | None = None

    async def drained(self, timeout: float) -> None:
        """Wait until every echo sent has its answer (after `stopped`), at most ``timeout`` s."""
        if self.outstanding:
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained, timeout)

    def send(self, connection: Connection) -> None:
        connection.seq += 1
        connection.sent_at = time.perf_counter()
        self.outstanding += 1
        connection.send(self.event, {"n": connection.seq, "text": TEXT})

    def on_event(self, connection: Connection, incoming: Incoming) -> None:
        if incoming.event != self.answer:
            return
        now = time.perf_counter()
        self.outstanding -= 1
        data = incoming.data
        if not isinstance(data, dict) or data.get("n") != connection.seq or data.get("text") != TEXT:
            self.errors += 1
        if self.counting:
            self.count += 1
            self.latencies.append(now - connection.sent_at)
        if not self.stopped:
            self.send(connection)
        elif not self.outstanding and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)


class FairnessRun:
    """One connection floods ``echo`` (``window`` in flight at all times) while another does closed-loop
    round trips: how long the other waits while the server is busy with the flood."""

    def __init__(self, probe: Connection, flood: Connection, window: int) -> None:
        self.probe = probe
        self.flood = flood
        self.window = window
        self.counting = False
        self.stopped = False
        self.flooded = 0
        self.latencies: list[float] = []
        self.errors = 0

    def start(self) -> None:
        for _ in range(self.window):
            self.flood.send("echo", {"n": 0, "text": TEXT})
        self.send_probe()

    def send_probe(self) -> None:
        self.probe.sent_at = time.perf_counter()
        self.probe.send("echo", {"n": 1, "text": TEXT})

    def on_event(self, connection: Connection, incoming: Incoming) -> None:
        if incoming.event != "echo":
            return
        if connection is self.flood:
            if self.counting:
                self.flooded += 1
            if not self.stopped:
                connection.send("echo", {"n": 0, "text": TEXT})
            return
        if self.counting:
            self.latencies.append(time.perf_counter() - connection.sent_at)
        if not self.stopped:
            self.send_probe()


class FanoutRun:
    """Rounds of one ``broadcast``: how long until every counted connection has its ``tick``."""

    def __init__(self, counted: list[Connection]) -> None:
        self.expected = len(counted)
        self.seq = -1
        self.received = 0
        self.duplicates = 0
        self.wrong = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []
        self.sent_at = 0.0
        self.done: asyncio.Future[None] | None = None
        self.group = counted[0].group if counted else ""

    def start_round(self, seq: int) -> asyncio.Future[None]:
        self.seq, self.received, self.first, self.last = seq, 0, 0.0, 0.0
        self.latencies = []
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def on_event(self, connection: Connection, incoming: Incoming) -> None:
        if incoming.event != "tick" or connection.group != self.group:
            return
        now = time.perf_counter()
        data = incoming.data
        seq = data.get("seq") if isinstance(data, dict) else None
        if seq != self.seq:
            self.wrong += 1
            return
        if connection.last_tick >= seq:
            self.duplicates += 1
            return
        connection.last_tick = seq
        self.received += 1
        self.latencies.append(now - self.sent_at)
        if self.received == 1:
            self.first = now
        self.last = now
        if self.received == self.expected and self.done is not None and not self.done.done():
            self.done.set_result(None)


def _cpu_seconds(pid: int | None) -> float:
    """CPU time the server has run so far, all its threads: what each operation cost it, whatever
    the other processes of the machine were doing meanwhile.

    Linux's schedstat counts in nanoseconds; psutil's times tick every 10 ms, too coarse for one
    fan-out round, so they are only the fallback.
    """
    if pid is None:
        return float("nan")
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
        return total / 1e9
    except (OSError, ValueError):
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


class LoadClient:
    """The connections of this process, by group, and the run their events go to."""

    def __init__(self) -> None:
        self.groups: dict[str, list[Connection]] = {}
        self.run: EchoRun | FanoutRun | FairnessRun | None = None

    def on_event(self, connection: Connection, incoming: Incoming) -> None:
        if self.run is not None:
            self.run.on_event(connection, incoming)

    async def connect(
        self,
        url: str,
        dialect: str,
        count: int,
        group: str = "main",
        concurrency: int = 64,
        timeout: float = 60,
        room: str | None = None,
        join: bool = True,
    ) -> dict[str, Any]:
        """Open ``count`` connections to ``url`` (at most ``concurrency`` handshakes at once); with
        ``room``, each joins it (``join`` with ``{"room": room}``) once open, unless not ``join``
        (a sender to the room)."""
        wire = DIALECTS[dialect]
        gate = asyncio.Semaphore(concurrency)
        opened: list[Connection] = []
        errors: list[str] = []

        async def one() -> None:
            async with gate:
                try:
                    _, listener = await ws_connect(
                        lambda: Connection(self, wire, group),
                        url,
                        websocket_handshake_timeout=timeout,
                        read_buffer_init_size=4096,
                    )
                    connection = cast(Connection, listener)
                    await asyncio.wait_for(connection.ready, timeout)
                    connection.room = room
                    if room is not None and join:
                        connection.send("join", {"room": room})
                    opened.append(connection)
                except Exception as error:
                    errors.append(repr(error))

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        seconds = time.perf_counter() - started
        self.groups.setdefault(group, []).extend(opened)
        return {"opened": len(opened), "failed": len(errors), "seconds": seconds, "error": errors[:1]}

    async def echo(
        self,
        warmup: float,
        duration: float,
        group: str = "main",
        server_pid: int | None = None,
        event: str = "echo",
    ) -> dict[str, Any]:
        """Closed-loop echo on every connection of ``group``: round trips per second and latency.

        With ``server_pid``, also the server's CPU time per round trip over the same window.
        ``event="post"``: the emit-then-reply round trip instead (see `EchoRun`).
        """
        run = EchoRun(self.groups[group], event)
        self.run = run
        for connection in run.connections:
            run.send(connection)
        await asyncio.sleep(warmup)
        cpu_before = _cpu_seconds(server_pid)
        run.counting = True
        started = time.perf_counter()
        await asyncio.sleep(duration)
        run.counting = False
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds(server_pid) - cpu_before
        run.stopped = True
        await run.drained(timeout=10)
        self.run = None
        latencies = sorted(run.latencies)
        return {
            "round_trips": run.count,
            "seconds": seconds,
            "rps": run.count / seconds,
            "server_cpu_us": cpu / run.count * 1e6 if run.count else float("nan"),
            "server_cpu_share": cpu / seconds,
            "p50_ms": _percentile(latencies, 0.50) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
            "errors": run.errors,
            "unanswered": run.outstanding,
        }

    async def fanout(
        self,
        rounds: int,
        warmup_rounds: int = 1,
        pause: float = 0.2,
        timeout: float = 60,
        trigger_group: str = "main",
        counted_group: str = "main",
        server_pid: int | None = None,
        every_trigger: bool = False,
    ) -> dict[str, Any]:
        """Rounds of one ``broadcast`` from the first connection of ``trigger_group``.

        With ``every_trigger``, every connection of ``trigger_group`` sends ``say`` to its room at
        once instead (many rooms emitting together); each counted connection expects one ``tick``.

        Per round: deliveries per second to ``counted_group`` and the time until its last
        connection has the ``tick`` (the time until the first one too), plus every delivery's
        latency for percentiles. With ``server_pid``, the server's CPU time per delivery. A round
        still incomplete after ``timeout`` seconds is the last one, reported with what arrived by
        then (``incomplete``).
        """
        triggers = self.groups[trigger_group] if every_trigger else self.groups[trigger_group][:1]
        run = FanoutRun(self.groups[counted_group])
        self.run = run
        results: list[dict[str, float]] = []
        latencies: list[float] = []
        incomplete = False
        for seq in range(warmup_rounds + rounds):
            done = run.start_round(seq)
            cpu_before = _cpu_seconds(server_pid)
            run.sent_at = time.perf_counter()
            for trigger in triggers:
                if every_trigger:
                    trigger.send("say", {"seq": seq, "text": TEXT, "room": trigger.room})
                else:
                    trigger.send("broadcast", {"seq": seq, "text": TEXT})
            try:
                await asyncio.wait_for(done, timeout)
            except TimeoutError:
                incomplete = True
            # The trigger's own echo work is in there too: one frame in, against N frames out.
            cpu = _cpu_seconds(server_pid) - cpu_before
            if seq >= warmup_rounds or incomplete:
                # An incomplete round ends the run; its rate is an upper bound for that server.
                end = time.perf_counter() if incomplete else run.last
                elapsed = end - run.sent_at
                results.append(
                    {
                        "received": run.received,
                        "last_ms": elapsed * 1000,
                        "first_ms": (run.first - run.sent_at) * 1000 if run.received else float("nan"),
                        "deliveries_per_s": run.received / elapsed,
                        "server_cpu_us": cpu / run.received * 1e6 if run.received else float("nan"),
                    }
                )
                latencies.extend(run.latencies)
            if incomplete:
                break
            await asyncio.sleep(pause)
        self.run = None
        latencies.sort()
        return {
            "expected": run.expected,
            "rounds": results,
            "incomplete": incomplete,
            "timeout": timeout,
            "missing": sum(run.expected - r["received"] for r in results),
            "duplicates": run.duplicates,
            "wrong": run.wrong,
            "p50_ms": _percentile(latencies, 0.50) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
        }

    async def fairness(self, warmup: float, duration: float, window: int) -> dict[str, Any]:
        """The ``probe`` group's round trips while the ``flood`` group's connection floods the server."""
        run = FairnessRun(self.groups["probe"][0], self.groups["flood"][0], window)
        self.run = run
        run.start()
        await asyncio.sleep(warmup)
        run.counting = True
        started = time.perf_counter()
        await asyncio.sleep(duration)
        run.counting = False
        seconds = time.perf_counter() - started
        run.stopped = True
        await asyncio.sleep(0.5)  # let the last answers come in before the connections close
        self.run = None
        latencies = sorted(run.latencies)
        return {
            "probe_round_trips": len(latencies),
            "flood_per_s": run.flooded / seconds,
            "p50_ms": _percentile(latencies, 0.50) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
        }

    async def idle(self, seconds: float) -> dict[str, Any]:
        """Keep the loop running (answering pings) while nothing is sent."""
        await asyncio.sleep(seconds)
        return {"open": sum(c.transport is not None and not c.transport.is_disconnected for c in self.all())}

    async def close(self) -> dict[str, Any]:
        """Close every connection (close handshake, then drop what is left after 10 s)."""
        connections = self.all()
        for connection in connections:
            if connection.transport is not None and not connection.transport.is_disconnected:
                # 1000 said: picows' default sends code 0, which websockets rightly refuses (1002).
                connection.transport.send_close(WSCloseCode.OK)
        waits = [c.transport.wait_disconnected() for c in connections if c.transport is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), 10)
        except TimeoutError:
            for connection in connections:
                if connection.transport is not None:
                    connection.transport.disconnect()
        self.groups.clear()
        return {"closed": len(connections)}

    def all(self) -> list[Connection]:
        return [connection for group in self.groups.values() for connection in group]


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=1000, method="inclusive")[min(998, int(fraction * 1000) - 1)]


def worker_main(pipe: Pipe) -> None:
    """The load process: run each command from the pipe on one event loop, send back its result."""
    logging.basicConfig(level=logging.WARNING)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client = LoadClient()
    commands: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        "connect": client.connect,
        "echo": client.echo,
        "fanout": client.fanout,
        "fairness": client.fairness,
        "idle": client.idle,
        "close": client.close,
    }
    while True:
        name, kwargs = pipe.recv()
        if name == "exit":
            break
        try:
            result = loop.run_until_complete(commands[name](**kwargs))
        except Exception as error:
            logger.exception("Load command %s failed", name)
            pipe.send(("error", repr(error)))
        else:
            pipe.send(("ok", result))
    loop.close()


class LoadProcess:
    """The harness's handle on the load process."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=worker_main, args=(child,), name="bench-load", daemon=True)
        self.process.start()
        child.close()

    def call(self, name: str, limit: float = 900, **kwargs: Any) -> dict[str, Any]:
        """Run a command in the load process and return its result.

        :raise RuntimeError: the command failed or did not answer within ``limit`` seconds.
        """
        self.pipe.send((name, kwargs))
        if not self.pipe.poll(limit):
            # Its answer would come later and be taken for the next command's: start afresh.
            self.process.kill()
            self.process.join()
            self._start()
            raise RuntimeError(f"The load process did not finish {name!r} within {limit}s")
        status, result = self.pipe.recv()
        if status != "ok":
            raise RuntimeError(f"Load command {name!r} failed: {result}")
        return dict(result)

    def stop(self) -> None:
        """Ask the process to exit, then make sure it did."""
        with contextlib.suppress(BrokenPipeError, OSError):
            self.pipe.send(("exit", {}))
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
