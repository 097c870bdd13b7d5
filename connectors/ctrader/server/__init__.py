"""A protocol-faithful local cTrader Open API server, for the tests, ``bridge demo``, ``bench`` and ``sim``.

It speaks what ``live.ctraderapi.com:5035`` speaks (spec: shared/specs/platforms.md
section 2) with the ``ctrader-open-api`` package's own protobuf messages, so the
stock client, or the bridge's connector, cannot tell it from the real thing in
the behaviour listed here. Build one with :class:`CTraderServer` (credentials,
an ``IReactorTime`` clock, a seeded ``random.Random``, :class:`FaultConfig`), then
``server.listen(reactor, port)``; ``bridge sim ctrader`` does that from the
command line.

Transport (``protocol.py``, ``framing.py``)
    TLS only (``listenSSL`` on 127.0.0.1 by default). Without ``identity`` a fresh
    local CA and a certificate for ``localhost``/``127.0.0.1`` are generated
    (``server.identity.ca_pem`` lets a client verify it). Frames: 4-byte
    big-endian length + ``ProtoMessage{payloadType, payload, clientMsgId}``.
    Responses, and the ExecutionEvents / OrderErrorEvents a request causes, echo
    its ``clientMsgId`` to the requester; the same ExecutionEvents go to every
    other connection that authorised the account *without* one (so manual trades
    by any client on a master account are ordinary events to the bridge);
    unsolicited events (SL/TP and stop-out closes, spots, token and account
    events) never carry one. A frame above ``max_frame`` (1 MiB) -> ProtoErrorRes
    FRAME_TOO_LONG, connection closed; a frame that is not a ProtoMessage ->
    ProtoErrorRes INVALID_REQUEST, connection closed; an unknown payloadType ->
    ProtoErrorRes UNSUPPORTED_MESSAGE and a payload that does not parse or lacks
    a required field -> ProtoOAErrorRes INVALID_REQUEST, connection kept.
    Heartbeats: echoed at most once per ``heartbeat_s`` (10 s), and sent after
    ``heartbeat_s`` of silence; nothing received for ``idle_timeout_s`` (30 s) ->
    ``ClientDisconnectEvent{reason}`` and close. Rate limit per connection: 50
    requests per sliding second, 5 for historical ones (DealListReq, ...); over
    it -> ProtoOAErrorRes REQUEST_FREQUENCY_EXCEEDED, request not processed.

Sessions (``session.py``, ``tokens.py``, ``credentials.py``)
    Before ApplicationAuthReq every request -> CH_CLIENT_NOT_AUTHENTICATED; a
    second one -> CH_CLIENT_ALREADY_AUTHENTICATED; wrong id/secret ->
    CH_CLIENT_AUTH_FAILURE (the connection stays). GetAccountListByAccessTokenReq
    -> the token's accounts (isLive, traderLogin), SCOPE_TRADE; unknown or revoked
    token -> CH_ACCESS_TOKEN_INVALID. AccountAuthReq: any number of accounts per
    connection, again for one already authorised is fine; CH_ACCESS_TOKEN_INVALID,
    CH_CTID_TRADER_ACCOUNT_NOT_FOUND, or ACCOUNT_NOT_AUTHORIZED (another token's
    account). Any request naming a ``ctidTraderAccountId`` not authorised on this
    connection -> ACCOUNT_NOT_AUTHORIZED. RefreshTokenReq -> a new access and
    refresh token; the old pair is revoked and every connection that authorised
    accounts with the old token (the requester too) gets
    ``AccountsTokenInvalidatedEvent`` and must authorise them again.
    ``server.disconnect_account(id)`` sends ``AccountDisconnectEvent``.
    AccountLogoutReq, VersionReq, TraderReq (accountType HEDGED/NETTED,
    moneyDigits 2, depositAssetId), AssetListReq are answered.

Market (``symbols.py``; prices and money from ``connectors.sim.market``)
    The sim market's symbols as ids 1.. (EURUSD 1, GBPUSD 2, USDJPY 3, XAUUSD 4,
    US500 5); SymbolsListReq (LightSymbol), SymbolByIdReq (lotSize, min/max/step
    volume in hundredths of a unit; unknown id -> SYMBOL_NOT_FOUND).
    SubscribeSpotsReq -> Res, then one SpotEvent per symbol at once and one per
    price step (``step_prices``, or ``start_price_feed(interval)``; bid and ask in
    1/100000; ALREADY_SUBSCRIBED / NOT_SUBSCRIBED_TO_SPOTS). ``set_bid`` scripts a
    price.

Trading (``execution.py``, ``accounts.py``; positions in ``connectors.sim.account``)
    MARKET orders, and MARKET_RANGE ones (ORDER_ACCEPTED then ORDER_CANCELLED,
    nothing executed, when the price is worse than baseSlippagePrice by more than
    slippageInPoints points of 10^-digits); absolute stopLoss/takeProfit on one -> ProtoOAErrorRes
    INVALID_REQUEST (as the real API), relativeStopLoss/relativeTakeProfit work.
    Flows, refusals and server-side closes: see :mod:`.execution`.
    ``clientOrderId``, ``label`` and ``comment`` are kept on the order; label and
    comment on the position (the protos have no such fields on a deal, which
    names its orderId). Ids: positions from 100001, orders from 200001, deals
    from 300001. Money: int64 x 10^-2 (moneyDigits 2); timestamps: Unix ms of
    the clock. ReconcileReq -> open positions (no pending orders exist).
    DealListReq -> deals with fromTimestamp <= executionTimestamp <=
    toTimestamp, oldest first, at most maxRows (default and cap 10,000),
    ``hasMore`` if more match; page by asking again from the last timestamp
    (+1 ms, or the same ms and drop deal ids already seen); a span over a week
    or reversed -> INCORRECT_BOUNDARIES. OrderListReq -> the account's orders
    last updated in [fromTimestamp, toTimestamp] (same bounds rule);
    OrderDetailsReq -> the order and its deals (ORDER_NOT_FOUND);
    GetPositionUnrealizedPnLReq -> each open position's P/L at the closing
    price (gross = net: no commissions). ``server.deposit(id, amount)``: a
    DEPOSIT_WITHDRAW ExecutionEvent (``balanceHistoryId`` from the deal id
    sequence) to every connection holding the account.

Faults (``faults.py``): drop the connection, lose or delay replies, lose the
ORDER_FILLED after execution, reject orders, partial fills, slippage; all
seeded. ``server.faults.config`` may be replaced at runtime.

Not modelled: pending orders (LIMIT/STOP), positionId on NewOrderReq, swaps and
commissions (always 0), TraderUpdatedEvent, SymbolChangedEvent, trendbars and
depth, the JSON port, a per-application connection limit.
"""

from connectors.ctrader.server.certificates import ServerIdentity, identity_from_files, local_identity
from connectors.ctrader.server.credentials import Credentials, CredentialsError
from connectors.ctrader.server.faults import FaultConfig
from connectors.ctrader.server.server import CTraderServer

__all__ = ["CTraderServer", "Credentials", "CredentialsError", "FaultConfig", "ServerIdentity",
           "identity_from_files", "local_identity"]
