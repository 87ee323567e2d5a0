"""Equal-budget hyper-parameter tuning (``unlearn-bench tune``); see docs/tuning.md.

``space`` (search-space declarations, imported by the registry) is dependency-free; ``validation`` derives the
leak-free validation suite, ``search`` runs the Optuna study per (method, scenario kind) through the runner,
``output`` writes the per-kind hyper-parameters and the trial logs. Import those submodules directly.
"""
