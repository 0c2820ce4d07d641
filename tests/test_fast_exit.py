"""exit_now (the CLI's and the held play's exit): what sys.exit would have done is done, output included."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, threading, time
from solv_provision.fast_exit import exit_now
atexit.register(print, "exit handler ran")
threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
print("buffered output", end=" ")
exit_now({code!r})
"""


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("a message", 1)])
def test_exit_now_ends_as_sys_exit_would(code, status):
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(code=code)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == status
    assert proc.stdout.split("\n") == ["buffered output thread finished", "exit handler ran", ""]
    assert proc.stderr == ("a message\n" if isinstance(code, str) else "")
