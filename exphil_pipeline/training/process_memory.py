"""Keep memory a process frees for its next allocation instead of returning it to the kernel.

glibc's malloc serves every request above its mmap threshold (32 MiB at most) with fresh pages
from ``mmap`` and unmaps them on ``free``, so the next request of that size faults in and zeroes
every page again. A training step allocates the same large activations on every step (a PPO
minibatch of the demo's teacher holds 69 MB of periodic encodings at a time); on this 2-core VM
those page faults took a third of a learner update (0.75 s -> 0.50 s per update of 16,384
frames with memory kept, ``benchmarks/rl.py``'s learner). Turning off ``mmap`` for allocations
and raising the trim threshold makes freed blocks stay in the heap, where the next step reuses
them. The cost: the process keeps its peak heap until it exits, which a training process does
anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD_BYTES = 2**31 - 1
"""The largest value ``mallopt`` takes (an int): free memory at the heap's top beyond this is
still returned."""


def retain_freed_memory() -> bool:
    """Apply the settings above to this process; False where the C library is not glibc (the
    allocator's own behaviour then stays)."""
    if not sys.platform.startswith("linux"):
        return False
    library = ctypes.util.find_library("c")
    if library is None:
        return False
    mallopt = getattr(ctypes.CDLL(library), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
