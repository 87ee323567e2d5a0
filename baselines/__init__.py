"""Baseline unlearning methods (one module each); importing the package registers them."""

from baselines import finetune  # noqa: F401
