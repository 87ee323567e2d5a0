"""Torch-free foundations: the one registry type and "did you mean", crash-safe file writes, the results
store and row hashes, membership-attack statistics, the harness version, and the names kept where they used to be.

Nothing here imports torch, even inside a function (tests/test_architecture.py): the leaderboard reads
results with it alone.
"""
