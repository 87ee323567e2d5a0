"""Deprecated import path of model architectures: moved to :mod:`harness.protocol.architectures`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
"""

from harness._compat import moved

moved(__name__, "harness.protocol.architectures")
