"""unlearn-bench: a benchmark leaderboard harness for machine unlearning in image classification."""

from harness.registry import MethodSpec, register_method
from harness.task import TensorData, UnlearningTask

__all__ = ["MethodSpec", "TensorData", "UnlearningTask", "register_method"]
__version__ = "0.1.0"
