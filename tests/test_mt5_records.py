"""The simulated terminal's record types carry the MetaTrader5 package's exact field names and order."""

from connectors.mt5.terminal import records


def test_field_counts_and_order_match_the_package():
    assert len(records.SymbolInfo._fields) == 96
    assert records.TradeDeal._fields == ("ticket", "order", "time", "time_msc", "type", "entry", "magic",
                                         "position_id", "reason", "volume", "price", "commission", "swap", "profit",
                                         "fee", "symbol", "comment", "external_id")
    assert records.OrderSendResult._fields == ("retcode", "deal", "order", "volume", "price", "bid", "ask",
                                               "comment", "request_id", "retcode_external", "request")
    assert records.TradePosition._fields[7] == "identifier" and len(records.TradePosition._fields) == 19
    assert records.TradeRequest._fields[-2:] == ("position", "position_by")
