"""``[bus]`` of ``bridge.toml``: the bus endpoints, the control sockets, and CURVE (:mod:`bridge.bus.curve`).

Read by :func:`bridge.daemon.config.parse` (the format is in that module's docstring). The value
readers :func:`endpoint` and :func:`positive_int` serve the rest of the configuration too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.bus import curve as bus_curve
from bridge.bus.curve import CurveKeys
from bridge.config.strict import Table
from bridge.errors import InputError
from bridge.net import is_loopback


@dataclass(frozen=True)
class BusSettings:
    deals: str
    deals_replay: str
    heartbeat_ms: int
    control: str
    control_connector: str | None
    curve: CurveKeys | None


def parse_bus(doc: Table, where: str, base: Path) -> BusSettings:
    bus = doc.table("bus") or Table({}, f"{where} [bus]")
    deals = endpoint(bus, "deals", "inproc://copybridge-deals")
    replay = endpoint(bus, "deals_replay", "inproc://copybridge-deals-replay")
    heartbeat = positive_int(bus, "heartbeat_ms", 100)
    control = endpoint(bus, "control", "tcp://127.0.0.1:5609")
    control_connector = endpoint(bus, "control_connector", None) if "control_connector" in bus else None
    for key, value in (("control", control), ("control_connector", control_connector)):
        _local_control(bus, key, value)
    if control_connector == control:
        raise InputError(f"{bus.at('control_connector')}: control_connector must differ from control (both processes bind theirs)")
    curve = bus_curve.parse(bus, base)  # CURVE keys (bridge.bus.curve): required off loopback
    bus_curve.require(bus, {"deals": deals, "deals_replay": replay}, curve)
    bus.finish()
    return BusSettings(deals, replay, heartbeat, control, control_connector, curve)


EA_CURVE_FIX = ("run `bridge keys generate` for the bridge and for each EA, then set curve_secret_file (the "
                "bridge's key) on the [[venue]] and curve_server_public (the EA's .pub) on it or on the account; "
                "see connectors/mt4/EA.md, CURVE")


def ea_link_security(t: Table, a: Table, provider: str, endpoints: dict[str, str], curve: CurveKeys | None,
                     own) -> None:
    """CURVE on an MT4 venue's EA link (connectors/mt4/PROTOCOL.md, Security), for account ``a`` of venue ``t``:
    required off loopback; with the bridge's key (``own``) on the venue every EA of it is reached over CURVE
    (``curve``: this account's keys); the DWX EA has none, so it stays on loopback."""
    if provider == "dwx":
        if own is not None:
            raise InputError(f"{t.at('curve_secret_file')}: the DWX EA speaks no CURVE: a DWX venue takes no "
                             "curve_* keys (reach a remote terminal through an SSH tunnel on 127.0.0.1)")
        for key, value in endpoints.items():
            if bus_curve.needs_curve(value):
                raise InputError(f"{a.at(key)}: {key} {value!r} is not a loopback address, and the DWX EA speaks no "
                                 "CURVE (whoever reaches its port trades the account): run the bridge on the "
                                 "terminal's host, or reach it through an SSH tunnel on 127.0.0.1 "
                                 "(connectors/mt4/DWX.md)")
    elif provider == "ea":
        if own is None and "curve_server_public" in a:
            raise InputError(f"{a.at('curve_server_public')}: curve_server_public needs the bridge's own key: set "
                             f"curve_secret_file on the [[venue]]; {EA_CURVE_FIX}")
        if own is not None and curve is None:
            raise InputError(f"{a.where}: the [[venue]] has curve_secret_file, so this account's EA is reached "
                             "over CURVE: set curve_server_public (that EA's public key) here or on the [[venue]]")
        bus_curve.require(a, endpoints, curve, EA_CURVE_FIX)


def _local_control(t: Table, key: str, value: str | None) -> None:
    """The control socket changes routes: a tcp:// one listens on loopback only (ipc:// is mode 0600)."""
    if value is None or not value.startswith("tcp://"):
        return
    host = value[len("tcp://"):].rpartition(":")[0].strip("[]")
    if not is_loopback(host):
        raise InputError(f"{t.at(key)}: {key} {value!r} must listen on a loopback address (127.0.0.1, ::1, "
                         f"localhost) or be an ipc:// path: it controls the daemon")


def endpoint(t: Table, key: str, default: str | None) -> str:
    value = t.str(key, default)
    if not value.startswith(("inproc://", "ipc://", "tcp://")):
        raise InputError(f"{t.at(key)}: {key} {value!r} must be an inproc://, ipc:// or tcp:// endpoint")
    return value


def positive_int(t: Table, key: str, default: int, allow_zero: bool = False) -> int:
    value = t.raw(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise InputError(f"{t.at(key)}: {key} must be a {'non-negative' if allow_zero else 'positive'} integer")
    return value
