"""Open API frames: a 4-byte big-endian length, then a serialized ``ProtoMessage``.

``ProtoMessage{payloadType, payload, clientMsgId}`` wraps every message; its
``payload`` is the inner message serialized, and the inner message's class is
found from ``payloadType``. Only ``ctrader_open_api.messages`` is imported: a
second copy of these package-less protos would collide in the descriptor pool.
"""

from __future__ import annotations

from ctrader_open_api.messages import OpenApiCommonMessages_pb2 as common
from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from google.protobuf.message import DecodeError

HEARTBEAT = common.ProtoHeartbeatEvent().payloadType  # 51

#: Requests cTrader counts as historical (5 per second per connection, not 50).
HISTORICAL = frozenset({
    oa.ProtoOADealListReq().payloadType,
    oa.ProtoOAGetTrendbarsReq().payloadType,
    oa.ProtoOAGetTickDataReq().payloadType,
    oa.ProtoOACashFlowHistoryListReq().payloadType,
    oa.ProtoOAOrderListReq().payloadType,
    oa.ProtoOADealListByPositionIdReq().payloadType,
})


def _message_classes() -> dict[int, type]:
    classes: dict[int, type] = {}
    for module in (common, oa):
        for name in dir(module):
            klass = getattr(module, name)
            if name.startswith("Proto") and hasattr(klass, "DESCRIPTOR") and "payloadType" in getattr(
                    klass.DESCRIPTOR, "fields_by_name", {}):
                classes[klass().payloadType] = klass
    return classes


#: payloadType -> inner message class, for every message of the 0.9.2 protos.
MESSAGES: dict[int, type] = _message_classes()


class BadPayload(ValueError):
    """A well-framed ProtoMessage whose inner payload cannot be used (the connection survives)."""


def encode(message, client_msg_id: str | None = None) -> bytes:
    """The ``ProtoMessage`` bytes (without the length prefix) carrying ``message``."""
    wrapper = common.ProtoMessage(payloadType=message.payloadType, payload=message.SerializeToString())
    if client_msg_id is not None:
        wrapper.clientMsgId = client_msg_id
    return wrapper.SerializeToString()


def decode_wrapper(data: bytes) -> common.ProtoMessage:
    """The ``ProtoMessage`` in a frame; DecodeError if the bytes are not one."""
    wrapper = common.ProtoMessage()
    wrapper.ParseFromString(data)
    if not wrapper.IsInitialized():
        raise DecodeError("ProtoMessage without payloadType")
    return wrapper


def decode_payload(wrapper: common.ProtoMessage):
    """The inner message; KeyError for an unknown payloadType, BadPayload if it does not parse."""
    klass = MESSAGES[wrapper.payloadType]
    message = klass()
    try:
        message.ParseFromString(wrapper.payload)
    except DecodeError as exc:
        raise BadPayload(f"{klass.__name__} does not parse: {exc}") from None
    missing = message.FindInitializationErrors()
    if missing:
        raise BadPayload(f"{klass.__name__} lacks required field(s): {', '.join(missing)}")
    return message


def oa_error(code: str, description: str = "", account: int | None = None) -> oa.ProtoOAErrorRes:
    """A ``ProtoOAErrorRes`` (errorCode travels as the code's name)."""
    error = oa.ProtoOAErrorRes(errorCode=code, description=description)
    if account is not None:
        error.ctidTraderAccountId = account
    return error


def common_error(code: str, description: str = "") -> common.ProtoErrorRes:
    """A ``ProtoErrorRes`` (payloadType 50): frame-level problems such as FRAME_TOO_LONG."""
    return common.ProtoErrorRes(errorCode=code, description=description)
