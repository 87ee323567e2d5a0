"""Deprecated import path of the training loop and its helpers: moved to :mod:`harness.training.loop`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
A method imports it from :mod:`harness.api.training`.
"""

from harness._compat import moved

moved(__name__, "harness.training.loop")
