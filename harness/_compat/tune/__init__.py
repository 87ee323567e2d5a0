"""Deprecated import path of the tuning package: ``unlearn-bench tune`` moved to :mod:`harness.commands.tune` and
its search spaces to :mod:`harness.protocol.search_space` (a method imports them from :mod:`harness`)."""
