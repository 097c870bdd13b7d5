"""``bridge sim``: local simulators of the venues, for staging and manual testing."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import click

from bridge.errors import InputError


@click.group()
def sim() -> None:
    """Run a local venue simulator in the foreground.

    \b
    Example:
      bridge sim ctrader --port 5035 --accounts config/ctrader-sim.toml
    """


@sim.command()
@click.option("--port", type=click.IntRange(min=0, max=65535), default=5035, show_default=True,
              help="TCP port (TLS, protobuf framing); 0 picks a free one.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--accounts", "accounts_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Credentials file (TOML): application, tokens, accounts; format below.")
@click.option("--cert", type=click.Path(dir_okay=False, path_type=Path),
              help="Server certificate (PEM); default: a fresh local CA and certificate for 127.0.0.1/localhost.")
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), help="Private key (PEM) of --cert.")
@click.option("--ca-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the generated CA certificate here, for clients that verify the server.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for prices, faults and new tokens.")
@click.option("--spot-interval-ms", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Step the random-walk prices (and send spots) this often; 0: never.")
@click.option("--idle-timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Close a connection that sent nothing for this many seconds.")
@click.option("--reply-delay-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fault: hold every reply to a request (fills included) this long.")
@click.option("--lose-fill-rate", type=click.FloatRange(min=0, max=1), default=0.0, show_default=True,
              help="Fault: the fraction of fills executed whose reply never comes (lookup must find them).")
@click.option("--reject-rate", type=click.FloatRange(min=0, max=1), default=0.0, show_default=True,
              help="Fault: the fraction of valid orders refused (MARKET_CLOSED, NOT_ENOUGH_MONEY, ...).")
def ctrader(port, host, accounts_file, cert, key, ca_out, seed, spot_interval_ms, idle_timeout, reply_delay_ms,
            lose_fill_rate, reject_rate) -> None:
    """Serve the cTrader Open API (protobuf over TLS) locally on a simulated market.

    Any Open API client, the stock ctrader-open-api one included, can authenticate,
    authorise accounts and trade; trades on a master account are seen by every
    connection that authorised it, so a bridge configured against this server copies
    them. Prints one line with the address, then serves until interrupted.

    \b
    Credentials file (TOML):
      [application]
      client_id = "copybridge-sim"          # ApplicationAuthReq
      client_secret = "sim-secret"
      [[tokens]]                            # one or more
      access_token = "master-token"
      refresh_token = "master-refresh"
      expires_in = 2628000                  # optional, seconds
      [[accounts]]                          # one or more
      ctid_trader_account_id = 1001         # the Open API account id
      trader_login = 5001                   # the login a trader sees
      token = "master-token"                # the token that may use it
      balance = "100000.00"                 # decimal string or integer
      currency = "USD"                      # optional, default USD
      type = "netted"                       # optional: hedged (default) or netted
      live = false                          # optional, default false
      leverage = 100                        # optional, default 100

    \b
    Example:
      bridge sim ctrader --port 5035 --accounts config/ctrader-sim.toml --ca-out /tmp/sim-ca.pem
      bridge sim ctrader --port 5035 --accounts accounts.toml --cert server.pem --key server.key
    """
    from twisted.internet import reactor

    from connectors.ctrader.server import (
        CTraderServer,
        Credentials,
        CredentialsError,
        FaultConfig,
        identity_from_files,
        local_identity,
    )

    if (cert is None) != (key is None):
        raise click.UsageError("--cert and --key go together")
    try:
        credentials = Credentials.load(accounts_file)
        faults = FaultConfig(reply_delay_ms=reply_delay_ms, lose_fill_rate=Decimal(str(lose_fill_rate)),
                             reject_rate=Decimal(str(reject_rate)))
        server = CTraderServer(credentials, clock=reactor, rng=random.Random(seed), idle_timeout_s=idle_timeout,
                               faults=faults)
        identity = identity_from_files(cert, key) if cert else local_identity()
    except (CredentialsError, ValueError) as exc:
        raise InputError(str(exc)) from None
    if ca_out is not None:
        if identity.ca_pem is None:
            raise click.UsageError("--ca-out writes the generated CA: it does not go with --cert/--key")
        ca_out.write_bytes(identity.ca_pem)
    from twisted.internet.error import CannotListenError

    try:
        listening = server.listen(reactor, port, host, identity)
    except CannotListenError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.socketError}") from None
    if spot_interval_ms:
        server.start_price_feed(spot_interval_ms / 1000)
    bound = listening.getHost()
    click.echo(f"listening on ssl://{bound.host}:{bound.port} ({len(credentials.accounts)} accounts; "
               f"TLS: {'your certificate' if cert else 'a fresh local CA' + (f' written to {ca_out}' if ca_out else '')})")
    import sys

    sys.stdout.flush()
    reactor.run()


@sim.command()
@click.option("--port", type=click.IntRange(min=0, max=65535), default=18812, show_default=True,
              help="TCP port of the rpyc classic server (mt5linux's default); 0 picks a free one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on. Loopback by default because an rpyc classic server runs "
                   "whatever code its client sends: bind another only inside one trusted host.")
@click.option("--login", type=click.IntRange(min=1), required=True, help="The account's login.")
@click.option("--password", default="password", show_default=True, help="The account's password.")
@click.option("--server", "trade_server", default="SimBroker-Demo", show_default=True,
              help="The trade server's name, as initialize()/login() expect it.")
@click.option("--balance", default="10000", show_default=True, help="Opening balance (a deposit deal).")
@click.option("--hedging/--netting", default=True, show_default=True, help="The account's position accounting.")
@click.option("--leverage", type=click.IntRange(min=1), default=100, show_default=True, help="Account leverage.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the random-walk prices.")
@click.option("--tick-interval-ms", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Step the prices this often; 0: never.")
def mt5(port, host, login, password, trade_server, balance, hedging, leverage, seed, tick_interval_ms) -> None:
    """Serve one simulated MetaTrader 5 terminal over rpyc classic, as mt5linux expects.

    In the server process ``import MetaTrader5`` is the simulated terminal's module
    (constants, records, functions), logged in to one account on real time with
    prices stepping on a timer. The ``mt5linux`` provider, mt5linux itself, or any
    script doing ``rpyc.classic.connect(host, port)`` then a remote
    ``import MetaTrader5 as mt5`` can trade on it by hand; trades on a master account
    are copied by a bridge configured against it. Prints one line with the address,
    then serves until interrupted.

    Security: an rpyc classic server executes anything its client sends, as this
    user; it listens on 127.0.0.1 unless --host says otherwise.

    \b
    Example:
      bridge sim mt5 --port 18812 --login 5001 --balance 50000 --hedging
      python -c "from connectors.mt5.rpyc_provider import RpycTerminal; mt5 = RpycTerminal(port=18812); \\
                 print(mt5.initialize(login=5001, password='password', server='SimBroker-Demo'))"
    """
    from decimal import Decimal, InvalidOperation

    from bridge.net import is_loopback
    from connectors.mt5.serve import Ticker, install, make_server, make_terminal

    try:
        if not Decimal(balance).is_finite() or Decimal(balance) < 0:
            raise InvalidOperation
    except InvalidOperation:
        raise click.BadParameter(f"{balance!r} is not a non-negative amount", param_hint="--balance") from None
    terminal = make_terminal(login=login, password=password, server=trade_server, balance=balance,
                             hedging=hedging, leverage=leverage, seed=seed)
    install(terminal)
    try:
        server = make_server(host, port)
        # listen before saying so: rpyc's ThreadedServer only listens inside start(), and a client that
        # connects on the line below would otherwise be refused (_listen() is idempotent; start() skips it)
        server._listen()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    ticker = Ticker(terminal, tick_interval_ms / 1000) if tick_interval_ms else None
    if ticker is not None:
        ticker.start()
    click.echo(f"listening on rpyc://{server.host}:{server.port} (rpyc classic; MetaTrader5 simulator, "
               f"login {login}, {'hedging' if hedging else 'netting'}, server {trade_server})")
    if not is_loopback(host):
        click.echo(f"warning: {host} is not loopback: anyone who can reach this port can run any code "
                   f"as this user", err=True)
    import sys

    sys.stdout.flush()
    try:
        server.start()
    finally:
        if ticker is not None:
            ticker.stop()


@sim.command()
@click.option("--endpoint", required=True, metavar="tcp://HOST:PORT",
              help="Bind the EA's command socket (ROUTER) here and its event socket (PUB) on PORT + 1; "
                   "port 0 picks a free pair.")
@click.option("--login", type=click.IntRange(min=1), required=True, help="The account's login.")
@click.option("--balance", default="10000", show_default=True, help="Opening balance (a deposit in the history).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the random-walk prices and faults.")
@click.option("--tick-interval-ms", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Step the prices (SL/TP, stop-out) this often; 0: never.")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The EA's result journal file (kept across restarts); default: memory only.")
@click.option("--reply-delay-ms", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fault: answer OPEN, CLOSE and MODIFY this long after the trade is done and journalled "
                   "(a slow broker; other commands and events are not held).")
@click.option("--dwx", is_flag=True,
              help="Speak Darwinex's DWX ZeroMQ Server protocol instead (connectors/mt4/DWX.md): commands "
                   "(PULL) on PORT, replies (PUSH) on PORT + 1, prices (PUB, silent) on PORT + 2.")
@click.option("--dwx-max-orders", type=click.IntRange(min=0), default=1, show_default=True,
              help="With --dwx: the EA's MaximumOrders input.")
@click.option("--dwx-max-lot-size", default="0.01", show_default=True,
              help="With --dwx: the EA's MaximumLotSize input.")
@click.option("--curve-secret-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="CURVE: both sockets are CURVE servers with this secret key (a `bridge keys generate` .key file, "
                   "mode 0600), as the EA's CurveSecretFile. Required when --endpoint is not loopback.")
@click.option("--curve-clients", "curve_clients", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --curve-secret-file: only these client public keys get in (one a line; a .pub file is "
                   "one), as the EA's CurveClientsFile. Without it any client that knows the server's public key "
                   "does.")
def mt4(endpoint, login, balance, seed, tick_interval_ms, journal_path, reply_delay_ms, dwx, dwx_max_orders,
        dwx_max_lot_size, curve_secret_file, curve_clients) -> None:
    """Run one simulated MetaTrader 4 terminal with the copybridge EA, speaking connectors/mt4/PROTOCOL.md.

    Commands (JSON over ZeroMQ, DEALER to the ROUTER) on PORT, trade events and heartbeats
    (SUB to the PUB) on PORT + 1, as the real EA binds them. Besides the EA's commands it
    accepts MANUAL_OPEN, MANUAL_CLOSE and MANUAL_MODIFY: trades by hand, so a master can be
    traded while a bridge copies it. Prints one line with the addresses once they are bound,
    then serves until SIGTERM or SIGINT.

    \b
    Example:
      bridge sim mt4 --endpoint tcp://127.0.0.1:32780 --login 4001 --balance 50000
      bridge sim mt4 --endpoint tcp://127.0.0.1:0 --login 4002 --journal /tmp/copybridge-4002.journal
      bridge sim mt4 --endpoint tcp://127.0.0.1:32782 --login 4003 --reply-delay-ms 30
      bridge sim mt4 --endpoint tcp://0.0.0.0:32780 --login 4004 --curve-secret-file keys/ea.key \
                     --curve-clients keys/bridge.pub
    """
    import sys
    import time
    from decimal import InvalidOperation

    import zmq
    from twisted.internet import reactor
    from twisted.internet.task import LoopingCall

    from connectors.mt4.simulator import SimulatedEA, Terminal
    from connectors.mt4.simulator.serve import bind_pair, parse_endpoint

    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from None
    try:
        if not Decimal(balance).is_finite() or Decimal(balance) < 0:
            raise InvalidOperation
    except InvalidOperation:
        raise click.BadParameter(f"{balance!r} is not a non-negative amount", param_hint="--balance") from None
    if dwx:
        _check_dwx(port, dwx_max_lot_size)
    curve = _ea_curve(host, curve_secret_file, curve_clients, dwx)
    terminal = Terminal(login=login, balance=balance, clock=time.time, rng=random.Random(seed))
    ctx = zmq.Context()
    auth = None
    if curve is not None and curve.clients:  # the ZAP handler, up before the CURVE sockets bind
        from bridge.bus.curve import start_authenticator

        auth = start_authenticator(ctx, curve, "--curve-clients")
    try:
        if dwx:
            from connectors.mt4.dwx.simulator import bind_triple

            server = bind_triple(terminal, ctx, host, port, reactor=reactor, max_orders=dwx_max_orders,
                                 max_lot_size=dwx_max_lot_size)
            where = f"DWX: replies {server.reply_endpoint}, prices {server.price_endpoint}"
        else:
            ea = SimulatedEA(terminal, journal_path=journal_path)
            server = bind_pair(ea, ctx, host, port, reactor=reactor, reply_delay_ms=reply_delay_ms, curve=curve)
            where = f"events {server.event_endpoint}"
            if curve is not None:
                where += (f"; CURVE server key {curve.public}, " + (f"{len(curve.clients)} client key(s) allowed"
                          if curve.clients else "any client that knows it gets in"))
    except zmq.ZMQError as exc:
        if auth is not None:
            auth.stop()
        ctx.destroy(linger=0)
        raise click.ClickException(f"cannot bind {endpoint} and the port{'s' if dwx else ''} after it: {exc}") \
            from None
    server.start()
    ticker = LoopingCall(terminal.step) if tick_interval_ms else None
    if ticker is not None:
        ticker.start(tick_interval_ms / 1000, now=False)
    click.echo(f"listening on {server.command_endpoint} ({where}; MT4 simulator, login {login})")
    sys.stdout.flush()
    try:
        reactor.run()
    finally:
        server.stop()
        if auth is not None:
            auth.stop()
        ctx.destroy(linger=0)


def _ea_curve(host: str, secret_file: Path | None, clients_file: Path | None, dwx: bool):
    """``--curve-*``: the simulated EA's CURVE server keys, or None; off loopback they are required (the EA's
    rule: PROTOCOL.md, Security)."""
    from bridge.bus import curve as bus_curve
    from bridge.config.secrets import Secret
    from bridge.net import is_loopback

    if dwx and (secret_file or clients_file):
        raise click.UsageError("the DWX EA speaks no CURVE: --curve-secret-file and --curve-clients do not go "
                               "with --dwx")
    if secret_file is None:
        if clients_file is not None:
            raise click.UsageError("--curve-clients needs --curve-secret-file (the server's own key)")
        if not dwx and not is_loopback(host.strip("[]")):
            raise click.UsageError(f"{host} is not loopback: the EA's sockets need CURVE there: pass "
                                   "--curve-secret-file (from `bridge keys generate`)")
        return None
    if not bus_curve.available():
        raise click.ClickException("this libzmq has no CURVE support (zmq.has('curve') is false): install a "
                                   "pyzmq/libzmq built with libsodium")
    secret, public = bus_curve.own_key(Secret.from_file(secret_file, "--curve-secret-file"),
                                       f"--curve-secret-file {secret_file}")
    clients = bus_curve.read_public_keys(clients_file, "--curve-clients") if clients_file else ()
    return bus_curve.CurveKeys(secret, public, public, clients)


def _check_dwx(port: int, max_lot_size: str) -> None:
    """``--dwx``'s own inputs: a positive lot size, and room for PORT + 2."""
    from decimal import InvalidOperation

    try:
        if not Decimal(max_lot_size).is_finite() or Decimal(max_lot_size) <= 0:
            raise InvalidOperation
    except InvalidOperation:
        raise click.BadParameter(f"{max_lot_size!r} is not a positive lot size", param_hint="--dwx-max-lot-size") \
            from None
    if port > 65533:
        raise click.BadParameter("with --dwx the replies and prices go on PORT + 1 and + 2: at most 65533",
                                 param_hint="--endpoint")
