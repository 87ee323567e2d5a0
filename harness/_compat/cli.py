"""Deprecated import path of the command line: moved to :mod:`harness.commands.cli`.

Kept so plugins and scripts written against the old layout keep working; importing it warns and hands over the
new module itself (docs/architecture.md lists every move).
"""

from harness._compat import moved

moved(__name__, "harness.commands.cli")

if __name__ == "__main__":  # python -m harness.cli
    import sys

    from harness.commands.cli import main

    sys.exit(main())
