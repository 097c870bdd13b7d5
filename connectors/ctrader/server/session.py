"""One client connection's Open API session: authentication state and request handling.

Order of checks for every request frame (heartbeats aside): the rate limit
(REQUEST_FREQUENCY_EXCEEDED), the ``disconnect_rate`` fault, decoding (an
unknown payloadType: ProtoErrorRes UNSUPPORTED_MESSAGE; a payload that does not
parse or lacks a required field: ProtoOAErrorRes INVALID_REQUEST), application
authentication (CH_CLIENT_NOT_AUTHENTICATED before ApplicationAuthReq), then,
for a request naming ``ctidTraderAccountId``, that the account is authorised on
this connection (ACCOUNT_NOT_AUTHORIZED) with an access token that has not
expired since (else OA_AUTH_TOKEN_EXPIRED, and the account is no longer
authorised on this connection). Every answer echoes the request's
``clientMsgId``.

Tokens (``tokens.py``): GetAccountListByAccessTokenReq and AccountAuthReq with
an unknown or revoked token -> CH_ACCESS_TOKEN_INVALID, with an expired one ->
OA_AUTH_TOKEN_EXPIRED; RefreshTokenReq works with the refresh token of an
expired access token, and its ``expiresIn`` is the new token's lifetime.
"""

from __future__ import annotations

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from connectors.ctrader.server.accounts import MONEY_DIGITS, money
from connectors.ctrader.server.execution import RequestError
from connectors.ctrader.server.framing import HISTORICAL, BadPayload, common_error, decode_payload, oa_error
from connectors.ctrader.server.ratelimit import RateLimiter

WEEK_MS = 7 * 24 * 3600 * 1000
MAX_DEAL_ROWS = 10_000
VERSION = "copybridge-sim/1"


def _pt(klass) -> int:
    return klass().payloadType


APP_AUTH = _pt(oa.ProtoOAApplicationAuthReq)
ACCOUNT_AUTH = _pt(oa.ProtoOAAccountAuthReq)


