"""A real Ray cluster on loopback for the scale-out tests: `ray start --head` plus a second
node (`ray start --address`), each in its own short temp dir, and a teardown that ends exactly
the processes they started (never `ray stop`, which would stop every Ray on the machine).

Why by process tree: `ray start` daemonises GCS, raylet and the rest, then exits. Their
command lines name the temp dir; the actors' worker processes are the raylets' children.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process /proc shows."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, cmd)
    return out


def tree_of(marker: str) -> list[int]:
    """Processes whose command line holds `marker`, and all their descendants."""
    procs = _processes()
    found = {pid for pid, (_, cmd) in procs.items() if marker in cmd and pid != os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found)


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class LocalCluster:
    """`ray start --head` and `workers` more nodes on 127.0.0.1."""

    port: int
    head_cpus: int = 2
    worker_cpus: int = 1
    workers: int = 1
    object_store_mb: int = 300
    temp_dirs: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "LocalCluster":
        # Token authentication (on by default since Ray 2.5x): the token in ~/.ray/auth_token.
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
        common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                  "--object-store-memory", str(self.object_store_mb << 20)]
        head = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # AF_UNIX paths must stay short
        self.temp_dirs.append(head)
        self._run([str(RAY), "start", "--head", "--port", str(self.port), "--num-cpus",
                   str(self.head_cpus), "--include-dashboard", "false", "--temp-dir", head,
                   *common], env)
        for _ in range(self.workers):
            worker = tempfile.mkdtemp(prefix="rw", dir="/tmp")
            self.temp_dirs.append(worker)
            self._run([str(RAY), "start", "--address", self.address, "--num-cpus",
                       str(self.worker_cpus), "--temp-dir", worker, *common], env)
        return self

    def _run(self, cmd: list[str], env: dict[str, str]) -> None:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"{' '.join(cmd[:3])} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout)[-1500:]}")

    def pids(self) -> list[int]:
        return sorted({pid for d in self.temp_dirs for pid in tree_of(d)})

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s, every process of this cluster; remove its dirs."""
        pids = self.pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
                time.sleep(0.2)
            pids = [p for p in pids if Path(f"/proc/{p}").exists()]
            if not pids:
                break
        for d in self.temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
