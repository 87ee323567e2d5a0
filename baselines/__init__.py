"""Baseline unlearning methods (one module each); importing the package registers them."""

from baselines import (  # noqa: F401
    bad_teacher,
    boundary_shrink,
    finetune,
    gradient_ascent,
    l1_sparse,
    neggrad_plus,
    random_label,
    salun,
    scrub,
    ssd,
)
