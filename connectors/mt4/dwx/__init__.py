"""Compatibility with Darwinex's DWX ZeroMQ Server EA (v2.0.1 RC8) for MT4 terminals that already run it.

See ``connectors/mt4/DWX.md`` (the protocol facts this relies on, how to enable it, and its limits).

- :mod:`.reply`: the EA's replies (dict literals) read without ``eval``;
- :mod:`.protocol`: ports, command strings, refusal words, ``_trades`` entries as TRADE records;
- :mod:`.link`: :class:`~.link.DwxLink`, PUSH + PULL, one command in flight;
- :mod:`.feed`: :class:`~.feed.SnapshotDiff`, master deals from ``GET_OPEN_TRADES`` snapshots;
- :mod:`.venue`: :class:`~.venue.DwxVenue`, the connector interface;
- :mod:`.simulator`: :class:`~.simulator.DwxServer`, the EA's behaviour over real sockets on the MT4
  simulator's ``Terminal`` (``bridge sim mt4 --dwx``).
"""
