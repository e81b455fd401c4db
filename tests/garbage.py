"""How many ctypes array types a piece of code builds and drops (cyclic garbage).

ctypes caches ``c_char * n`` and friends by weak reference only: code that does not
hold its array types builds a new class (a cycle of several kB) again after every
collection. Guards for the daemon's hot paths use this to show they hold theirs.
"""

from __future__ import annotations

import gc
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
