"""Hostile plugin: allocates (and touches) more memory than its worker may use, optionally split over child
processes that each stay below the limit (per-process limits such as RLIMIT_AS let every child through)."""

import os

from harness import register_method

CHUNK = 64 << 20


def _allocate(mib: int) -> list[bytearray]:
    return [bytearray(b"\x01") * CHUNK for _ in range(mib * (1 << 20) // CHUNK)]  # filled: every page is charged


@register_method("memory-hog", needs_retain=False)
def memory_hog(task, *, mib: int = 4096, children: int = 0, hold_s: float = 3.0):
    """Allocate ``mib`` MiB here, or in each of ``children`` child processes that hold it for ``hold_s``."""
    if not children:
        held = _allocate(mib)
        print(f"memory-hog: holding {len(held) * CHUNK >> 20} MiB")
        return task.model
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            import time

            _allocate(mib)
            time.sleep(hold_s)
            os._exit(0)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    print(f"memory-hog: children exited with {codes}")
    return task.model
