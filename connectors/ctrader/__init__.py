"""cTrader over the Open API: the connector (to come) and a local Open API server (:mod:`.server`)."""
