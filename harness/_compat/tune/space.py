"""Deprecated import path of search spaces: moved to :mod:`harness.protocol.search_space`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
A method imports it from :mod:`harness.api`.
"""

from harness._compat import moved

moved(__name__, "harness.protocol.search_space")
