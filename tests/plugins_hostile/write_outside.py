"""Hostile plugin: writes outside its private temp folder. Every such write must fail in the sandbox."""

import os
import tempfile

from harness import register_method


@register_method("write-outside", needs_retain=False)
def write_outside(task, *, targets: str = ""):
    """Try to create or change every file in ``targets`` (os.pathsep-separated), then its own source."""
    written, refused = [], []
    for path in [t for t in targets.split(os.pathsep) if t] + [os.path.abspath(__file__)]:
        try:
            with open(path, "a") as handle:
                handle.write("\n# written by write-outside\n")
            written.append(path)
        except OSError as exc:
            refused.append(f"{path}: {exc.strerror}")
    with tempfile.NamedTemporaryFile("w", delete=True) as scratch:  # its own temp folder works
        scratch.write("scratch")
    if written:
        return task.model  # an ok row: the test fails, as it should
    raise PermissionError("write-outside could not write anywhere outside its temp folder: " + "; ".join(refused))
