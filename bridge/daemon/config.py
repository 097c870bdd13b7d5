"""The daemon's configuration (``bridge.toml``): typed, frozen, strict.

An unknown key anywhere is an error naming the file, table and key. Example:
``config/bridge.toml``. Format::

    [store]
    path = "/var/lib/copybridge/bridge.sqlite"

    [bus]                                   # inproc://, ipc:// or tcp:// endpoints
    deals = "tcp://127.0.0.1:5601"          # the connector role's deal publisher
    deals_replay = "tcp://127.0.0.1:5602"   # ... and its replay/command socket
    heartbeat_ms = 100
    control = "tcp://127.0.0.1:5609"        # `bridge status`, `bridge copy`... ask the daemon here
                                            # (loopback only; an ipc:// socket is made mode 0600)
    control_connector = "tcp://127.0.0.1:5610"  # optional: the control socket of `--role connector`
                                            # run as its own process beside a `--role worker` on this
                                            # host (`bridge status --role connector` asks it); absent:
                                            # every role binds `control`
    curve_secret_file = "/etc/copybridge/bus.key"   # optional (or curve_secret_env): CURVE on every tcp://
                                            # bus socket; REQUIRED when deals/deals_replay are not loopback
    curve_server_public = "..."             # the connecting side: the publisher's public key (default: own)
    curve_clients = ["...", "..."]          # the binding side: the client public keys let in (own always)

    [reconcile]
    drift = "report"                        # or "adopt": a link takes the volume the follower holds
    every_s = 300                           # also between deals, this often (0: at start and reconnect only)

    [metrics]
    listen = "127.0.0.1:9464"               # Prometheus /metrics (HOST:PORT); "" turns it off

    [log]
    format = "text"                         # or "json": one JSON object a line (journald, a file)
    file = ""                               # "" is stderr (journald under systemd)

    [[venue]]                               # a cTrader server, through the Open API
    name = "ctrader-live"
    platform = "ctrader"
    host = "live.ctraderapi.com"            # demo.ctraderapi.com; or a local `bridge sim ctrader`
    port = 5035
    ca_file = "/etc/copybridge/sim-ca.pem"  # optional: trust only this CA (default: the system's CAs)
    client_id = "1234_abcdef"               # the Open API application
    client_secret_file = "/etc/copybridge/ctrader-secret"   # or client_secret_env = "VARIABLE"
    pool_size = 2                           # connections; accounts are spread over them
    timeout_ms = 5000                       # a request unanswered this long is ambiguous
      [[venue.account]]
      login = 40123456                      # ctidTraderAccountId
      access_token_file = "/etc/copybridge/ctrader-access"     # or access_token_env
      refresh_token_file = "/etc/copybridge/ctrader-refresh"   # or refresh_token_env

    [[venue]]                               # MetaTrader 5: one terminal per account
    name = "mt5-live"
    platform = "mt5"
    poll_interval_ms = 5                    # how often a master's terminal is asked for new deals
    server_offset_s = 7200                  # trade-server time minus UTC
      [[venue.account]]
      login = 5001
      provider = "mt5linux"                 # the terminal under Wine, its rpyc server on host:port
      host = "127.0.0.1"
      port = 18812
      [[venue.account]]
      login = 5002
      provider = "native"                   # Windows: the MetaTrader5 package, this terminal
      path = 'C:/MT5-5002/terminal64.exe'
      server = "Broker-Live"
      password_file = 'C:/copybridge/mt5-5002.secret'   # or password_env
      [[venue.account]]
      login = 5003
      provider = "simulator"                # a simulated terminal in this process
      balance = 10000
      hedging = false

    [[venue]]                               # MetaTrader 4: the copybridge EA in each terminal
    name = "mt4-live"
    platform = "mt4"
    server_offset_s = 7200
    curve_secret_file = "/etc/copybridge/mt4-link.key"  # optional (or curve_secret_env): CURVE to every EA of
                                            # the venue; REQUIRED when an EA endpoint is not loopback
    curve_server_public = "..."             # optional: the EAs' public key when they share one pair
      [[venue.account]]
      login = 4001
      endpoint = "tcp://127.0.0.1:32780"    # the EA's command socket; events on port + 1
      curve_server_public = "..."           # with curve_secret_file: this EA's public key
      [[venue.account]]                     # (or events_endpoint = "tcp://HOST:PORT")
      login = 4002
      provider = "simulator"                # a simulated terminal and EA in this process
      balance = 10000

    [[venue]]
    name = "sim-demo"
    platform = "sim"                        # the simulated venue
    seed = 7
    fill_latency_us = 0
    slippage_points = 0                     # fills up to this many points away from the quote
    reject_rate = 0                         # fraction of orders the venue refuses
      [[venue.account]]                     # a venue in this process; or, for a sim venue in
      login = 1000                          # another process (python -m connectors.sim.serve):
      balance = 50000                       # endpoint, deals_endpoint, replay_endpoint instead
      currency = "USD"
      hedging = false

    [[master]]
    account = "sim-demo/1000"               # VENUE/LOGIN

    [[copy]]                                # one subscription
    master = "sim-demo/1000"
    follower = "sim-demo/2001"
    [copy.settings]                         # any copy setting (see allocation.copy.settings)
    mode = "balance"

    [[mam]]
    id = "alpha"
    master = "sim-demo/1000"
    method = "equity"
    leftover = "largest-remainder"
    members = [{ account = "sim-demo/3001" }, { account = "sim-demo/3002", setting = 40 }]

    [notify]                                # optional: operator notifications (bridge.notify.config)
    outage_after_s = 30
    [notify.email]
    host = "smtp.example.com"
    starttls = true
    username = "copybridge@example.com"
    password_file = "/etc/copybridge/smtp-password"   # or password_env
    from = "copybridge@example.com"
    to = ["ops@example.com"]
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from allocation.copy import Effective, resolve, settings_from_mapping
from allocation.errors import AllocationError
from allocation.mam import Leftover, MamGroup, Method
from bridge.bus import curve as bus_curve
from bridge.bus.curve import CurveKeys
from bridge.config.secrets import Secret, read_secret
from bridge.config.strict import Table, load_toml
from bridge.daemon.config_bus import EA_CURVE_FIX, ea_link_security
from bridge.daemon.config_bus import endpoint as _endpoint
from bridge.daemon.config_bus import parse_bus
from bridge.daemon.config_bus import positive_int as _positive_int
from bridge.domain.ids import Login, Platform, ServerId
from bridge.errors import InputError
from bridge.notify.config import NotifySettings, parse_notify
from bridge.worker.reconcile import DriftPolicy
from connectors.sim.config import SimAccount


@dataclass(frozen=True)
class CTraderAccount:
    login: int  # ctidTraderAccountId
    access_token: Secret
    refresh_token: Secret


@dataclass(frozen=True)
class CTraderSettings:
    """A cTrader venue: where its Open API server is and how the bridge authenticates."""

    host: str
    port: int
    client_id: str
    client_secret: Secret
    accounts: tuple[CTraderAccount, ...]
    ca_pem: bytes | None = None  # trust only this CA (the local server's); None: the system's CAs
    pool_size: int = 1
    timeout_ms: int = 5000


@dataclass(frozen=True)
class MT5Account:
    """One MetaTrader 5 terminal (one logged-in account) and how the bridge reaches it."""

    login: int
    provider: str  # "native" | "mt5linux" | "simulator"
    host: str = "127.0.0.1"  # mt5linux: the rpyc server beside the terminal
    port: int = 18812
    path: str | None = None  # native: terminal64.exe of this account's terminal
    server: str | None = None  # native: the trade server's name
    password: Secret | None = None  # native
    balance: Decimal = Decimal(10_000)  # simulator
    currency: str = "USD"  # simulator
    hedging: bool = True  # simulator


@dataclass(frozen=True)
class MT5Settings:
    accounts: tuple[MT5Account, ...]
    poll_interval_ms: int = 5  # how often each master's terminal is asked for new deals
    server_offset_s: int = 0  # trade-server time minus UTC (e.g. 7200 for UTC+2)
    timeout_ms: int = 10_000


MT5_PROVIDERS = ("native", "mt5linux", "simulator")


@dataclass(frozen=True)
class MT4Account:
    """One MetaTrader 4 terminal running the copybridge EA (connectors/mt4/PROTOCOL.md), Darwinex's DWX EA
    (connectors/mt4/DWX.md), or a simulated one."""

    login: int
    provider: str  # "ea" | "dwx" | "simulator"
    endpoint: str | None = None  # ea: the EA's command socket (ROUTER), e.g. tcp://10.0.0.5:32780; dwx: its PULL
    # ea: the EA's event socket (PUB); dwx: its reply socket (PUSH, key replies_endpoint); default: port + 1
    events_endpoint: str | None = None
    balance: Decimal = Decimal(10_000)  # simulator
    currency: str = "USD"  # simulator
    poll_ms: int = 100  # dwx: GET_OPEN_TRADES this often (a master's deals are found by polling)
    curve: CurveKeys | None = None  # ea: the bridge's key pair and this EA's public key (CURVE client of the EA)


@dataclass(frozen=True)
class MT4Settings:
    accounts: tuple[MT4Account, ...]
    server_offset_s: int = 0  # trade-server time minus UTC
    timeout_ms: int = 10_000  # a command unanswered this long is ambiguous (looked up by key)


MT4_PROVIDERS = ("ea", "dwx", "simulator")


@dataclass(frozen=True)
class VenueConfig:
    name: str
    platform: Platform
    seed: int
    fill_latency_us: int
    accounts: tuple[SimAccount, ...]
    slippage_points: int = 0
    reject_rate: Decimal = Decimal(0)
    endpoint: str | None = None  # a sim venue served by another process (python -m connectors.sim.serve)
    deals_endpoint: str | None = None
    replay_endpoint: str | None = None
    ctrader: CTraderSettings | None = None  # platform "ctrader"
    mt5: MT5Settings | None = None  # platform "mt5"
    mt4: MT4Settings | None = None  # platform "mt4"

    @property
    def server(self) -> ServerId:
        return ServerId(self.platform, self.name)

    def logins(self) -> set[int] | None:
        """The account numbers this venue is configured with (None: a remote sim venue, any)."""
        if self.ctrader is not None:
            return {a.login for a in self.ctrader.accounts}
        if self.mt5 is not None:
            return {a.login for a in self.mt5.accounts}
        if self.mt4 is not None:
            return {a.login for a in self.mt4.accounts}
        if self.endpoint is not None:
            return None
        return {a.login for a in self.accounts}


@dataclass(frozen=True)
class CopyConfig:
    master: Login
    follower: Login
    settings: Effective


@dataclass(frozen=True)
class MamConfig:
    id: str
    master: Login
    group: MamGroup
    members: tuple[tuple[Login, Decimal], ...]


@dataclass(frozen=True)
class BridgeConfig:
    store_path: Path
    deals_endpoint: str
    deals_replay_endpoint: str
    heartbeat_ms: int
    venues: tuple[VenueConfig, ...]
    masters: tuple[Login, ...]
    copies: tuple[CopyConfig, ...]
    mams: tuple[MamConfig, ...]
    control_endpoint: str = "tcp://127.0.0.1:5609"
    control_connector: str | None = None  # a connector-only process binds this instead, when set
    drift: DriftPolicy = DriftPolicy.REPORT  # what a reconcile may heal ([reconcile] drift)
    metrics_listen: str = "127.0.0.1:9464"  # [metrics] listen: HOST:PORT, "" for none
    log_format: str = "text"  # [log] format: "text" | "json"
    log_file: Path | None = None  # [log] file; None: stderr
    notify: NotifySettings | None = None  # [notify], [notify.email] (bridge.notify.config); None: no notifications
    curve: CurveKeys | None = None  # [bus] curve_*: CURVE on every tcp:// bus socket (bridge.bus.curve)
    reconcile_every_s: int = 300  # [reconcile] every_s: a reconcile between deals this often; 0: at start only

    def control_for(self, role: str) -> str:
        """The control endpoint a process running ``role`` binds (``bridge status --role`` asks it)."""
        if role == "connector" and self.control_connector is not None:
            return self.control_connector
        return self.control_endpoint


def load(path: str | Path) -> BridgeConfig:
    return parse(load_toml(path), str(path), Path(path).parent)


def parse(data: dict, where: str, base: Path = Path(".")) -> BridgeConfig:
    doc = Table(data, where)
    store = doc.table("store") or Table({}, f"{where} [store]")
    store_path = Path(store.str("path", "copybridge.sqlite"))
    store.finish()
    bus = parse_bus(doc, where, base)  # [bus] (bridge.daemon.config_bus), CURVE included

    reconcile = doc.table("reconcile") or Table({}, f"{where} [reconcile]")
    drift = reconcile.enum("drift", DriftPolicy, DriftPolicy.REPORT)
    reconcile_every_s = _positive_int(reconcile, "every_s", 300, allow_zero=True)
    reconcile.finish()

    metrics = doc.table("metrics") or Table({}, f"{where} [metrics]")
    metrics_listen = _listen(metrics, "listen", "127.0.0.1:9464")
    metrics.finish()
    log_table = doc.table("log") or Table({}, f"{where} [log]")
    log_format = log_table.raw("format", "text")
    if log_format not in LOG_FORMATS:
        raise InputError(f"{log_table.at('format')}: format {log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    log_file = log_table.raw("file", "")
    if not isinstance(log_file, str):
        raise InputError(f"{log_table.at('file')}: file must be a path (a string; \"\" for stderr)")
    log_table.finish()

    venue_tables = doc.tables("venue")
    venues = tuple(_venue(t, base) for t in venue_tables)
    if not venues:
        raise InputError(f"{where}: no [[venue]]: the bridge needs at least one venue")
    names = [v.name for v in venues]
    if len(set(names)) != len(names):
        twice = next(i for i, n in enumerate(names) if n in names[:i])  # the second venue of a name
        raise InputError(f"{venue_tables[twice].at('name')}: two venues are named {names[twice]!r}")
    by_name = {v.name: v for v in venues}

    masters = []
    for t in doc.tables("master"):
        masters.append(_account(t, "account", by_name))
        t.finish()
    copies = []
    routed_at = []  # (master, where its route names it)
    for t in doc.tables("copy"):
        master = _account(t, "master", by_name)
        routed_at.append((master, t.at("master")))
        follower = _account(t, "follower", by_name)
        raw = t.raw("settings", {})
        try:
            level = settings_from_mapping(raw, f"{t.at('settings')}.settings") if raw else None
        except AllocationError as exc:
            raise InputError(str(exc)) from None
        t.finish()
        copies.append(CopyConfig(master, follower, resolve(None, None, level)))
    mams = []
    for t in doc.tables("mam"):
        group_id = t.str("id")
        master = _account(t, "master", by_name)
        routed_at.append((master, t.at("master")))
        group = MamGroup(t.enum("method", Method), t.enum("leftover", Leftover, Leftover.LARGEST_REMAINDER),
                         t.bool("force_minimum", False))
        members = []
        for m in t.tables("members"):
            members.append((_account(m, "account", by_name), m.decimal("setting", Decimal(0))))
            m.finish()
        if not members:
            raise InputError(f"{t.at('members')}: a MAM group needs members")
        t.finish()
        mams.append(MamConfig(group_id, master, group, tuple(members)))
    for routed, at in routed_at:
        if routed not in masters:
            raise InputError(f"{at}: {routed.server.name}/{routed.number} has followers but no [[master]] entry")
    notify = parse_notify(doc.table("notify"), base)
    doc.finish()
    if not store_path.is_absolute():
        store_path = base / store_path
    log_path = None
    if log_file:
        log_path = Path(log_file) if Path(log_file).is_absolute() else base / log_file
    return BridgeConfig(store_path, bus.deals, bus.deals_replay, bus.heartbeat_ms, venues, tuple(masters),
                        tuple(copies), tuple(mams), bus.control, bus.control_connector, drift, metrics_listen,
                        log_format, log_path, notify=notify, curve=bus.curve, reconcile_every_s=reconcile_every_s)


LOG_FORMATS = ("text", "json")


def _listen(t: Table, key: str, default: str) -> str:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) with a port in 1..65535, or "" (nothing listens)."""
    value = t.raw(key, default)
    if not isinstance(value, str):
        raise InputError(f"{t.at(key)}: {key} must be a string, HOST:PORT or \"\"")
    if value == "":
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{t.at(key)}: {key} must be HOST:PORT with a port in 1..65535 (or \"\" for none), "
                         f"got {value!r}")
    return value


