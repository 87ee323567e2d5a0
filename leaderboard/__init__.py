"""Leaderboard: stored Parquet results -> aggregates -> Markdown / HTML. Never typed by hand."""
