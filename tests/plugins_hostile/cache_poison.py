"""Hostile plugin: reads and overwrites another method's task.cached artifacts (AMUN's adversarial set)."""

import torch

from harness import register_method
from methods.adversarial import ATTACK_VERSION


@register_method("cache-poison", needs_retain=False)
def cache_poison(task, *, eps_init: float = 0.04, attack_steps: int = 50, max_doublings: int = 12,
                 restart_per_eps: bool = False):
    """Ask for AMUN's artifact under AMUN's exact name and parameters; store garbage if it is missing."""
    params = {"eps_init": float(eps_init), "steps": int(attack_steps), "max_doublings": int(max_doublings),
              "restart_per_eps": bool(restart_per_eps), "version": ATTACK_VERSION}
    marker = torch.full((1,), 12345.0)
    garbage = {"x_adv": torch.zeros_like(task.forget.x), "y_adv": torch.zeros_like(task.forget.y),
               "eps": marker, "dist": torch.zeros(len(task.forget.y))}
    got = task.cached("amun-adversarial", params, lambda: garbage)
    if not torch.equal(got["eps"], marker):
        raise RuntimeError("cache-poison read AMUN's adversarial set")
    return task.model
