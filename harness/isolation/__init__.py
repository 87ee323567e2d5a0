"""Running a method apart from the harness: the bubblewrap sandbox and its fork server, the method
workers and their resource limits (cgroups, or rlimits), the in-process method call, and how plugins are
imported and described.

``harness.isolation`` was once the module that is now :mod:`harness.isolation.workers`; its names (``Isolation``,
``IsolationLimits``, ``MethodFault``, ...) still resolve here, with a deprecation warning.
"""

from __future__ import annotations

from harness.core.deprecated import forward_names

__getattr__ = forward_names("harness.isolation", "harness.isolation.workers")