def _venue(t: Table, base: Path) -> VenueConfig:
    name = t.str("name")
    platform = t.enum("platform", Platform)
    if platform is Platform.CTRADER:
        return VenueConfig(name, platform, 0, 0, (), ctrader=_ctrader(t, base))
    if platform is Platform.MT5:
        return VenueConfig(name, platform, 0, 0, (), mt5=_mt5(t, base))
    if platform is Platform.MT4:
        return VenueConfig(name, platform, 0, 0, (), mt4=_mt4(t, base))
    seed = t.raw("seed", 7)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{t.at('seed')}: seed must be an integer")
    latency = _positive_int(t, "fill_latency_us", 0, allow_zero=True)
    slippage = _positive_int(t, "slippage_points", 0, allow_zero=True)
    reject_rate = t.decimal("reject_rate", Decimal(0))
    if not Decimal(0) <= reject_rate <= 1:
        raise InputError(f"{t.at('reject_rate')}: reject_rate must be a fraction in 0..1")
    endpoint = _endpoint(t, "endpoint", None) if "endpoint" in t else None
    deals = _endpoint(t, "deals_endpoint", None) if "deals_endpoint" in t else None
    replay = _endpoint(t, "replay_endpoint", None) if "replay_endpoint" in t else None
    if (deals or replay) and not endpoint:
        raise InputError(f"{t.at('deals_endpoint')}: deals_endpoint and replay_endpoint belong to a remote venue (set endpoint)")
    for key, value in (("endpoint", endpoint), ("deals_endpoint", deals), ("replay_endpoint", replay)):
        if value is not None and bus_curve.needs_curve(value):  # the rule of [bus], which sim cannot meet
            raise InputError(f"{t.at(key)}: {key} {value!r} is not a loopback address, and the simulated venue "
                             "speaks no CURVE: run it on this host (or reach it through an SSH tunnel)")
    accounts = []
    for a in t.tables("account"):
        login = _login(a)
        accounts.append(SimAccount(login, a.decimal("balance"), a.str("currency", "USD"), a.bool("hedging", True)))
        a.finish()
    t.finish()
    if endpoint and accounts:
        raise InputError(f"{t.where}: a remote venue's accounts live in its own process; remove [[venue.account]]")
    return VenueConfig(name, platform, seed, latency, tuple(accounts), slippage, reject_rate, endpoint, deals, replay)


