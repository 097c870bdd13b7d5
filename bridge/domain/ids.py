"""Typed identifiers for venues, accounts, positions, deals and orders.

Every venue id carries its platform and its kind, so an MT4 ticket can never be
mistaken for a cTrader position id, and a deal id never for a position id:

>>> PositionId(Platform.MT4, 1001) == PositionId(Platform.CTRADER, 1001)
False
>>> PositionId(Platform.MT4, 1001) == DealId(Platform.MT4, 1001)
False

Ids are immutable, hashable, and refuse a raw value of the wrong type at
construction (a float, a bool or a string where an integer belongs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Platform(str, Enum):
    """A trading platform the bridge connects to."""

    MT4 = "mt4"
    MT5 = "mt5"
    CTRADER = "ctrader"
    SIM = "sim"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> "Platform":
        if not isinstance(text, str):
            raise ValueError(f"platform must be a name such as mt5, got {text!r}")
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown platform {text!r} (expected one of {names})") from None


def _require_platform(value: object) -> None:
    if not isinstance(value, Platform):
        raise TypeError(f"platform must be a Platform, not {type(value).__name__}")


def _require_int(name: str, value: object) -> None:
    # bool is an int subclass; a True ticket is always a bug.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


# Servers and logins key dicts on the hot path (one entry per follower), so each keeps its text form
# and hash, computed once at construction; equality still compares the fields.

@dataclass(frozen=True, slots=True, eq=True)
class ServerId:
    """A trade server of one platform, e.g. ``mt5/Broker-Live``."""

    platform: Platform
    name: str
    _text: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        _require_platform(self.platform)
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("server name must be a non-empty string")
        if "/" in self.name:
            raise ValueError(f"server name {self.name!r} must not contain '/'")
        object.__setattr__(self, "_text", f"{self.platform.value}/{self.name}")

    def __hash__(self) -> int:
        return hash(self._text)

    def __str__(self) -> str:
        return self._text


@dataclass(frozen=True, slots=True, eq=True)
class Login:
    """An account number on a trade server (MT4/MT5 login, cTrader account id)."""

    server: ServerId
    number: int
    _text: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if not isinstance(self.server, ServerId):
            raise TypeError(f"server must be a ServerId, not {type(self.server).__name__}")
        _require_int("login", self.number)
        object.__setattr__(self, "_text", f"{self.server._text}/{self.number}")

    def __hash__(self) -> int:
        return hash(self._text)

    @property
    def platform(self) -> Platform:
        return self.server.platform

    def __str__(self) -> str:
        return self._text

    @classmethod
    def parse(cls, text: str) -> "Login":
        """Parse ``platform/server/number``, the form ``str()`` prints."""
        parts = text.split("/")
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f"malformed account {text!r} (expected PLATFORM/SERVER/LOGIN)")
        return cls(ServerId(Platform.parse(parts[0]), parts[1]), int(parts[2]))


@dataclass(frozen=True, slots=True)
class _VenueId:
    """A number the venue assigned, tagged with its platform and its kind."""

    platform: Platform
    value: int

    def __post_init__(self) -> None:
        _require_platform(self.platform)
        _require_int(type(self).__name__, self.value)

    def __str__(self) -> str:
        return f"{self.platform.value}:{type(self).__name__}:{self.value}"


class PositionId(_VenueId):
    """A position: MT5 position ticket, MT4 order ticket, cTrader positionId."""

    __slots__ = ()


class DealId(_VenueId):
    """A deal (execution): MT5 deal ticket, cTrader dealId, MT4 history ticket."""

    __slots__ = ()


class OrderId(_VenueId):
    """An order: MT5 order ticket, cTrader orderId, MT4 ticket of an order."""

    __slots__ = ()
