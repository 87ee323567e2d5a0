"""Cache keys and run ids do not depend on where the code lives: digits-smoke's keys equal the ones recorded
before the layer move (commit 2121e12, the flat layout), so an existing cache is reused, not recomputed.

The constants were computed with the flat layout's own functions (model_key, oracle_key, the shadow bank's
halves and forget sets, run_id_for); if a change here is intended (a new TRAINER_VERSION, say), it is a change
of every cache, and these constants move with it.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.pipeline.plan import run_id_for
from harness.protocol.hparams import config_hash
from harness.protocol.splits import parse_scenario
from harness.protocol.suite import load_suite
from harness.training.reference_models import model_key, oracle_key
from harness.training.shadow_bank import (
    audit_factor_of,
    audit_set,
    forget_within,
    shadow_count,
    shadow_halves,
    shadow_seed,
)

DATASET = "1b3ae6879adf2c2513509380-abaf984ee51a3b94"
SPLITS = {
    "class-3/0": "853866f8faf2a91e",
    "class-3/1": "6be71ce3833c19cd",
    "random-10/0": "72e567c599a0b2c5",
    "random-10/1": "de90095b3492b58d",
}
ORIGINALS = {
    "0": "49a2dcb1d2aaebb07e7e68faccb1148e",
    "1": "d007e32ffa863c1aed034d0f006c496d",
}
ORACLES = {
    "class-3/0/0": "9cd687f5f26c67cff5b9d5ae4954709b",
    "class-3/0/1": "61858c85b0da36849caf88b85c36d092",
    "class-3/1/0": "b67e5d4f3e4d4eb307ce3ac1b864c61f",
    "class-3/1/1": "0ad8e03d93bc6a1ab74f8f15fce8c592",
    "random-10/0/0": "36b710779ab7a61975a7fd0c1f602878",
    "random-10/0/1": "c54f88d4e4c1a2d75aaf280ace9e1ed8",
    "random-10/1/0": "4dec94ac0a4c1cd6cf30a8f485546709",
    "random-10/1/1": "8a866097157848128431a66e6c3af771",
}
SHADOW_ORIGINALS = {
    "0": "40db9b5006f9c46ac6aa06d2f8416caf",
    "1": "6803ae89ffbdcd1a10ed23e700afb7db",
    "2": "0dff1d069bdcc9e390c5344d6d6477f4",
    "3": "832beb965bdb7ab6cef201f6ea41e80d",
}
SHADOW_RETRAINED = {
    "class-3/0": "66ca6183093344b0e92af70dfc1e48c4",
    "class-3/1": "f841fcea111d0578921d4aecc1933217",
    "class-3/2": "5c7d3dc42798810b7830bc19fc15debd",
    "class-3/3": "ceb51904407e97447f2ed825d3324fd5",
    "random-10/0": "f4b9da7281b5301178caf4eb7577460d",
    "random-10/1": "43ca726d687fe8ada22404fe7def9d05",
    "random-10/2": "a94df320f25b6a023a586230d52e88b9",
    "random-10/3": "fd9c4c77d1c2a11d1039912ab33ebace",
}
RUN_ID = "10a49c64a1f7cc3933d6"  # finetune, lr 0.01, random-10, seed 0


def test_digits_smoke_keys_are_the_flat_layouts():
    suite = load_suite("digits-smoke")
    data = suite.load_data()
    assert data.fingerprint == DATASET
    originals, oracles, splits = {}, {}, {}
    for seed in suite.seeds:
        originals[str(seed)] = model_key(suite, data, "original", suite.original_positions(data, seed), seed)
        for scenario in suite.scenarios:
            split = suite.split(data, scenario, seed)
            splits[f"{scenario}/{seed}"] = split.hash
            for k in range(suite.oracles):
                oracles[f"{scenario}/{seed}/{k}"] = oracle_key(suite, data, split, k)
    assert (splits, originals, oracles) == (SPLITS, ORIGINALS, ORACLES)
    halves = shadow_halves(data.train_y, shadow_count(suite))
    as_positions = lambda a: torch.as_tensor(a, dtype=torch.long)
    shadow_originals = {str(i): model_key(suite, data, "shadow-original", as_positions(h), shadow_seed(i))
                        for i, h in enumerate(halves)}
    retrained = {}
    for scenario in suite.scenarios:
        parsed = parse_scenario(scenario, data.num_classes)
        audit = audit_set(parsed, data.train_y, len(data.train_y), audit_factor_of(suite))
        for i, half in enumerate(halves):
            kept = np.setdiff1d(half, forget_within(half, parsed, data.train_y, i, audit), assume_unique=True)
            retrained[f"{scenario}/{i}"] = model_key(suite, data, "shadow-retrained", as_positions(kept),
                                                       shadow_seed(i))
    assert (shadow_originals, retrained) == (SHADOW_ORIGINALS, SHADOW_RETRAINED)
    assert run_id_for(suite, "random-10", 0, "finetune", config_hash("finetune", {"lr": 0.01})) == RUN_ID
