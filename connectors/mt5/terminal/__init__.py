"""A simulated MetaTrader 5 terminal with the MetaTrader5 package's API (in progress)."""
