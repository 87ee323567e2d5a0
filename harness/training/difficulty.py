"""Per-example difficulty scores, and the splits of the scenarios that choose their forget sets by them.

RUM (Zhao et al., NeurIPS 2024) shows that how hard a forget set is to unlearn depends on how *memorised* its
examples are and how *entangled* they are with retained examples in embedding space; a uniformly random forget
set is mostly easy examples. The scenarios ``memorised-P-T`` and ``entangled-P-T`` (harness/protocol/splits.py)
draw P percent of a seed's pool from tier T (a third) of one of two scores, computed once per suite from models
the harness already trains, the shadow bank's originals (:mod:`harness.training.shadow_bank`): N models on
class-stratified halves, every example a member of half of them.

* **memorisation** (Feldman and Zhang 2020's estimate, with the probability of the true label in place of 0/1
  correctness, as RUM's confidence proxy): the mean softmax probability of an example's label under the
  shadows that trained on it, minus the mean under those that did not. High: the label is learnt only by
  seeing the example.
* **entanglement** (the per-example form of RUM's embedding-space entanglement): in each shadow original's
  penultimate features (the input of its last linear layer), the distance to the nearest train example of the
  same label over the distance to the nearest one of another label, averaged over the shadows. High: the
  example sits closer to another class than to its own.

Scores are cached under the shadow originals' keys, so a split stays a pure function of (suite, scenario, seed)
and the trained models (whose keys are content hashes); the split hash in every row checks it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.protocol.splits import DIFFICULTY_KINDS, Scenario, Split, parse_scenario
from harness.training.cache import ArtifactCache, cache_key
from harness.training.loop import predict_logits
from harness.training.reference_models import model_key
from harness.training.shadow_bank import shadow_count, shadow_halves, shadow_originals, shadow_seed
from harness.training.workspace import Workspace

DIFFICULTY_VERSION = "1"  # bump when a score's computation changes: cached scores are then recomputed


def _shadow_keys(ws: Workspace) -> list[str]:
    """The shadow originals' cache keys, computed without training them."""
    halves = shadow_halves(ws.data.strata, shadow_count(ws.suite))
    return [model_key(ws.suite, ws.data, "shadow-original", torch.as_tensor(h, dtype=torch.long), shadow_seed(i))
            for i, h in enumerate(halves)]


def scores_key(ws: Workspace, kind: str) -> str:
    return cache_key(kind="difficulty", score=kind, shadows=_shadow_keys(ws), version=DIFFICULTY_VERSION)


def scores_stored(ws: Workspace, kind: str) -> bool:
    return ws.cache.exists("difficulty", scores_key(ws, kind))


def memorisation(probs_true: np.ndarray, member: np.ndarray) -> np.ndarray:
    """[pool] mean true-label probability where a member minus where not (``probs_true``, ``member``: [N, pool])."""
    inside = np.where(member, probs_true, 0.0).sum(0) / np.maximum(member.sum(0), 1)
    outside = np.where(~member, probs_true, 0.0).sum(0) / np.maximum((~member).sum(0), 1)
    return inside - outside


def entanglement(features: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """[pool] distance to the nearest example of the same label over that to the nearest of another label."""
    dist = torch.cdist(features, features)
    dist.fill_diagonal_(float("inf"))
    same = labels[:, None] == labels[None, :]
    d_same = torch.where(same, dist, torch.full_like(dist, float("inf"))).min(1).values
    d_other = torch.where(~same, dist, torch.full_like(dist, float("inf"))).min(1).values
    return (d_same / d_other.clamp_min(1e-12)).numpy()


def penultimate(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The input of the model's last linear layer on ``x``: its penultimate features, on the CPU."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach().float().cpu()))
    try:
        predict_logits(model, x, batch_size)
    finally:
        handle.remove()
    return torch.cat(captured).flatten(1)


def _compute(ws: Workspace, kind: str) -> torch.Tensor:
    data = ws.data
    bank = shadow_originals(ws, shadow_count(ws.suite))
    if kind == "memorised":
        probs = np.stack([torch.softmax(predict_logits(m.model, data.train_x), 1)
                          .gather(1, data.train_y[:, None]).squeeze(1).numpy() for _, m in bank])
        member = np.zeros_like(probs, dtype=bool)
        for i, (half, _) in enumerate(bank):
            member[i, half] = True
        return torch.as_tensor(memorisation(probs, member))
    per_model = [entanglement(penultimate(m.model, data.train_x), data.train_y) for _, m in bank]
    return torch.as_tensor(np.mean(per_model, axis=0))


def difficulty_scores(ws: Workspace, kind: str, memo: dict | None = None) -> np.ndarray:
    """[pool] the ``kind`` ('memorised' | 'entangled') score of every train example (higher = harder); computed
    once per suite from the shadow originals (trained here if missing) and cached."""
    if kind not in DIFFICULTY_KINDS:
        raise ValueError(f"no difficulty score for scenario kind {kind!r} (known: {', '.join(DIFFICULTY_KINDS)})")
    key = scores_key(ws, kind)
    if memo is not None and ("difficulty", key) in memo:
        return memo[("difficulty", key)]
    scores = ws.cache.get_or_compute("difficulty", key, lambda: _compute(ws, kind),
                                     parts={"suite": ws.suite.name, "score": kind}, tally=False).numpy()
    if memo is not None:
        memo[("difficulty", key)] = scores
    return scores


def cached_scores(suite, data, kind: str, cache: ArtifactCache | None = None) -> np.ndarray | None:
    """The ``kind`` scores if ``cache`` (default: the default cache) already holds them, else None; never
    trains (the leaderboard's integrity check, which recomputes splits without training)."""
    ws = Workspace(suite, data, cache or ArtifactCache(), torch.device("cpu"))
    return difficulty_scores(ws, kind) if scores_stored(ws, kind) else None


def scenario_split(ws: Workspace, scenario: Scenario | str, seed: int, memo: dict | None = None,
                   step: int | None = None) -> Split:
    """The split of (scenario, seed) (and ``step``, sequential scenarios): :meth:`Suite.split`, with the
    difficulty scores a difficulty kind needs."""
    scenario = parse_scenario(scenario, ws.data.num_classes) if isinstance(scenario, str) else scenario
    scores = difficulty_scores(ws, scenario.kind, memo) if scenario.kind in DIFFICULTY_KINDS else None
    return ws.suite.split(ws.data, scenario, seed, scores, step)
