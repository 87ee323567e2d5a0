"""Deprecated import path of dataset loaders: moved to :mod:`harness.protocol.datasets`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
"""

from harness._compat import moved

moved(__name__, "harness.protocol.datasets")
