"""Open API frames for the connector: a ``ProtoMessage`` around each message, errors as exceptions.

The length prefix (4 bytes, big endian) is the protocol's (``connection.py``); this module
turns messages into ``ProtoMessage`` bytes and back, and knows which requests cTrader counts
as historical (5 per second per connection instead of 50). Only ``ctrader_open_api.messages``
is imported: a second copy of the package-less protos would collide in the descriptor pool.
"""

from __future__ import annotations

from ctrader_open_api.messages import OpenApiCommonMessages_pb2 as common
from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from google.protobuf.message import DecodeError

HEARTBEAT = common.ProtoHeartbeatEvent().payloadType

HISTORICAL = frozenset(k().payloadType for k in (
    oa.ProtoOADealListReq, oa.ProtoOAOrderListReq, oa.ProtoOAGetTrendbarsReq, oa.ProtoOAGetTickDataReq,
    oa.ProtoOACashFlowHistoryListReq, oa.ProtoOADealListByPositionIdReq))


def _classes() -> dict[int, type]:
    found: dict[int, type] = {}
    for module in (common, oa):
        for name in dir(module):
            klass = getattr(module, name)
            fields = getattr(getattr(klass, "DESCRIPTOR", None), "fields_by_name", {})
            if name.startswith("Proto") and "payloadType" in fields:
                found[klass().payloadType] = klass
    return found


MESSAGES = _classes()


class BadFrame(ValueError):
    """Bytes from the server that are not an Open API message."""


class OpenApiError(Exception):
    """A ``ProtoErrorRes`` / ``ProtoOAErrorRes`` answer to a request."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description


def encode(message, client_msg_id: str | None = None) -> bytes:
    wrapper = common.ProtoMessage(payloadType=message.payloadType, payload=message.SerializeToString())
    if client_msg_id is not None:
        wrapper.clientMsgId = client_msg_id
    return wrapper.SerializeToString()


def decode(data: bytes) -> tuple[str | None, object]:
    """``(clientMsgId or None, inner message)``; BadFrame if the bytes are not a known Open API message."""
    wrapper = common.ProtoMessage()
    try:
        wrapper.ParseFromString(data)
    except DecodeError as exc:
        raise BadFrame(f"not a ProtoMessage ({exc})") from None
    if not wrapper.IsInitialized():
        raise BadFrame("ProtoMessage without payloadType")
    klass = MESSAGES.get(wrapper.payloadType)
    if klass is None:
        raise BadFrame(f"unknown payloadType {wrapper.payloadType}")
    message = klass()
    try:
        message.ParseFromString(wrapper.payload)
    except DecodeError as exc:
        raise BadFrame(f"{klass.__name__} does not parse ({exc})") from None
    return (wrapper.clientMsgId if wrapper.HasField("clientMsgId") else None), message


def error_of(message) -> OpenApiError | None:
    """The error a message carries, if it is an error response."""
    name = message.DESCRIPTOR.name
    if name in ("ProtoErrorRes", "ProtoOAErrorRes"):
        return OpenApiError(str(message.errorCode), message.description)
    return None


def name_of(message) -> str:
    return message.DESCRIPTOR.name
