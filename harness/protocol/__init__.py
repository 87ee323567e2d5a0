"""The benchmark protocol: what is fixed before anything trains. Suites (TOML, validated), scenarios and splits,
datasets, model architectures, training recipes, methods' declarations (the method registry) and their search
spaces, hyper-parameter layering, and the scoring rules (headlines, the noise floor, ToW).

``harness.protocol`` was once the module that is now :mod:`harness.protocol.scoring`; its names (``HEADLINES``,
``ORACLE_METHOD``, ``floor_gaps``, ...) still resolve here, with a deprecation warning.
"""

from __future__ import annotations

from harness.core.deprecated import forward_names

__getattr__ = forward_names("harness.protocol", "harness.protocol.scoring")
