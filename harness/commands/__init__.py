"""The command line and the commands behind it: ``run``/``suites``/``methods``/``leaderboard``/
``compare`` (cli), ``tune``, ``verify`` and ``try`` (quick).
"""
