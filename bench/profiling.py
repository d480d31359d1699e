"""Profile one server with py-spy while the load client drives one scenario.

py-spy samples the server from outside (no instrumentation inside the process measured); the
collapsed stacks are summed into the share of samples spent in each function, inclusive and
self: what the hot path changes (direct frame writes, inline event functions) were chosen from.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.processes import raise_file_limit, server_process
from bench.protocols import DIALECTS
from bench.servers import SERVERS

__all__ = ["profile", "summarize_collapsed"]

logger = logging.getLogger(__name__)

SECONDS = 8


def summarize_collapsed(text: str, top: int = 30) -> str:
    """Inclusive and self shares of samples per function, from py-spy's ``--format raw`` output."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [frame.strip() for frame in stack.split(";") if frame.strip()]
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in own.most_common(top)]
    return "\n".join(lines) + "\n"


def profile(server: str, scenario: str, output: Path, pythonpath: str | None = None) -> None:
    """Sample ``server`` for a few seconds of ``scenario`` (echo with 100 clients, or fan-out to 1,000)."""
    from bench.loadclient import LoadProcess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raise_file_limit()
    spec = SERVERS[server]
    dialect = DIALECTS[spec.dialect]
    output.parent.mkdir(parents=True, exist_ok=True)
    raw = output.with_suffix(".collapsed")
    load = LoadProcess()
    try:
        with server_process(spec, pythonpath=pythonpath) as (port, process):
            count = 100 if scenario == "echo" else 1000
            load.call("connect", url=dialect.url(port), dialect=spec.dialect, count=count)
            command = [spy, "record", "--pid", str(process.pid), "--format", "raw", "--rate", "250"]
            command += ["--duration", str(SECONDS), "--output", str(raw), "--nonblocking"]
            sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            if scenario == "echo":
                result = load.call("echo", warmup=0.0, duration=SECONDS, server_pid=process.pid)
                cpu = f"server CPU per round trip while sampled: {result['server_cpu_us']:.1f} µs"
            else:
                load.call("fanout", rounds=int(SECONDS / 0.05), warmup_rounds=0, pause=0.0)
                cpu = ""
            _, errors = sampler.communicate(timeout=60)
            if sampler.returncode:
                raise RuntimeError(f"py-spy failed: {errors.decode(errors='replace')}")
            load.call("close")
    finally:
        load.stop()
    # The CPU figure turns each share into µs per operation (py-spy reads from outside: --nonblocking).
    output.write_text((cpu + "\n" if cpu else "") + summarize_collapsed(raw.read_text()))
    logger.info("Profile of %s under %s in %s (stacks in %s)", server, scenario, output, raw)
