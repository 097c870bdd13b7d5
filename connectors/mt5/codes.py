"""The MetaTrader5 package's constants, for the connector: names and values as in
``MetaTrader5/__init__.py`` 5.0.6231 (shared/specs/platforms.md section 1.3).

Not imported from the package: it is Windows-only and an optional extra, and the
connector's pure core must import everywhere. The names are written once, in
``connectors/mt5/terminal/constants.py`` (the simulated terminal exports exactly
the package's set), and re-exported here; that module imports nothing, so the
connector does not load the simulator by using them.
"""

from __future__ import annotations

from connectors.mt5.terminal.constants import *  # noqa: F401,F403

#: SymbolInfo.filling_mode bits (SYMBOL_FILLING_* are not exported by the package)
SYMBOL_FILLING_FOK = 1
SYMBOL_FILLING_IOC = 2
