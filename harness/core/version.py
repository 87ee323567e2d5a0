"""The harness's version, stored in every results row (torch-free)."""

HARNESS_VERSION = "0.2.0"  # 0.2: K oracles, measured floor, per-kind headlines, sandboxed workers