def _ctrader(t: Table, base: Path) -> CTraderSettings:
    host = t.str("host")
    port = t.raw("port", 5035)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InputError(f"{t.at('port')}: port must be an integer in 1..65535")
    ca_pem = None
    if "ca_file" in t:
        ca = Path(t.str("ca_file"))
        ca = ca if ca.is_absolute() else base / ca
        try:
            ca_pem = ca.read_bytes()
        except OSError as exc:
            raise InputError(f"{t.at('ca_file')}: ca_file {ca}: cannot read ({exc.strerror})") from None
        if b"BEGIN CERTIFICATE" not in ca_pem:
            raise InputError(f"{t.at('ca_file')}: ca_file {ca} is not a PEM certificate")
    client_id = t.str("client_id")
    secret = read_secret(t, "client_secret", base)
    pool = _positive_int(t, "pool_size", 1)
    timeout = _positive_int(t, "timeout_ms", 5000)
    accounts = []
    for a in t.tables("account"):
        login = _login(a, " (the ctidTraderAccountId)")
        accounts.append(CTraderAccount(login, read_secret(a, "access_token", base),
                                       read_secret(a, "refresh_token", base)))
        a.finish()
    for key in ("seed", "fill_latency_us", "slippage_points", "reject_rate", "endpoint", "deals_endpoint",
                "replay_endpoint"):
        if key in t:
            raise InputError(f"{t.at(key)}: {key} is a setting of simulated venues, not of platform 'ctrader'")
    t.finish()
    if not accounts:
        raise InputError(f"{t.where}: a cTrader venue needs at least one [[venue.account]]")
    logins = [a.login for a in accounts]
    if len(set(logins)) != len(logins):
        raise InputError(f"{t.where}: account {sorted(n for n in logins if logins.count(n) > 1)[0]} is listed twice")
    return CTraderSettings(host, port, client_id, secret, tuple(accounts), ca_pem, pool, timeout)


