"""Hostile plugin: behaves in its first (main) run, then looks for the harness's cache in later runs of
the same worker, which are the evaluators' shadow runs. Inside the sandbox the cache is never there."""

import os

from harness import register_method

CALLS = []


@register_method("shadow-peek", needs_retain=False)
def shadow_peek(task, *, folder: str = ""):
    """Return the model unchanged; in shadow runs, fail loudly if ``folder`` is visible."""
    CALLS.append(1)
    if len(CALLS) > 1 and folder and os.path.isdir(folder):
        raise RuntimeError(f"shadow-peek saw {folder} in run {len(CALLS)}")
    return task.model
