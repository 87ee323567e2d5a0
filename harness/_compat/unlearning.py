"""Deprecated import path of the building blocks of unlearning methods: moved to :mod:`harness.api.blocks`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
A method imports it from :mod:`harness.api.blocks`.
"""

from harness._compat import moved

moved(__name__, "harness.api.blocks")