def _login(a: Table, hint: str = "") -> int:
    """An account table's ``login``: a positive integer (``hint`` says which number it is)."""
    login = a.raw("login")
    if isinstance(login, bool) or not isinstance(login, int) or login <= 0:
        raise InputError(f"{a.at('login')}: login must be a positive integer{hint}")
    return login


def _terminal_venue(t: Table, platform: str, also_not: tuple[str, ...] = ()) -> None:
    """A MetaTrader venue's table holds no other platform's settings (a terminal's go in its account)."""
    for key in ("seed", "fill_latency_us", "slippage_points", "reject_rate", "endpoint", "deals_endpoint",
                "replay_endpoint", "host", "port", "client_id", *also_not):
        if key in t:
            raise InputError(f"{t.at(key)}: {key} is not a setting of platform '{platform}' (a terminal's settings go "
                             "in its [[venue.account]])")


def _terminal_accounts(t: Table, accounts: list, platform: str) -> tuple:
    """The venue's accounts: at least one, each login once."""
    if not accounts:
        raise InputError(f"{t.where}: an {platform} venue needs at least one [[venue.account]] (one per terminal)")
    logins = [a.login for a in accounts]
    if len(set(logins)) != len(logins):
        raise InputError(f"{t.where}: account {sorted(n for n in logins if logins.count(n) > 1)[0]} is listed twice")
    return tuple(accounts)


