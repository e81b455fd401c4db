"""Memory a hot path leaves behind: ctypes array types it builds and drops (cyclic
garbage), and Python blocks it keeps (``blocks_kept``).

ctypes caches ``c_char * n`` and friends by weak reference only: code that does not
hold its array types builds a new class (a cycle of several kB) again after every
collection. Guards for the daemon's hot paths use this to show they hold theirs.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable


def dropped_array_types(action: Callable[[], object], times: int = 20) -> int:
    """Run ``action`` once to warm up, then ``times`` times with a collection between
    runs; the number of ctypes array types that became garbage meanwhile."""
    action()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(times):
            action()
            gc.collect()
        return sum(type(o).__name__ == "PyCArrayType" for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def blocks_kept(action: Callable[[], object], times: int) -> int:
    """Python memory blocks still allocated after ``action`` ran ``times`` times (once
    before, to warm up), with CPython's free lists emptied first.

    Why the free lists: a tuple built from a generator is made at a guessed size and
    resized, and freed at its final size into that size's free list (up to 2000 of each
    size), which nothing of the guessed size takes again. A path that does it per message
    fills those lists over hours, a slow growth no tracemalloc snapshot names."""
    action()
    gc.collect()  # a full collection empties the free lists
    before = sys.getallocatedblocks()
    for _ in range(times):
        action()
    return sys.getallocatedblocks() - before
