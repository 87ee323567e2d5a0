"""Hostile plugin: starts hundreds of short-lived processes. Must hit the worker's process limit."""

import subprocess

from harness import register_method


@register_method("fork-bomb", needs_retain=False)
def fork_bomb(task, *, processes: int = 500, seconds: float = 2.0):
    """Start ``processes`` processes that each live ``seconds``, all at once, then wait for them."""
    children = [subprocess.Popen(["sleep", str(seconds)]) for _ in range(processes)]
    for child in children:
        child.wait()
    print(f"fork-bomb: started {len(children)} processes")
    return task.model
