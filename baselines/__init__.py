"""Baseline unlearning methods (one module each); importing the package registers them."""

from baselines import (  # noqa: F401
    amnesiac,
    bad_teacher,
    boundary_expanding,
    boundary_shrink,
    finetune,
    fisher,
    gradient_ascent,
    l1_sparse,
    neggrad_plus,
    random_label,
    salun,
    scar,
    scrub,
    ssd,
    svd,
    unsir,
)
