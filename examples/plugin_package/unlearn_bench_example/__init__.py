"""Example unlearn-bench plugin package; the method lives in :mod:`unlearn_bench_example.method`."""
