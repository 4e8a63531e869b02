"""Throwaway ``redis-server`` processes that a test may kill, restart, freeze and thaw (never
the machine's shared Redis)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_ping(port: int, what: str) -> None:
    """Until the server on ``port`` answers PING (5 s at most)."""
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=0.2, socket_timeout=0.5
    )
    for _ in range(200):
        try:
            client.ping()
            return
        except redis.RedisError:
            time.sleep(0.025)
    pytest.fail(f"{what} did not start on port {port}")


class ThrowawayRedis:
    """A private redis-server without persistence, on a free port."""

    NO_PERSISTENCE = ("--save", "", "--appendonly", "no")

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", *self.NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_ping(self.port, "redis-server")

    def freeze(self) -> None:
        """Stop the process (SIGSTOP): connections stay open and nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            self.thaw()  # a stopped process would not act on SIGKILL until continued
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def free_cluster_port() -> int:
    """A free port for a cluster node: Redis Cluster also listens on port + 10000 (the bus), so
    the port must be at most 55535 (a node on a higher one exits at start) and its bus port free
    too."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class ThrowawayRedisCluster:
    """A private Redis Cluster of ``size`` masters (no replicas), each a ``redis-server`` on a
    free port with cluster mode on, the 16384 slots split between them by ``redis-cli --cluster
    create``. A node can be killed and started again (its slots are then unserved meanwhile)."""

    def __init__(self, size: int = 3) -> None:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if binary is None or cli is None:
            pytest.fail("redis-server and redis-cli are needed for a Redis Cluster")
        self.binary = binary
        self.cli = cli
        self.dir = tempfile.mkdtemp(prefix="relay-redis-cluster-")
        self.ports = [free_cluster_port() for _ in range(size)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        for port in self.ports:
            self.start_node(port)
        created = subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            self.stop()
            pytest.fail(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        self.wait_until_ok()

    @property
    def url(self) -> str:
        """The URL of one node: cluster clients discover the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start_node(self, port: int) -> None:
        self.procs[port] = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                *ThrowawayRedis.NO_PERSISTENCE,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--dir",
                self.dir,
                "--cluster-node-timeout",
                "2000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_ping(port, "cluster node")

    def wait_until_ok(self, timeout: float = 30.0) -> None:
        """Until every node reports ``cluster_state:ok`` (all slots served, config agreed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for port in self.ports:
                try:
                    info = redis.Redis(host="127.0.0.1", port=port).cluster("INFO")
                except redis.RedisError:
                    states.append(False)
                    continue
                states.append(info.get("cluster_state") == "ok")
            if all(states):
                return
            time.sleep(0.1)
        pytest.fail("the Redis Cluster did not reach cluster_state:ok")

    def node_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        client = redis.Redis(host="127.0.0.1", port=self.ports[0])
        slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(master[1])
        raise AssertionError(f"slot {slot} is not served")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
