"""A real Redis Cluster for the tests: three primaries on free loopback ports, no replicas unless
asked (``replicas=1``: a replica per primary, for failovers).

Started from ``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create``, as an
operator would; sharded pub/sub needs Redis 7 or later (the tests skip on an older server).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.requirements import require_binary
from tests.servers import free_port

__all__ = ["RedisCluster"]


def _node_port() -> int:
    """A free port whose cluster bus port (10,000 above it) is a port too."""
    while (port := free_port()) > 55_000:
        pass
    return port


class RedisCluster:
    """Three ``redis-server`` processes joined in one cluster (and their replicas, if asked).

    :param node_timeout: ``cluster-node-timeout`` in milliseconds: how long a primary may not
        answer before its replica takes over.
    """

    def __init__(self, directory: Path, size: int = 3, replicas: int = 0, node_timeout: int = 15_000) -> None:
        self.binary = require_binary("redis-server", "apt-get install redis-server")
        self.cli = require_binary("redis-cli", "apt-get install redis-tools")
        version = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout
        major = re.search(r"v=(\d+)\.", version)
        if major is None or int(major.group(1)) < 7:
            pytest.skip(f"sharded pub/sub needs Redis 7+: {version.strip()}")
        self.directory = directory
        self.replicas = replicas
        self.node_timeout = node_timeout
        self.ports = [_node_port() for _ in range(size * (1 + replicas))]
        self.processes: list[subprocess.Popen[bytes]] = []
        self.by_port: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """A cluster backplane URL naming the first node."""
        return f"redis://127.0.0.1:{self.ports[0]}/0?cluster=1"

    @classmethod
    @contextlib.contextmanager
    def running(cls, directory: Path) -> Iterator[RedisCluster]:
        """A started cluster, stopped on the way out."""
        cluster = cls(directory)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()

    def start(self, timeout: float = 30.0) -> None:
        """Start the nodes, create the cluster, wait until every node says it is ok."""
        for port in self.ports:
            node = self.directory / str(port)
            node.mkdir()
            options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
            options |= {"dir": str(node), "logfile": "redis.log", "cluster-enabled": "yes"}
            options |= {"cluster-config-file": "nodes.conf", "cluster-node-timeout": str(self.node_timeout)}
            process = subprocess.Popen(
                [
                    self.binary,
                    *(item for name, value in options.items() for item in (f"--{name}", value)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.processes.append(process)
            self.by_port[port] = process
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not self._answers(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.02)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        for port in self.ports:
            while not self._ok(port):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not become ok")
                time.sleep(0.05)
        while self.replicas and not self._replicated():
            if time.monotonic() > deadline:
                raise RuntimeError("the replicas did not catch up")
            time.sleep(0.05)

    def _replicated(self) -> bool:
        """Whether every replica is linked to its primary (a failover can happen only then)."""
        for port in self.ports:
            with self.node(port) as client:
                info = client.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        return True

    def owner(self, key: str) -> int:
        """The port of the primary that serves ``key``'s slot now."""
        for port in self.ports:
            if port not in self.by_port or self.by_port[port].poll() is not None:
                continue
            try:
                with self.node(port) as client:
                    slot = int(client.execute_command("CLUSTER KEYSLOT", key))
                    rows = client.execute_command("CLUSTER SLOTS")
            except redis.ConnectionError:
                continue
            return next(int(row[2][1]) for row in rows if row[0] <= slot <= row[1])
        raise RuntimeError("no node answers")

    def kill(self, port: int) -> None:
        """Kill one node (SIGKILL), as a crash would."""
        process = self.by_port[port]
        process.kill()
        process.wait(10)

    def healthy(self, port: int) -> bool:
        """Whether ``port`` (a node still running) says the cluster is ok."""
        try:
            return self._ok(port)
        except redis.ConnectionError:
            return False

    def _ok(self, port: int) -> bool:
        with self.node(port) as client:
            return str(client.execute_command("CLUSTER INFO").get("cluster_state")) == "ok"

    def _answers(self, port: int) -> bool:
        try:
            with self.node(port) as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=1)

    def shard_subscribers(self, channel: str) -> int:
        """How many connections subscribe to the sharded ``channel`` (on the node that owns it)."""
        for port in self.ports:
            with self.node(port) as client:
                slot = int(client.execute_command("CLUSTER KEYSLOT", channel))
                owner = next(
                    int(row[2][1])
                    for row in client.execute_command("CLUSTER SLOTS")
                    if row[0] <= slot <= row[1]
                )
            with self.node(owner) as client:
                reply = client.execute_command("PUBSUB SHARDNUMSUB", channel)
            return int(reply[0][1])
        return 0

    def stop(self) -> None:
        """Stop every node."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.processes.clear()
