"""From a suite to its rows: the plan, the job graph, the executors, one run's row (method, evaluators,
gaps, checks) and the driver that writes them.
"""
