"""Peak resident memory of one command, measured by the kernel (wait4) and not polluted by its caller.

On Linux a child started with vfork/fork+exec inherits its parent's RSS high-water mark: exec saves the
old address space's peak into the process's maxrss. A pytest process (or a benchmark) that has grown to
300 MiB would make every child look 300 MiB big. So the command is started from a small launcher
interpreter, which waits for it (and kills it at the timeout) and reports its wait4 figure, whose
inherited part is only the launcher's ~10 MiB. Used by the tests and by bench/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

_LAUNCHER = """\
import os, resource, subprocess, sys, time
timeout, cap, argv = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def limit():
    if cap:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
proc = subprocess.Popen(argv, preexec_fn=limit if cap else None)
deadline, killed = time.monotonic() + timeout, 0
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    if time.monotonic() > deadline:
        proc.kill()
        _pid, status, usage = os.wait4(proc.pid, 0)
        killed = 1
        break
    time.sleep(0.01)
sys.stderr.write(f"\\nPEAK_RSS_KIB {usage.ru_maxrss} {killed}\\n")
sys.exit(0 if killed else os.waitstatus_to_exitcode(status) & 0xFF)
"""


@dataclass
class Measured:
    returncode: int | None  # None: killed at the timeout
    peak_bytes: int
    seconds: float
    stdout: bytes  # empty when it went to `stdout_file`
    stderr: bytes  # without the launcher's figure


def run_measured(argv: list[str], timeout: float = 300.0, *, env: dict[str, str] | None = None,
                 stdout_file: IO[bytes] | None = None, address_cap: int = 0) -> Measured:
    """Run `argv` (killed after `timeout` s; its address space capped at `address_cap` bytes if given)."""
    started = time.monotonic()
    with subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(timeout), str(address_cap), *argv], env=env,
                          stdout=stdout_file or subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout + 30)  # the launcher enforces `timeout` itself
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # launcher and command alike: nothing outlives the call
            proc.communicate()
            raise AssertionError(f"{argv[:3]}... outlived its {timeout:.0f} s bound and was killed") from None
    head, sep, figure = err.rpartition(b"\nPEAK_RSS_KIB ")
    if not sep:
        raise AssertionError(f"no peak RSS figure from the launcher: {err[-500:]!r}")
    kib, killed = (int(x) for x in figure.split()[:2])
    return Measured(None if killed else proc.returncode, kib * 1024, time.monotonic() - started, out or b"", head)
