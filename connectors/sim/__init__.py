"""A simulated trading venue: deterministic (Twisted clock + seeded ``random.Random``), exact (ints and Decimals).

:class:`SimVenue` implements :class:`connectors.interface.Venue` over a
random-walk market of real-looking symbols, with hedging and netting accounts,
a master deal feed, a manual trading API for scripted sessions, and
configurable latency, slippage, rejections and faults (:class:`SimConfig`).
"""

from connectors.sim.config import SimAccount, SimConfig
from connectors.sim.market import DEFAULT_SYMBOLS, Market, Quote, SymbolDef
from connectors.sim.venue import SimRejected, SimVenue

__all__ = ["DEFAULT_SYMBOLS", "Market", "Quote", "SimAccount", "SimConfig", "SimRejected", "SimVenue", "SymbolDef"]
