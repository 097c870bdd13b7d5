"""MetaTrader 4: an Expert Advisor over ZeroMQ (PROTOCOL.md), its simulator, and the connector."""