class Session:
    def __init__(self, server, connection) -> None:
        self.server = server
        self.connection = connection  # has send_reply(message, client_msg_id, fill) and send_event(message)
        self.app_authenticated = False
        self.accounts: dict[int, str] = {}  # authorised account -> the access token used
        self.spots: dict[int, set[int]] = {}  # account -> subscribed symbol ids
        self.limiter = RateLimiter()
        self._handlers = {
            APP_AUTH: self._app_auth,
            _pt(oa.ProtoOAGetAccountListByAccessTokenReq): self._account_list,
            ACCOUNT_AUTH: self._account_auth,
            _pt(oa.ProtoOAAccountLogoutReq): self._logout,
            _pt(oa.ProtoOARefreshTokenReq): self._refresh,
            _pt(oa.ProtoOAVersionReq): self._version,
            _pt(oa.ProtoOATraderReq): self._trader,
            _pt(oa.ProtoOAAssetListReq): self._assets,
            _pt(oa.ProtoOASymbolsListReq): self._symbols,
            _pt(oa.ProtoOASymbolByIdReq): self._symbol_by_id,
            _pt(oa.ProtoOASubscribeSpotsReq): self._subscribe,
            _pt(oa.ProtoOAUnsubscribeSpotsReq): self._unsubscribe,
            _pt(oa.ProtoOANewOrderReq): self._trade(lambda m: server.engine.new_order(m)),
            _pt(oa.ProtoOAClosePositionReq): self._trade(lambda m: server.engine.close_position(m)),
            _pt(oa.ProtoOAAmendPositionSLTPReq): self._trade(lambda m: server.engine.amend_sltp(m)),
            _pt(oa.ProtoOACancelOrderReq): self._cancel,
            _pt(oa.ProtoOAReconcileReq): self._reconcile,
            _pt(oa.ProtoOADealListReq): self._deal_list,
            _pt(oa.ProtoOAOrderListReq): self._order_list,
            _pt(oa.ProtoOAOrderDetailsReq): self._order_details,
            _pt(oa.ProtoOAGetPositionUnrealizedPnLReq): self._unrealized,
        }

    # -- dispatch ---------------------------------------------------------
    def handle(self, wrapper) -> None:
        pt = wrapper.payloadType
        mid = wrapper.clientMsgId if wrapper.HasField("clientMsgId") else None

        def reply(message) -> None:
            self.connection.send_reply(message, mid)

        if not self.limiter.allow(self.server.clock.seconds(), pt in HISTORICAL):
            return reply(oa_error("REQUEST_FREQUENCY_EXCEEDED", "more than "
                                  f"{'5 historical' if pt in HISTORICAL else '50'} requests per second"))
        if self.server.faults.chance(self.server.faults.config.disconnect_rate):
            return self.connection.abort()
        try:
            message = decode_payload(wrapper)
        except KeyError:
            return reply(common_error("UNSUPPORTED_MESSAGE", f"unknown payloadType {pt}"))
        except BadPayload as exc:
            return reply(oa_error("INVALID_REQUEST", str(exc)))
        handler = self._handlers.get(pt)
        if handler is None:
            return reply(common_error("UNSUPPORTED_MESSAGE", f"{type(message).__name__} is not a request this "
                                      "server handles"))
        if pt != APP_AUTH and not self.app_authenticated:
            return reply(oa_error("CH_CLIENT_NOT_AUTHENTICATED", "the application is not authenticated"))
        if pt != ACCOUNT_AUTH and "ctidTraderAccountId" in message.DESCRIPTOR.fields_by_name:
            ctid = message.ctidTraderAccountId
            if ctid not in self.accounts:
                return reply(oa_error("ACCOUNT_NOT_AUTHORIZED", f"account {ctid} is not authorised on this "
                                      "connection", ctid))
            if self._expired(self.accounts[ctid]):
                self.forget(ctid)
                return reply(oa_error("OA_AUTH_TOKEN_EXPIRED", f"the access token account {ctid} was authorised "
                                      "with has expired: refresh it and authorise the account again", ctid))
        try:
            handler(message, mid)
        except RequestError as exc:
            reply(oa_error(exc.code, exc.description, getattr(message, "ctidTraderAccountId", None)))

    def _reply(self, message, mid) -> None:
        self.connection.send_reply(message, mid)

    # -- authentication ---------------------------------------------------
    def _app_auth(self, m, mid) -> None:
        app = self.server.credentials.application
        if self.app_authenticated:
            return self._reply(oa_error("CH_CLIENT_ALREADY_AUTHENTICATED", "already authenticated"), mid)
        if (m.clientId, m.clientSecret) != (app.client_id, app.client_secret):
            return self._reply(oa_error("CH_CLIENT_AUTH_FAILURE", "clientId or clientSecret is wrong"), mid)
        self.app_authenticated = True
        self._reply(oa.ProtoOAApplicationAuthRes(), mid)

    def _expired(self, access_token: str) -> bool:
        grant = self.server.tokens.grant(access_token)
        return grant is not None and grant.expired(self.server.clock.seconds(), self.server.started_ms / 1000)

    def _token_refusal(self, access_token: str, ctid: int | None = None):
        """The error for an access token that cannot authorise anything now, or None if it can."""
        if self.server.tokens.grant(access_token) is None:
            return oa_error("CH_ACCESS_TOKEN_INVALID", "access token unknown or revoked", ctid)
        if self._expired(access_token):
            return oa_error("OA_AUTH_TOKEN_EXPIRED", "access token expired: refresh it", ctid)
        return None

    def _account_list(self, m, mid) -> None:
        refusal = self._token_refusal(m.accessToken)
        if refusal is not None:
            return self._reply(refusal, mid)
        grant = self.server.tokens.grant(m.accessToken)
        res = oa.ProtoOAGetAccountListByAccessTokenRes(accessToken=m.accessToken, permissionScope=model.SCOPE_TRADE)
        for ctid in grant.accounts:
            d = self.server.accounts[ctid].definition
            res.ctidTraderAccount.add(ctidTraderAccountId=ctid, isLive=d.live, traderLogin=d.trader_login)
        self._reply(res, mid)

    def _account_auth(self, m, mid) -> None:
        ctid = m.ctidTraderAccountId
        refusal = self._token_refusal(m.accessToken, ctid)
        if refusal is not None:
            return self._reply(refusal, mid)
        if ctid not in self.server.accounts:
            return self._reply(oa_error("CH_CTID_TRADER_ACCOUNT_NOT_FOUND", f"no account {ctid}", ctid), mid)
        if not self.server.tokens.may_use(m.accessToken, ctid):
            return self._reply(oa_error("ACCOUNT_NOT_AUTHORIZED", f"this token may not use account {ctid}", ctid),
                               mid)
        self.accounts[ctid] = m.accessToken
        self._reply(oa.ProtoOAAccountAuthRes(ctidTraderAccountId=ctid), mid)

    def _logout(self, m, mid) -> None:
        self.forget(m.ctidTraderAccountId)
        self._reply(oa.ProtoOAAccountLogoutRes(ctidTraderAccountId=m.ctidTraderAccountId), mid)

    def _refresh(self, m, mid) -> None:
        refreshed = self.server.tokens.refresh(m.refreshToken, self.server.clock.seconds())
        if refreshed is None:
            return self._reply(oa_error("CH_ACCESS_TOKEN_INVALID", "refresh token unknown or already used"), mid)
        old, new = refreshed
        self._reply(oa.ProtoOARefreshTokenRes(accessToken=new.access_token, tokenType="bearer",
                                              expiresIn=new.expires_in, refreshToken=new.refresh_token), mid)
        self.server.token_revoked(old.access_token)

    def forget(self, ctid: int) -> None:
        self.accounts.pop(ctid, None)
        self.spots.pop(ctid, None)

    # -- reading ----------------------------------------------------------
    def _version(self, m, mid) -> None:
        self._reply(oa.ProtoOAVersionRes(version=VERSION), mid)

    def _trader(self, m, mid) -> None:
        acct = self.server.accounts[m.ctidTraderAccountId]
        trader = acct.trader_message(self.server.symbols, self.server.started_ms)
        self._reply(oa.ProtoOATraderRes(ctidTraderAccountId=acct.ctid, trader=trader), mid)

    def _assets(self, m, mid) -> None:
        self._reply(oa.ProtoOAAssetListRes(ctidTraderAccountId=m.ctidTraderAccountId,
                                           asset=self.server.symbols.assets()), mid)

    def _symbols(self, m, mid) -> None:
        symbols = self.server.symbols
        self._reply(oa.ProtoOASymbolsListRes(ctidTraderAccountId=m.ctidTraderAccountId,
                                             symbol=[symbols.light(i) for i in symbols.ids]), mid)

    def _known(self, ids, ctid: int) -> None:
        unknown = [i for i in ids if self.server.symbols.name_of(i) is None]
        if unknown or not ids:
            raise RequestError("SYMBOL_NOT_FOUND", f"symbol(s) not found: {unknown or 'none given'}")

    def _symbol_by_id(self, m, mid) -> None:
        self._known(m.symbolId, m.ctidTraderAccountId)
        self._reply(oa.ProtoOASymbolByIdRes(ctidTraderAccountId=m.ctidTraderAccountId,
                                            symbol=[self.server.symbols.full(i) for i in m.symbolId]), mid)

    def _subscribe(self, m, mid) -> None:
        self._known(m.symbolId, m.ctidTraderAccountId)
        subscribed = self.spots.setdefault(m.ctidTraderAccountId, set())
        if subscribed & set(m.symbolId):
            raise RequestError("ALREADY_SUBSCRIBED", f"already subscribed to {sorted(subscribed & set(m.symbolId))}")
        subscribed.update(m.symbolId)
        self._reply(oa.ProtoOASubscribeSpotsRes(ctidTraderAccountId=m.ctidTraderAccountId), mid)
        for symbol_id in m.symbolId:
            self.connection.send_event(self.server.spot_event(m.ctidTraderAccountId, symbol_id))

    def _unsubscribe(self, m, mid) -> None:
        subscribed = self.spots.get(m.ctidTraderAccountId, set())
        if not set(m.symbolId) <= subscribed:
            raise RequestError("NOT_SUBSCRIBED_TO_SPOTS", f"not subscribed to {sorted(set(m.symbolId) - subscribed)}")
        subscribed.difference_update(m.symbolId)
        self._reply(oa.ProtoOAUnsubscribeSpotsRes(ctidTraderAccountId=m.ctidTraderAccountId), mid)

    def _reconcile(self, m, mid) -> None:
        acct = self.server.accounts[m.ctidTraderAccountId]
        positions = [acct.position_message(p.position_id.value, self.server.symbols)
                     for p in acct.book.positions.values()]
        self._reply(oa.ProtoOAReconcileRes(ctidTraderAccountId=acct.ctid, position=positions), mid)

    def _deal_list(self, m, mid) -> None:
        if m.toTimestamp < m.fromTimestamp or m.toTimestamp - m.fromTimestamp > WEEK_MS:
            raise RequestError("INCORRECT_BOUNDARIES", "toTimestamp must follow fromTimestamp by at most one week")
        rows = m.maxRows if m.HasField("maxRows") and 0 < m.maxRows < MAX_DEAL_ROWS else MAX_DEAL_ROWS
        deals, more = self.server.engine.deal_list(m.ctidTraderAccountId, m.fromTimestamp, m.toTimestamp, rows)
        self._reply(oa.ProtoOADealListRes(ctidTraderAccountId=m.ctidTraderAccountId,
                                          deal=[d.message() for d in deals], hasMore=more), mid)

    def _order_list(self, m, mid) -> None:
        if m.toTimestamp < m.fromTimestamp or m.toTimestamp - m.fromTimestamp > WEEK_MS:
            raise RequestError("INCORRECT_BOUNDARIES", "toTimestamp must follow fromTimestamp by at most one week")
        acct = self.server.accounts[m.ctidTraderAccountId]
        orders = [o for o in acct.orders.values()
                  if m.fromTimestamp <= (o.updated_ms or o.created_ms) <= m.toTimestamp]
        self._reply(oa.ProtoOAOrderListRes(ctidTraderAccountId=acct.ctid, order=[o.message() for o in
                                                                                 orders[:MAX_DEAL_ROWS]],
                                           hasMore=len(orders) > MAX_DEAL_ROWS), mid)

    def _order_details(self, m, mid) -> None:
        acct = self.server.accounts[m.ctidTraderAccountId]
        order = acct.orders.get(m.orderId)
        if order is None:
            raise RequestError("ORDER_NOT_FOUND", f"Order {m.orderId} not found")
        deals = [d.message() for d in acct.deals if d.order_id == m.orderId]
        self._reply(oa.ProtoOAOrderDetailsRes(ctidTraderAccountId=acct.ctid, order=order.message(), deal=deals), mid)

    def _unrealized(self, m, mid) -> None:
        acct = self.server.accounts[m.ctidTraderAccountId]
        res = oa.ProtoOAGetPositionUnrealizedPnLRes(ctidTraderAccountId=acct.ctid, moneyDigits=MONEY_DIGITS)
        for p in acct.book.positions.values():
            pnl = money(self.server.engine.floating(acct, p))
            res.positionUnrealizedPnL.add(positionId=p.position_id.value, grossUnrealizedPnL=pnl, netUnrealizedPnL=pnl)
        self._reply(res, mid)

    # -- trading ----------------------------------------------------------
    def _trade(self, execute):
        def handler(m, mid) -> None:
            self.server.publish(execute(m), self, mid)
        return handler

    def _cancel(self, m, mid) -> None:
        error = oa.ProtoOAOrderErrorEvent(ctidTraderAccountId=m.ctidTraderAccountId, errorCode="ORDER_NOT_FOUND",
                                          orderId=m.orderId, description=f"Order {m.orderId} not found "
                                          "(the simulator keeps no pending orders)")
        self._reply(error, mid)
