"""Hostile plugin: its module code (run when imported) tries to leave a mark outside the sandbox."""

import os

from harness import register_method

MARKER = ""  # the test writes here the path of a file it watches
try:
    with open(MARKER, "w") as handle:
        handle.write(f"imported by pid {os.getpid()}")
except OSError:
    pass


@register_method("import-time", needs_retain=False)
def import_time(task):
    """Harmless method; the module above is the attack."""
    return task.model