def _mt5(t: Table, base: Path) -> MT5Settings:
    poll = _positive_int(t, "poll_interval_ms", 5)
    offset = _server_offset(t)
    timeout = _positive_int(t, "timeout_ms", 10_000)
    _terminal_venue(t, "mt5")
    accounts = []
    for a in t.tables("account"):
        login = _login(a)
        provider = a.str("provider")
        if provider not in MT5_PROVIDERS:
            raise InputError(f"{a.at('provider')}: provider {provider!r} must be one of {', '.join(MT5_PROVIDERS)}")
        if provider == "native":
            account = MT5Account(login, provider, path=a.str("path", None), server=a.str("server"),
                                 password=read_secret(a, "password", base))
        elif provider == "mt5linux":
            port = a.raw("port", 18812)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise InputError(f"{a.at('port')}: port must be an integer in 1..65535")
            account = MT5Account(login, provider, host=a.str("host", "127.0.0.1"), port=port)
        else:
            account = MT5Account(login, provider, balance=a.decimal("balance", Decimal(10_000)),
                                 currency=a.str("currency", "USD"), hedging=a.bool("hedging", True))
        a.finish()
        accounts.append(account)
    t.finish()
    return MT5Settings(_terminal_accounts(t, accounts, "MT5"), poll, offset, timeout)


