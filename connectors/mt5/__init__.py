"""MetaTrader 5: the connector (issue 5, in progress) and a simulated terminal (``terminal/``)."""
