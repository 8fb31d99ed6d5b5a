"""A multi-node Ray cluster on one machine, for tests: each node a network namespace with its own
address, joined by a bridge, started with the recipe of docs/multi-node.md (`ray start --head` on one node,
`ray start --address=HEAD:6379` on the others).

The addresses come from 198.51.100.0/24 (TEST-NET-2, RFC 5737: documentation only, routed on no
real network). The bridge lives in a namespace of its own, so nothing is added to the machine's
own network: no interface, no route, no NAT, and no way out of the namespaces. Closing kills
every process inside the namespaces and deletes them (the links go with them), also when the
cluster failed halfway up. Needs root (CI runs as root) and iproute2's `ip`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "198.51.100"
GCS_PORT = 6379
RAY = str(Path(sys.executable).with_name("ray"))


@dataclass(frozen=True)
class NodeSpec:
    num_cpus: float
    labels: dict[str, str] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)


def require_root_and_ip() -> str | None:
    """Why this machine cannot make namespaces (None = it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` command is missing (apt-get install iproute2)"
    return None


class NetnsCluster:
    """Node i (0 = head) is namespace `{tag}-n{i}` at 198.51.100.{i+1}, its interface named eth0."""

    def __init__(self, specs: list[NodeSpec]):
        self.specs = specs
        self.tag = f"crrl{os.getpid()}"  # the owner's pid: sweep_orphans knows a dead owner's namespaces
        # Short: Ray's socket paths under it must fit the 107-byte limit of a unix socket.
        self.workdir = Path(tempfile.mkdtemp(prefix="crrl-"))
        self.token = self.workdir / "auth_token"
        self._daemons: list[subprocess.Popen] = []

    # -- addresses and environment --------------------------------------------------------
    def namespace(self, i: int) -> str:
        return f"{self.tag}-n{i}"

    def address(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    @property
    def ray_address(self) -> str:
        return f"{self.address(0)}:{GCS_PORT}"

    def env(self) -> dict[str, str]:
        """What every process on the cluster runs with: Ray's token authentication, as the
        recipe of docs/multi-node.md sets it up, with the token in a file of this cluster's own."""
        return {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token),
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def command(self, i: int, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(i), *argv]

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> NetnsCluster:
        sweep_orphans()
        try:
            self._make_network()
            self._start_ray()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _make_network(self) -> None:
        switch = f"{self.tag}-sw"
        _ip("netns", "add", switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for i in range(len(self.specs)):
            ns, outside, inside = self.namespace(i), f"{self.tag}p{i}", f"{self.tag}v{i}"
            _ip("netns", "add", ns)
            # Made in the machine's namespace (a veth pair must start somewhere) and moved out at once.
            _ip("link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside, "netns", switch)
            _ip("-n", switch, "link", "set", outside, "master", "br0", "up")
            _ip("-n", ns, "link", "set", inside, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _start_ray(self) -> None:
        self.token.write_text(secrets.token_hex(32))
        self.token.chmod(0o600)
        for i, spec in enumerate(self.specs):
            join = (
                ["--head", f"--port={GCS_PORT}", "--include-dashboard=false", f"--temp-dir={self.workdir / 'ray'}"]
                if i == 0
                else [f"--address={self.ray_address}"]
            )
            argv = [
                RAY,
                "start",
                "--block",
                *join,
                f"--node-ip-address={self.address(i)}",
                f"--num-cpus={spec.num_cpus:g}",
                "--object-store-memory=200000000",
                "--disable-usage-stats",
            ]
            if spec.labels:
                argv.append("--labels=" + ",".join(f"{k}={v}" for k, v in spec.labels.items()))
            if spec.resources:
                argv.append("--resources=" + _json(spec.resources))
            log = (self.workdir / f"node{i}.log").open("w")
            self._daemons.append(
                subprocess.Popen(
                    self.command(i, argv), env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            # One at a time: nodes starting together on one machine race for the names of their
            # sockets in the session folder they share.
            self._wait_for_nodes(i + 1)

    def _wait_for_nodes(self, count: int, timeout_s: float = 120.0) -> None:
        probe = (
            f"import ray; ray.init(address='{self.ray_address}', logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = self.run(0, [sys.executable, "-c", probe], timeout=60)
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
                return
            time.sleep(1)
        raise RuntimeError(
            f"the cluster did not reach {count} nodes in {timeout_s:g} s; logs in {self.workdir}:\n"
            + "\n".join(p.read_text()[-2000:] for p in sorted(self.workdir.glob("node*.log")))
        )

    def run(self, i: int, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        """`argv` on node i, waited for; its output as text."""
        return subprocess.run(
            self.command(i, argv), env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def close(self) -> None:
        """Kill everything in the namespaces, delete them, remove the work folder."""
        namespaces = [self.namespace(i) for i in range(len(self.specs))] + [f"{self.tag}-sw"]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for ns in namespaces:
                for pid in _pids_in(ns):
                    _signal(pid, sig)
            time.sleep(2 if sig == signal.SIGTERM else 0)
        for daemon in self._daemons:
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal(daemon.pid, signal.SIGKILL)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        # `ray start --head` leaves its address for later `ray.init()`s to join: not this one's.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().startswith(self.ray_address):
            current.unlink()

    def leftovers(self) -> list[str]:
        """Namespaces of this cluster still there, and processes still in them."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        return [line for line in listed.splitlines() if line.startswith(self.tag)]


def sweep_orphans() -> None:
    """Remove the namespaces (and what runs in them) of earlier test processes that died
    without closing their cluster (a test process killed outright cannot clean up)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for ns in (line.split()[0] for line in listed.splitlines() if line.startswith("crrl")):
        owner = ns.removeprefix("crrl").split("-")[0]
        if owner.isdigit() and not _alive(int(owner)):
            for pid in _pids_in(ns):
                _signal(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _pids_in(ns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _json(mapping: dict) -> str:
    import json

    return json.dumps(mapping)