def _server_offset(t: Table) -> int:
    offset = t.raw("server_offset_s", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > 14 * 3600:
        raise InputError(f"{t.at('server_offset_s')}: server_offset_s must be whole seconds within +-14 h of UTC")
    return offset


def _mt4(t: Table, base: Path) -> MT4Settings:
    offset = _server_offset(t)
    timeout = _positive_int(t, "timeout_ms", 10_000)
    _terminal_venue(t, "mt4", ("poll_interval_ms",))
    own = bus_curve.read_own_key(t, base, ("curve_server_public",), EA_CURVE_FIX)  # the bridge, a CURVE client
    venue_server = bus_curve.read_server_key(t, own)  # the EAs' key, when they share one
    accounts = []
    for a in t.tables("account"):
        login = _login(a)
        provider = a.str("provider", "ea")
        if provider not in MT4_PROVIDERS:
            raise InputError(f"{a.at('provider')}: provider {provider!r} must be one of {', '.join(MT4_PROVIDERS)}")
        if provider in ("ea", "dwx"):
            second = "events_endpoint" if provider == "ea" else "replies_endpoint"
            endpoint = _tcp_endpoint(a, "endpoint", a.str("endpoint"))
            events = a.str(second, None)
            if events is None:
                host, _, port = endpoint.rpartition(":")
                if int(port) >= 65535:
                    raise InputError(f"{a.at('endpoint')}: endpoint's port + 1 is no port: set {second}")
                events = f"{host}:{int(port) + 1}"
            poll = _positive_int(a, "poll_ms", 100) if provider == "dwx" else 100
            server = bus_curve.read_server_key(a, own, venue_server) if provider == "ea" else None
            curve = CurveKeys(own[0], own[1], server, ()) if own is not None and server is not None else None
            account = MT4Account(login, provider, endpoint, _tcp_endpoint(a, second, events), poll_ms=poll,
                                 curve=curve)
        else:
            account = MT4Account(login, provider, balance=a.decimal("balance", Decimal(10_000)),
                                 currency=a.str("currency", "USD"))
        a.finish()
        if provider in ("ea", "dwx"):  # CURVE: required off loopback (bridge.daemon.config_bus)
            ea_link_security(t, a, provider, {"endpoint": endpoint, second: account.events_endpoint}, curve, own)
        accounts.append(account)
    t.finish()
    if len({a.provider == "dwx" for a in accounts}) > 1:
        raise InputError(f"{t.where}: DWX terminals (provider \"dwx\") go in a [[venue]] of their own")
    return MT4Settings(_terminal_accounts(t, accounts, "MT4"), offset, timeout)


def _tcp_endpoint(t: Table, key: str, value: str) -> str:
    """``tcp://HOST:PORT`` with a port in 1..65535 (the EA binds; the bridge connects to a fixed address)."""
    host, sep, port = value.removeprefix("tcp://").rpartition(":")
    if not value.startswith("tcp://") or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{t.at(key)}: {key} must be tcp://HOST:PORT with a port in 1..65535, got {value!r}")
    return value


def _account(t: Table, key: str, venues: dict[str, VenueConfig]) -> Login:
    text = t.str(key)
    name, _, number = text.rpartition("/")
    if not name or not number.isdigit():
        raise InputError(f"{t.at(key)}: {key} {text!r} must be VENUE/LOGIN, e.g. sim-demo/1000")
    venue = venues.get(name)
    if venue is None:
        raise InputError(f"{t.at(key)}: {key} {text!r}: no venue named {name!r}")
    logins = venue.logins()
    if logins is not None and int(number) not in logins:
        raise InputError(f"{t.at(key)}: {key} {text!r}: venue {name!r} has no account {number}")
    return Login(venue.server, int(number))
