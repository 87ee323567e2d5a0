"""Deprecated import path of the task a method receives: moved to :mod:`harness.api.task`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
A method imports it from :mod:`harness.api.task`.
"""

from harness._compat import moved

moved(__name__, "harness.api.task")
