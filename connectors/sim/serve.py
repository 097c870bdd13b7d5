"""Run a simulated venue in its own process: ``python -m connectors.sim.serve``.

::

    python -m connectors.sim.serve --endpoint tcp://127.0.0.1:5701 \\
        --deals-endpoint tcp://127.0.0.1:5702 --replay-endpoint tcp://127.0.0.1:5703 \\
        --accounts accounts.toml --seed 7

builds a :class:`SimVenue` on the real reactor (``reactor.seconds()`` is its
clock, ``random.Random(seed)`` its chance), adds the accounts from the TOML
file, serves it with :class:`connectors.sim.server.SimServer` (the request
protocol and error codes are documented there), and prints exactly one line
to stdout once it is listening::

    ready <endpoint> <deals-endpoint> <replay-endpoint>

with the endpoints actually bound (so ``tcp://127.0.0.1:*`` may be passed to
let the system choose a port). SIGTERM or SIGINT stops it cleanly (exit 0).
Logs go to stderr.

The accounts file::

    [venue]                      # optional
    name = "sim"                 # the trade server's name: logins are sim/<name>/<login>; default "sim"
    price_interval_us = 500000   # optional: step the prices every N microseconds; absent or 0: never
    fill_latency_us = 0          # optional SimConfig fields: fill_latency_us, slippage_points (integers),
    reject_rate = "0"            #   reject_rate, timeout_before_execute_rate, timeout_after_execute_rate
                                 #   (decimal strings), trigger_stops (bool)

    [[accounts]]
    login = 1001                 # the login number (integer, required)
    balance = "10000"            # the opening balance: a decimal string or an integer (required)
    currency = "USD"             # optional, default "USD"
    hedging = true               # optional, default true; false: a netting account

A TOML float (``balance = 10000.50``) is read exactly as a Decimal from its
text, never through a binary float. ``--name`` overrides ``[venue] name``.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bridge.domain.volume import parse_decimal
from connectors.sim.config import SimAccount, SimConfig

log = logging.getLogger("connectors.sim.serve")

CONFIG_INTS = ("fill_latency_us", "slippage_points")
CONFIG_RATES = ("reject_rate", "timeout_before_execute_rate", "timeout_after_execute_rate")


@dataclass(frozen=True)
class VenueFile:
    name: str = "sim"
    price_interval_us: int = 0
    config: SimConfig = SimConfig()
    accounts: tuple[SimAccount, ...] = field(default_factory=tuple)


def load_accounts(path: Path) -> VenueFile:
    """Parse the accounts file; ValueError naming the file, the entry and the field."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    venue = data.get("venue", {})
    if not isinstance(venue, dict):
        raise ValueError(f"{path}: [venue] must be a table")
    known = {"name", "price_interval_us", "trigger_stops", *CONFIG_INTS, *CONFIG_RATES}
    unknown = sorted(set(venue) - known)
    if unknown:
        raise ValueError(f"{path}: [venue] has unknown keys {', '.join(unknown)}")
    name = venue.get("name", "sim")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{path}: venue.name must be a non-empty string")
    interval = venue.get("price_interval_us", 0)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 0:
        raise ValueError(f"{path}: venue.price_interval_us must be a non-negative integer")
    options: dict = {}
    for key in CONFIG_INTS:
        if key in venue:
            options[key] = venue[key]
    for key in CONFIG_RATES:
        if key in venue:
            options[key] = _decimal(venue[key], f"{path}: venue.{key}")
    if "trigger_stops" in venue:
        if not isinstance(venue["trigger_stops"], bool):
            raise ValueError(f"{path}: venue.trigger_stops must be true or false")
        options["trigger_stops"] = venue["trigger_stops"]
    try:
        config = SimConfig(**options)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: [venue]: {exc}") from None

    entries = data.get("accounts", [])
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: needs at least one [[accounts]] entry")
    accounts = []
    for n, entry in enumerate(entries, 1):
        where = f"{path}: accounts #{n}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a table")
        unknown = sorted(set(entry) - {"login", "balance", "currency", "hedging"})
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(unknown)}")
        login = entry.get("login")
        if not isinstance(login, int) or isinstance(login, bool) or login < 0:
            raise ValueError(f"{where}: login must be a non-negative integer, got {login!r}")
        if "balance" not in entry:
            raise ValueError(f"{where}: balance is missing")
        currency = entry.get("currency", "USD")
        if not isinstance(currency, str) or not currency:
            raise ValueError(f"{where}: currency must be a non-empty string")
        hedging = entry.get("hedging", True)
        if not isinstance(hedging, bool):
            raise ValueError(f"{where}: hedging must be true or false")
        accounts.append(SimAccount(login, _decimal(entry["balance"], f"{where}: balance"), currency, hedging))
    return VenueFile(name, interval, config, tuple(accounts))


def _decimal(value: object, what: str) -> Decimal:
    try:
        return parse_decimal(value, what)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.sim.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="ROUTER endpoint for venue requests")
    parser.add_argument("--deals-endpoint", default="tcp://127.0.0.1:*", help="PUB endpoint of the deal feed")
    parser.add_argument("--replay-endpoint", default="tcp://127.0.0.1:*", help="ROUTER endpoint of its replay")
    parser.add_argument("--accounts", required=True, type=Path, help="the accounts TOML file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the venue's random.Random")
    parser.add_argument("--name", default=None, help="the trade server's name (overrides [venue] name)")
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="deal feed heartbeat interval, seconds")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        spec = load_accounts(args.accounts)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    import zmq
    from twisted.internet import reactor

    from connectors.sim.server import SimServer
    from connectors.sim.venue import SimVenue

    venue = SimVenue(args.name or spec.name, reactor, random.Random(args.seed), spec.config)
    for a in spec.accounts:
        try:
            venue.add_account(venue.login(a.login), a.balance, a.currency, a.hedging)
        except ValueError as exc:
            print(f"error: {args.accounts}: {exc}", file=sys.stderr)
            return 2
    ctx = zmq.Context()
    try:
        server = SimServer(ctx, venue, args.endpoint, deals_endpoint=args.deals_endpoint,
                           replay_endpoint=args.replay_endpoint)
    except zmq.ZMQError as exc:
        print(f"error: cannot bind: {exc}", file=sys.stderr)
        ctx.destroy(linger=0)
        return 2
    server.serve(reactor, heartbeat_s=args.heartbeat_s)
    if spec.price_interval_us:
        venue.start_price_feed(spec.price_interval_us)

    def ready() -> None:
        print(f"ready {server.endpoint} {server.deals_endpoint} {server.replay_endpoint}", flush=True)
        log.info("serving sim venue %s (%d accounts, seed %d)", venue.name, len(spec.accounts), args.seed)

    reactor.callWhenRunning(ready)
    reactor.run()  # installs SIGINT/SIGTERM handlers that stop the reactor
    venue.stop_price_feed()
    server.close()
    ctx.destroy(linger=0)
    log.info("stopped (answered %d requests, %d bad)", server.answered, server.bad_requests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
