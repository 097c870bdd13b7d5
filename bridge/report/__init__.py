"""``bridge report``: what the bridge did in a time window, read from the store.

:mod:`~bridge.report.window` parses ``--from``/``--to``; :mod:`~bridge.report.query` reads the orders
(intents with their executions) and PAMM NAV points of the window; :mod:`~bridge.report.summary` counts
and summarises them per master, follower and venue; ``render_*`` write it as a table, CSV, JSON or one
self-contained HTML page with its charts (:mod:`~bridge.report.charts`).
"""
