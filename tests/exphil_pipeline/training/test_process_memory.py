"""Freed memory stays in the process where the C library is glibc."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROGRAM = """
import numpy as np
from exphil_pipeline.training.process_memory import retain_freed_memory
assert retain_freed_memory()
# Above glibc's largest mmap threshold: now served from the heap, then freed into it.
for _ in range(3):
    block = np.ones(48 * 2**20, dtype=np.uint8)
    assert int(block.sum()) == 48 * 2**20
    del block
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")
def test_glibc_keeps_freed_blocks_and_large_allocations_still_work() -> None:
    # In a process of its own: the setting lasts for the life of the process that makes it.
    subprocess.run([sys.executable, "-c", PROGRAM], check=True)
