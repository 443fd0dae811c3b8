"""Kill a child process group at a chosen point of its progress bar (for kill -9 tests and
benchmarks): reads tqdm's "done/total" from the child's stderr."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

EMBEDDING_BAR = rb"embedding:[^\r\n]*?(\d+)/(\d+) \["


def kill_at_progress(proc: subprocess.Popen, fraction: float = 1 / 3, *,
                     bar: bytes = EMBEDDING_BAR, deadline_s: float = 600.0
                     ) -> tuple[int, int, bytes]:
    """SIGKILL `proc`'s process group (start it with `start_new_session=True` and
    `stderr=PIPE`) once its bar shows `fraction` done, or at EOF or the deadline; returns
    (done, total, what stderr said)."""
    seen, done, total = b"", 0, 0
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        block = os.read(proc.stderr.fileno(), 4096)
        if not block:
            break
        seen += block
        found = re.findall(bar, seen[-2000:])
        if found:
            done, total = map(int, found[-1])
            if done >= total * fraction:
                break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return done, total, seen
