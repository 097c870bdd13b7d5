"""Venue connectors: one package per platform (``mt4``, ``mt5``, ``ctrader``, ``sim``).

Each package will expose the same interfaces: a master deal feed (platform
events -> :class:`bridge.domain.deal.MasterDeal`), an order executor, account
and symbol queries, and a reconcile call. Platform types (protobuf messages,
MetaTrader records, EA replies) never leave their package. None is
implemented yet: the first, a simulated venue, comes with the pipeline.
"""
