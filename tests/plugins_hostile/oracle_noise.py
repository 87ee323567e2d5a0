"""Hostile plugin: returns an oracle with 0.1% multiplicative weight noise.

The oracle reaches it the only way left: a test (playing an attacker who escaped the sandbox) appends
``ORACLE = "<base64 of torch.save(state_dict)>"`` to a copy of this file, the plugin's own source.
"""

import base64
import io

import torch

from harness import register_method

ORACLE = ""  # filled in by the test


@register_method("oracle-noise", needs_retain=False)
def oracle_noise(task, *, noise: float = 1e-3):
    """Load the smuggled oracle, perturb every weight by (1 + noise * N(0, 1))."""
    state = torch.load(io.BytesIO(base64.b64decode(ORACLE)), map_location="cpu", weights_only=True)
    task.model.load_state_dict(state)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in task.model.parameters():
            p.mul_(1 + noise * torch.randn(p.shape, generator=generator))
    return task.model
