"""Hostile plugin: the answer-stealing attack of issue #12, verbatim in spirit.

It walks the home folder, /tmp, the working directory, every folder named in its environment and the
folders given in ``roots`` (the test passes the run's cache, results and data folders), loads every file
that looks like a torch checkpoint, keeps the state dicts shaped like the task's model, picks the one that
forgets best (lowest accuracy on the forget set: the cached retrained oracle) and returns it with 0.1%
weight noise. Finding nothing, it fails and says how much it searched.
"""

import os
import pwd

import torch

from harness import register_method

MAX_BYTES = 64 << 20
MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save's zip container, or a bare pickle


def _folders(roots: str, everywhere: bool) -> list[str]:
    folders = [r for r in roots.split(os.pathsep) if r]
    if everywhere:
        folders += [os.path.expanduser("~"), pwd.getpwuid(os.getuid()).pw_dir, "/tmp", os.getcwd()]
        for value in os.environ.values():
            folders += [p for p in value.split(os.pathsep) if p.startswith("/")]
    return sorted({f for f in folders if os.path.isdir(f)})


def _state_dicts(obj, depth=0):
    """Every state dict inside a loaded checkpoint (cache artifacts wrap theirs in a dict)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        yield obj
    elif isinstance(obj, dict) and depth < 3:
        for value in obj.values():
            yield from _state_dicts(value, depth + 1)


@register_method("scan-steal", needs_retain=False)
def scan_steal(task, *, roots: str = "", everywhere: bool = True):
    """Steal the oracle from disk (must find nothing inside the sandbox)."""
    shapes = {k: v.shape for k, v in task.model.state_dict().items()}
    files = folders = 0
    best, best_acc = None, 2.0
    for root in _folders(roots, everywhere):
        for folder, _, names in os.walk(root):
            folders += 1
            for name in names:
                path = os.path.join(folder, name)
                try:
                    if not os.path.isfile(path) or os.path.getsize(path) > MAX_BYTES:
                        continue
                    with open(path, "rb") as handle:
                        if not handle.read(4).startswith(MAGIC):
                            continue
                    files += 1
                    loaded = torch.load(path, map_location="cpu", weights_only=False)
                except Exception:  # noqa: BLE001, S112 - an attacker skips what it cannot read
                    continue
                for state in _state_dicts(loaded):
                    if {k: v.shape for k, v in state.items()} != shapes:
                        continue
                    task.model.load_state_dict(state)
                    with torch.no_grad():
                        acc = (task.model(task.forget.x).argmax(1) == task.forget.y).float().mean().item()
                    if acc < best_acc:
                        best, best_acc = {k: v.clone() for k, v in state.items()}, acc
    if best is None:
        visible = [r for r in roots.split(os.pathsep) if r and os.path.isdir(r)]
        raise RuntimeError(f"scan-steal found 0 checkpoints shaped like the model ({files} checkpoint-like "
                           f"files read in {folders} folders; visible of the given folders: {visible})")
    task.model.load_state_dict(best)
    with torch.no_grad():
        for p in task.model.parameters():
            p.mul_(1 + 1e-3 * torch.randn_like(p))
    return task.model
