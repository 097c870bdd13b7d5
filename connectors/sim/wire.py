"""JSON codecs for the venue types that cross the remote-sim wire (never pickle).

Conventions (the same as the bus frames, :mod:`bridge.bus.frame`):

- venue ids (position, deal, order) are strings ``platform:value``, e.g. ``"sim:42"``;
- a login is its printed form ``platform/server/number``, e.g. ``"sim/sim/1001"``;
- money and prices are Decimal *strings* (``"1.08515"``); a JSON number there
  is refused, so no float ever stands for a price;
- volumes are JSON integers in canonical units (a bool is refused);
- times are ISO-8601 strings with a UTC offset;
- enums (action, side, status) are their ``value`` strings; an absent optional
  field and ``null`` mean the same thing.

Every ``*_from_json`` raises :class:`WireError` (a ``ValueError``) with one
line naming the object and the field, e.g. ``order.volume must be an
integer, got '1'``. Master deals use :func:`bridge.bus.frame.deal_body` and
:func:`deal_from_json` (which wraps :func:`bridge.bus.frame.deal_from_body`, and
also accepts the empty symbol of a BALANCE deal, which that function refuses).

==============  ================================================================
object          JSON fields
==============  ================================================================
OrderRequest    key, account, action, symbol, side, volume, position_id?, sl?,
                tp?, reference_price?, max_slippage_points? (int)
OrderResult     key, status, time, order_id?, position_id?, deal_id?, volume,
                price?, reason?, message, quote_to_account?
VenuePosition   position_id, account, symbol, side, volume, open_price, sl?,
                tp?, key?
AccountInfo     login, currency, balance, equity, hedging (bool)
SymbolSpec      symbol, contract_size, min_volume, max_volume, step_volume,
                digits
==============  ================================================================
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from allocation.leg import Action
from bridge.bus.frame import FrameError, deal_body, deal_from_body
from bridge.domain.deal import MasterDeal, Side
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId
from bridge.domain.volume import SymbolSpec, decimal_string
from connectors.interface import AccountInfo, OrderRequest, OrderResult, OrderStatus, VenuePosition

__all__ = [
    "WireError",
    "account_info_from_json", "account_info_to_json",
    "deal_from_json", "deal_to_json",
    "decimal_from_json", "decimal_to_json",
    "id_from_json", "id_to_json",
    "login_from_json", "login_to_json",
    "order_from_json", "order_to_json",
    "position_from_json", "position_to_json",
    "result_from_json", "result_to_json",
    "spec_from_json", "spec_to_json",
]


class WireError(ValueError):
    """A JSON value that does not decode; the message names the object and the field."""


_Id = TypeVar("_Id", PositionId, DealId, OrderId)
_E = TypeVar("_E", bound=Enum)


# -- scalars ----------------------------------------------------------------------

def id_to_json(value: PositionId | DealId | OrderId | None) -> str | None:
    return None if value is None else f"{value.platform}:{value.value}"


def id_from_json(kind: type[_Id], raw: object, what: str) -> _Id:
    if not isinstance(raw, str):
        raise WireError(f"{what} must be a string platform:number, got {raw!r}")
    platform, _, value = raw.partition(":")
    if not value.isdigit() or not value.isascii():
        raise WireError(f"{what} must look like platform:number, got {raw!r}")
    try:
        return kind(Platform.parse(platform), int(value))
    except (ValueError, TypeError) as exc:
        raise WireError(f"{what}: {exc}") from None


def login_to_json(login: Login) -> str:
    return str(login)


def login_from_json(raw: object, what: str) -> Login:
    if not isinstance(raw, str):
        raise WireError(f"{what} must be a string platform/server/number, got {raw!r}")
    try:
        return Login.parse(raw)
    except (ValueError, TypeError) as exc:
        raise WireError(f"{what}: {exc}") from None


def decimal_to_json(value: Decimal | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Decimal):
        raise TypeError(f"expected a Decimal, got {type(value).__name__}")
    return str(value)


def decimal_from_json(raw: object, what: str) -> Decimal:
    try:
        return decimal_string(raw, what)
    except ValueError as exc:
        raise WireError(str(exc)) from None


class _Fields:
    """Typed access to one JSON object's fields; every failure names ``what.field``."""

    def __init__(self, obj: object, what: str) -> None:
        if not isinstance(obj, dict):
            raise WireError(f"{what} must be a JSON object, got {type(obj).__name__}")
        self.obj = obj
        self.what = what

    def _name(self, key: str) -> str:
        return f"{self.what}.{key}"

    def _get(self, key: str, optional: bool) -> Any:
        if key not in self.obj or self.obj[key] is None:
            if optional:
                return None
            raise WireError(f"{self._name(key)} is missing")
        return self.obj[key]

    def str(self, key: str, *, optional: bool = False, empty: bool = False) -> str | None:
        value = self._get(key, optional)
        if value is None:
            return None
        if not isinstance(value, str) or (not empty and not value):
            raise WireError(f"{self._name(key)} must be a {'' if empty else 'non-empty '}string, got {value!r}")
        return value

    def int(self, key: str, *, optional: bool = False, minimum: int | None = 0) -> int | None:
        value = self._get(key, optional)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireError(f"{self._name(key)} must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise WireError(f"{self._name(key)} must be >= {minimum}, got {value}")
        return value

    def bool(self, key: str) -> bool:
        value = self._get(key, False)
        if not isinstance(value, bool):
            raise WireError(f"{self._name(key)} must be true or false, got {value!r}")
        return value

    def dec(self, key: str, *, optional: bool = False) -> Decimal | None:
        value = self._get(key, optional)
        return None if value is None else decimal_from_json(value, self._name(key))

    def id(self, kind: type[_Id], key: str, *, optional: bool = False) -> _Id | None:
        value = self._get(key, optional)
        return None if value is None else id_from_json(kind, value, self._name(key))

    def login(self, key: str) -> Login:
        return login_from_json(self._get(key, False), self._name(key))

    def enum(self, kind: type[_E], key: str) -> _E:
        value = self._get(key, False)
        try:
            return kind(value)
        except ValueError:
            names = ", ".join(str(m.value) for m in kind)
            raise WireError(f"{self._name(key)} {value!r} is not one of {names}") from None

    def time(self, key: str) -> datetime:
        value = self.str(key)
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            raise WireError(f"{self._name(key)} {value!r} is not an ISO-8601 time") from None
        if t.tzinfo is None:
            raise WireError(f"{self._name(key)} {value!r} has no UTC offset")
        return t

    def build(self, factory, **fields):
        """Construct the object; its own validation errors become WireErrors naming the object."""
        try:
            return factory(**fields)
        except (ValueError, TypeError) as exc:
            raise WireError(f"{self.what}: {exc}") from None


# -- OrderRequest -------------------------------------------------------------------

def order_to_json(order: OrderRequest) -> dict:
    return {
        "key": order.key,
        "account": login_to_json(order.account),
        "action": order.action.value,
        "symbol": order.symbol,
        "side": order.side.value,
        "volume": order.volume,
        "position_id": id_to_json(order.position_id),
        "sl": decimal_to_json(order.sl),
        "tp": decimal_to_json(order.tp),
        "reference_price": decimal_to_json(order.reference_price),
        "max_slippage_points": order.max_slippage_points,
    }


def order_from_json(obj: object) -> OrderRequest:
    f = _Fields(obj, "order")
    return f.build(
        OrderRequest,
        key=f.str("key", empty=True),
        account=f.login("account"),
        action=f.enum(Action, "action"),
        symbol=f.str("symbol"),
        side=f.enum(Side, "side"),
        volume=f.int("volume"),
        position_id=f.id(PositionId, "position_id", optional=True),
        sl=f.dec("sl", optional=True),
        tp=f.dec("tp", optional=True),
        reference_price=f.dec("reference_price", optional=True),
        max_slippage_points=f.int("max_slippage_points", optional=True),
    )


# -- OrderResult --------------------------------------------------------------------

def result_to_json(result: OrderResult) -> dict:
    return {
        "key": result.key,
        "status": result.status.value,
        "time": result.time.isoformat(),
        "order_id": id_to_json(result.order_id),
        "position_id": id_to_json(result.position_id),
        "deal_id": id_to_json(result.deal_id),
        "volume": result.volume,
        "price": decimal_to_json(result.price),
        "reason": result.reason,
        "message": result.message,
        "quote_to_account": decimal_to_json(result.quote_to_account),
    }


def result_from_json(obj: object) -> OrderResult:
    f = _Fields(obj, "result")
    return f.build(
        OrderResult,
        key=f.str("key", empty=True),
        status=f.enum(OrderStatus, "status"),
        time=f.time("time"),
        order_id=f.id(OrderId, "order_id", optional=True),
        position_id=f.id(PositionId, "position_id", optional=True),
        deal_id=f.id(DealId, "deal_id", optional=True),
        volume=f.int("volume"),
        price=f.dec("price", optional=True),
        reason=f.str("reason", optional=True),
        message=f.str("message", optional=True, empty=True) or "",
        quote_to_account=f.dec("quote_to_account", optional=True),
    )


# -- VenuePosition ------------------------------------------------------------------

def position_to_json(p: VenuePosition) -> dict:
    return {
        "position_id": id_to_json(p.position_id),
        "account": login_to_json(p.account),
        "symbol": p.symbol,
        "side": p.side.value,
        "volume": p.volume,
        "open_price": decimal_to_json(p.open_price),
        "sl": decimal_to_json(p.sl),
        "tp": decimal_to_json(p.tp),
        "key": p.key,
    }


def position_from_json(obj: object) -> VenuePosition:
    f = _Fields(obj, "position")
    return f.build(
        VenuePosition,
        position_id=f.id(PositionId, "position_id"),
        account=f.login("account"),
        symbol=f.str("symbol"),
        side=f.enum(Side, "side"),
        volume=f.int("volume"),
        open_price=f.dec("open_price"),
        sl=f.dec("sl", optional=True),
        tp=f.dec("tp", optional=True),
        key=f.str("key", optional=True),
    )


# -- AccountInfo --------------------------------------------------------------------

def account_info_to_json(info: AccountInfo) -> dict:
    return {
        "login": login_to_json(info.login),
        "currency": info.currency,
        "balance": decimal_to_json(info.balance),
        "equity": decimal_to_json(info.equity),
        "hedging": info.hedging,
    }


def account_info_from_json(obj: object) -> AccountInfo:
    f = _Fields(obj, "account_info")
    return f.build(
        AccountInfo,
        login=f.login("login"),
        currency=f.str("currency"),
        balance=f.dec("balance"),
        equity=f.dec("equity"),
        hedging=f.bool("hedging"),
    )


# -- SymbolSpec ---------------------------------------------------------------------

def spec_to_json(spec: SymbolSpec) -> dict:
    return {
        "symbol": spec.symbol,
        "contract_size": decimal_to_json(spec.contract_size),
        "min_volume": spec.min_volume,
        "max_volume": spec.max_volume,
        "step_volume": spec.step_volume,
        "digits": spec.digits,
    }


def spec_from_json(obj: object) -> SymbolSpec:
    f = _Fields(obj, "symbol_spec")
    return f.build(
        SymbolSpec,
        symbol=f.str("symbol"),
        contract_size=f.dec("contract_size"),
        min_volume=f.int("min_volume", minimum=None),
        max_volume=f.int("max_volume", minimum=None),
        step_volume=f.int("step_volume", minimum=None),
        digits=f.int("digits"),
    )


# -- MasterDeal ---------------------------------------------------------------------

def deal_to_json(deal: MasterDeal) -> dict:
    """The bus's ``deal.*`` body (:func:`bridge.bus.frame.deal_body`)."""
    return deal_body(deal)


def deal_from_json(obj: object) -> MasterDeal:
    if not isinstance(obj, dict):
        raise WireError(f"deal must be a JSON object, got {type(obj).__name__}")
    try:
        return deal_from_body(obj)
    except FrameError as exc:
        raise WireError(f"deal: {exc}") from None
