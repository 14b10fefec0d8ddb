"""Peak resident memory of one command, measured by the kernel (wait4) and not polluted by pytest.

On Linux a child started with vfork/fork+exec inherits its parent's RSS high-water mark: exec saves the
old address space's peak into the process's maxrss. A pytest process that has grown to 300 MiB would
make every child look 300 MiB big. So the command is started from a small launcher interpreter and the
launcher reports its child's wait4 figure, whose inherited part is only the launcher's ~10 MiB.
"""

from __future__ import annotations

import subprocess
import sys

_LAUNCHER = (
    "import os, subprocess, sys\n"
    "proc = subprocess.Popen(sys.argv[1:])\n"
    "_pid, status, usage = os.wait4(proc.pid, 0)\n"
    "sys.stderr.write(f'\\nPEAK_RSS_KIB {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)\n"
)


def run_measured(argv: list[str], timeout: float = 300.0) -> tuple[int, int, bytes, bytes]:
    """Run `argv`; return (exit code, peak RSS in bytes, stdout, stderr without the figure)."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True, timeout=timeout,
                          check=False)
    head, sep, figure = proc.stderr.rpartition(b"\nPEAK_RSS_KIB ")
    if not sep:
        raise AssertionError(f"no peak RSS figure from the launcher: {proc.stderr[-500:]!r}")
    return proc.returncode, int(figure.split()[0]) * 1024, proc.stdout, head
