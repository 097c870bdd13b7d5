"""Bus frames: every message is three ZeroMQ parts, JSON, never pickle.

=====  ==========  ==============================================================
part   name        content
=====  ==========  ==============================================================
0      topic       UTF-8, dot-separated, e.g. ``deal.sim/demo/1001``; SUB
                   sockets filter on its prefix
1      header      JSON object:
                   ``v``      schema version (int, currently 1);
                   ``src``    publisher id (str, stable across restarts);
                   ``epoch``  publisher incarnation (str, new at every start);
                   ``seq``    sequence number per (src, epoch), 1, 2, 3, ...
                              (a heartbeat carries the last one sent, 0 if none);
                   ``id``     message id ``src:epoch:seq``;
                   ``ts``     nanoseconds since the epoch when sent (int);
                   ``origin`` nanoseconds when the event was first detected
                              (int; for a master deal: when the connector saw it)
2      body        JSON object; its schema is the topic's (``deal.*``: see
                   :func:`deal_body`). Decimals are strings, volumes integers,
                   ids strings of the form ``platform:value``.
=====  ==========  ==============================================================

A frame that does not parse raises :class:`FrameError` with one line saying
why; receivers count it, log it and drop it, and go on.
"""

from __future__ import annotations

import json
from functools import lru_cache
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId
from bridge.domain.volume import decimal_string

VERSION = 1
HEARTBEAT = "bus.heartbeat"


class FrameError(ValueError):
    """A frame that cannot be used: wrong shape, bad JSON, a missing or invalid field."""


@dataclass(frozen=True, slots=True)
class Header:
    src: str
    epoch: str
    seq: int
    ts: int
    origin: int
    v: int = VERSION

    @property
    def id(self) -> str:
        return f"{self.src}:{self.epoch}:{self.seq}"


@dataclass(frozen=True, slots=True)
class Frame:
    topic: str
    header: Header
    body: dict

    def encode(self) -> list[bytes]:
        h = self.header
        header = {"v": h.v, "src": h.src, "epoch": h.epoch, "seq": h.seq, "id": h.id, "ts": h.ts,
                  "origin": h.origin}
        return [self.topic.encode(), _dumps(header), _dumps(self.body)]


def decode(parts: list[bytes]) -> Frame:
    """Parse a received multipart message; :class:`FrameError` if it is not a valid frame."""
    if len(parts) != 3:
        raise FrameError(f"expected 3 parts (topic, header, body), got {len(parts)}")
    try:
        topic = parts[0].decode()
    except UnicodeDecodeError:
        raise FrameError("topic is not UTF-8") from None
    header = _loads(parts[1], "header")
    body = _loads(parts[2], "body")
    version = header.get("v")
    if version != VERSION:
        raise FrameError(f"unsupported schema version {version!r} (this bridge speaks {VERSION})")
    try:
        # data frames count from 1; a heartbeat (topic bus.heartbeat) of a publisher that has sent
        # nothing yet carries 0, so a restarted publisher makes its new epoch known at once
        first = 0 if topic == HEARTBEAT else 1
        h = Header(src=_str(header, "src"), epoch=_str(header, "epoch"), seq=_int(header, "seq", minimum=first),
                   ts=_int(header, "ts"), origin=_int(header, "origin"))
    except KeyError as exc:
        raise FrameError(f"header: missing {exc.args[0]!r}") from None
    if header.get("id") != h.id:
        raise FrameError(f"header: id {header.get('id')!r} does not match src:epoch:seq {h.id!r}")
    return Frame(topic, h, body)


# -- master deals ------------------------------------------------------------------

def deal_topic(deal: MasterDeal) -> str:
    return f"deal.{deal.account}"


def deal_body(deal: MasterDeal) -> dict:
    """A master deal as a frame body."""
    return {
        "deal_id": f"{deal.deal_id.platform.value}:{deal.deal_id.value}",  # .value: Enum.__format__ is slow
        "position_id": f"{deal.position_id.platform.value}:{deal.position_id.value}",
        "account": str(deal.account),
        "symbol": deal.symbol,
        "kind": deal.kind.value,
        "side": deal.side.value,
        "volume": deal.volume,
        "position_volume": deal.position_volume,
        "time": deal.time.isoformat(),
        "price": _dec_out(deal.price),
        "sl": _dec_out(deal.sl),
        "tp": _dec_out(deal.tp),
    }


def deal_from_body(body: dict) -> MasterDeal:
    """The master deal a ``deal.*`` body carries; :class:`FrameError` naming the bad field."""
    try:
        deal_platform, deal_value = _venue_id(body, "deal_id")
        position_platform, position_value = _venue_id(body, "position_id")
        account = _login(_str(body, "account"))
        time = datetime.fromisoformat(_str(body, "time"))
        kind = DealKind(_str(body, "kind"))
        symbol = body["symbol"]
        if not isinstance(symbol, str) or (not symbol and kind is not DealKind.BALANCE):
            raise FrameError("symbol must be a non-empty string (empty only on a balance deal)")
        return MasterDeal(
            deal_id=DealId(deal_platform, deal_value),
            position_id=PositionId(position_platform, position_value),
            account=account,
            symbol=symbol,
            kind=kind,
            side=Side(_str(body, "side")),
            volume=_int(body, "volume"),
            position_volume=_int(body, "position_volume"),
            time=time,
            price=_dec_in(body, "price"),
            sl=_dec_in(body, "sl"),
            tp=_dec_in(body, "tp"),
        )
    except KeyError as exc:
        raise FrameError(f"deal body: missing {exc.args[0]!r}") from None
    except (ValueError, TypeError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(f"deal body: {exc}") from None


# -- helpers ----------------------------------------------------------------------

#: one encoder for every frame: ``json.dumps`` with non-default separators builds a new one per call
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _dumps(value: dict) -> bytes:
    return _ENCODE(value).encode()


def _loads(raw: bytes, what: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FrameError(f"{what} is not a JSON object")
    return value


def _str(obj: dict, key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value:
        raise FrameError(f"{key} must be a non-empty string")
    return value


def _int(obj: dict, key: str, minimum: int = 0) -> int:
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise FrameError(f"{key} must be an integer >= {minimum}")
    return value


_login = lru_cache(maxsize=1 << 14)(Login.parse)  # a master's account arrives on every deal: parsed once
_PLATFORMS = {p.value: p for p in Platform}


def _venue_id(obj: dict, key: str) -> tuple[Platform, int]:
    platform, _, value = _str(obj, key).partition(":")
    if not value.isdigit():
        raise FrameError(f"{key} must look like platform:number")
    return _PLATFORMS.get(platform) or Platform.parse(platform), int(value)


def _dec_out(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec_in(obj: dict, key: str) -> Decimal | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return decimal_string(value, key)
    except ValueError as exc:
        raise FrameError(str(exc)) from None


def describe(value: Any) -> str:
    """A short printable form of a bad frame, for the log line."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
