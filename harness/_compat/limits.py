"""Deprecated import path of the workers' resource limits: moved to :mod:`harness.isolation.limits`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
"""

from harness._compat import moved

moved(__name__, "harness.isolation.limits")
