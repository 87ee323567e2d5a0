"""From a suite to its rows: the options every path shares, the plan, the job graph, the executors, one run's
row (the method, the evaluators, the gaps, the oracle-copy and no-op checks), the driver that writes the rows, the
reference methods (``original``, ``retrain``) and the provenance stored in every row. docs/architecture.md follows
one row through these modules.
"""
